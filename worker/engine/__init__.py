"""Gatys et al. (CVPR 2016) neural style transfer in plain PyTorch.

Knows nothing of Celery, SQL, Flask, Redis or storage: images and parameters in,
an image out, with callbacks for progress, snapshots and stopping.
"""

from impasto.worker.engine.callbacks import Callbacks, Losses
from impasto.worker.engine.errors import EngineError
from impasto.worker.engine.gram_cache import GramCache
from impasto.worker.engine.optimize import Result, Resume, stylize
from impasto.worker.engine.params import StyleParams
from impasto.worker.engine.vgg import load_vgg

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
