"""Gatys et al. (CVPR 2016) neural style transfer in plain PyTorch.

Knows nothing of Celery, SQL, Flask, Redis or storage: images and parameters in,
an image out, with callbacks for progress, snapshots and stopping.
"""

from worker.engine.callbacks import Callbacks, Losses
from worker.engine.errors import EngineError
from worker.engine.gram_cache import GramCache
from worker.engine.optimize import Result, Resume, stylize
from worker.engine.params import StyleParams
from worker.engine.vgg import load_vgg

__all__ = [
    "Callbacks",
    "EngineError",
    "GramCache",
    "Losses",
    "Result",
    "Resume",
    "StyleParams",
    "load_vgg",
    "stylize",
]
