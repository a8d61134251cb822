"""The seed exercise's Gatys loop (Udacity notebook), faithfully: the baseline for benchmarks.

What the notebook does, and this module does too:
- the network is torchvision's full `vgg19().features` (all 37 modules, run to the end on
  every step, in-place ReLUs, floor-mode pooling);
- the style image is squashed to the content's height and width (`load_image(shape=...)`);
- the content features and the style Grams are computed ONCE, before the loop;
- the target starts as the content image and is optimised by Adam, lr 0.003, in the
  notebook's own input space: the ImageNet-normalised tensor ((x/255 - mean) / std);
- loss = 1 · mean((F - P)²) at conv4_2 + 1e6 · Σ w_l · mean((G - A)²) / (d·h·w) with the
  unnormalised Gram G = F Fᵀ and w = 1, .75, .2, .2, .2 at conv1_1 .. conv5_1.

One change, so that a comparison measures the implementation and not the network: the weights
are the engine's original (caffe) VGG19, loaded into torchvision's layout, and the normalised
target is mapped to caffe's input (a fixed linear map: BGR, 0..255, mean subtracted) before the
network. Adam's step is taken on the normalised tensor exactly as in the notebook, so a step
moves a pixel by about 0.003·std·255 ≈ 0.17 of 255 levels, as the notebook's does.
"""

from __future__ import annotations

import torch
import torchvision
from PIL import Image
from torch import nn

from impasto.worker.engine import imaging
from impasto.worker.engine.vgg import CONV_NAMES, LAYER_NAMES, TORCHVISION_MEAN, TORCHVISION_STD, load_vgg

# The seed notebook's layer choice and weights (torchvision indices of the conv layers).
SEED_STYLE_LAYERS = {"0": 1.0, "5": 0.75, "10": 0.2, "19": 0.2, "28": 0.2}  # conv1_1..conv5_1
SEED_CONTENT_LAYER = "21"  # conv4_2
SEED_CONTENT_WEIGHT = 1.0
SEED_STYLE_WEIGHT = 1e6
SEED_LR = 0.003
SEED_STYLE_LAYER_NAMES = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")  # the engine's names of the above

_MEAN = torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1)


def seed_vgg(device: str | torch.device = "cpu") -> nn.Sequential:
    """torchvision's full vgg19().features carrying the original (caffe) weights, frozen."""
    features = torchvision.models.vgg19(weights=None).features
    source = load_vgg("original")
    conv_indices = [i for i, n in enumerate(LAYER_NAMES) if n.startswith("conv")]
    with torch.no_grad():
        for name, index in zip(CONV_NAMES, conv_indices, strict=True):
            features[index].weight.copy_(source.convs[name].weight)
            features[index].bias.copy_(source.convs[name].bias)
    features.requires_grad_(False)
    return features.eval().to(device)


def seed_features(image: torch.Tensor, model: nn.Sequential) -> dict[str, torch.Tensor]:
    """Run the whole network, keeping the seed's layers (as the notebook's get_features does)."""
    wanted = {*SEED_STYLE_LAYERS, SEED_CONTENT_LAYER}
    out = {}
    x = image
    for name, layer in model._modules.items():
        x = layer(x)  # type: ignore[misc]
        if name in wanted:
            out[name] = x
    return out


def seed_gram(tensor: torch.Tensor) -> torch.Tensor:
    """The notebook's unnormalised Gram matrix."""
    _, d, h, w = tensor.size()
    flat = tensor.view(d, h * w)
    return flat @ flat.t()


def caffe(rgb255: torch.Tensor) -> torch.Tensor:
    """RGB 0..255 to the original network's BGR, mean-subtracted input."""
    return load_vgg("original", rgb255.device).preprocess(rgb255)


def normalise(rgb255: torch.Tensor) -> torch.Tensor:
    """RGB 0..255 to the notebook's ImageNet-normalised tensor."""
    return (rgb255 / 255 - _MEAN.to(rgb255)) / _STD.to(rgb255)


def denormalise(normalised: torch.Tensor) -> torch.Tensor:
    """The notebook's tensor back to RGB 0..255 (not clipped)."""
    return (normalised * _STD.to(normalised) + _MEAN.to(normalised)) * 255


def seed_inputs(
    content: str, style: str, size: int, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(content, style) RGB 0..255 at `size` long side; the style squashed to the content's shape."""
    content_image = imaging.open_image(content)
    dims = imaging.fit_long_side(*content_image.size, size)
    content_rgb = imaging.to_tensor(content_image, dims).to(device)
    return content_rgb, imaging.to_tensor(imaging.open_image(style), dims).to(device)


def squashed_style_image(content: str, style: str, size: int) -> Image.Image:
    """The style image as the seed sees it, resized (squashed) to the content's width and height."""
    content_image = imaging.open_image(content)
    dims = imaging.fit_long_side(*content_image.size, size)
    return imaging.open_image(style).resize(dims, Image.Resampling.LANCZOS)


def seed_terms(
    features: dict[str, torch.Tensor], content_target: torch.Tensor, style_grams: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(content loss, unweighted style loss) exactly as the notebook's loop sums them."""
    content_loss = torch.mean((features[SEED_CONTENT_LAYER] - content_target) ** 2)
    style_loss = content_loss.new_zeros(())
    for layer, weight in SEED_STYLE_LAYERS.items():
        feature = features[layer]
        _, d, h, w = feature.shape
        style_loss = style_loss + weight * torch.mean((seed_gram(feature) - style_grams[layer]) ** 2) / (d * h * w)
    return content_loss, style_loss


class SeedRun:
    """The notebook's loop at one size: targets once in the constructor, then one Adam step per step()."""

    def __init__(
        self,
        content: str,
        style: str,
        size: int,
        model: nn.Sequential | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.model = model if model is not None else seed_vgg(device)
        content_rgb, style_rgb = seed_inputs(content, style, size, device)
        with torch.no_grad():
            self.content_target = seed_features(caffe(content_rgb), self.model)[SEED_CONTENT_LAYER]
            style_features = seed_features(caffe(style_rgb), self.model)
            self.style_grams = {layer: seed_gram(style_features[layer]) for layer in SEED_STYLE_LAYERS}
        self.target = normalise(content_rgb).requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.target], lr=SEED_LR)
        self.last: tuple[float, float] | None = None  # (content, style) of the last step's loss

    def step(self) -> None:
        """One iteration of the notebook's loop: forward through all of vgg19().features, backward, Adam."""
        features = seed_features(caffe(denormalise(self.target)), self.model)
        content_loss, style_loss = seed_terms(features, self.content_target, self.style_grams)
        total = SEED_CONTENT_WEIGHT * content_loss + SEED_STYLE_WEIGHT * style_loss
        self.optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        self.last = (content_loss.item(), style_loss.item())

    def image(self) -> Image.Image:
        """The delivered image: the target denormalised and clipped to 8 bits (the notebook's im_convert)."""
        return imaging.to_image(denormalise(self.target.detach()))
