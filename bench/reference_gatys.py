"""A straightforward Gatys implementation, as the seed exercise (Udacity notebook) writes it:
full `vgg19().features`, targets recomputed every step, no caching. The baseline for benchmarks.

Weights are the same original VGG19 as the engine's, loaded into torchvision's layout, so the
comparison measures the implementation, not the network.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from worker.engine.vgg import CONV_NAMES, LAYER_NAMES, load_vgg

# The seed notebook's layer choice and weights (torchvision indices of the conv layers).
SEED_STYLE_LAYERS = {"0": 1.0, "5": 0.75, "10": 0.2, "19": 0.2, "28": 0.2}  # conv1_1..conv5_1
SEED_CONTENT_LAYER = "21"  # conv4_2
SEED_CONTENT_WEIGHT = 1.0
SEED_STYLE_WEIGHT = 1e6


def seed_vgg() -> nn.Sequential:
    """torchvision's full vgg19().features carrying the original (caffe) weights, frozen."""
    features = torchvision.models.vgg19(weights=None).features
    source = load_vgg("original")
    conv_indices = [i for i, n in enumerate(LAYER_NAMES) if n.startswith("conv")]
    with torch.no_grad():
        for name, index in zip(CONV_NAMES, conv_indices, strict=True):
            features[index].weight.copy_(source.convs[name].weight)
            features[index].bias.copy_(source.convs[name].bias)
    features.requires_grad_(False)
    return features.eval()


def seed_features(image: torch.Tensor, model: nn.Sequential) -> dict[str, torch.Tensor]:
    """Run the whole network, keeping the seed's layers (as the notebook's get_features does)."""
    wanted = {*SEED_STYLE_LAYERS, SEED_CONTENT_LAYER}
    out = {}
    x = image
    for name, layer in model._modules.items():
        x = layer(x)
        if name in wanted:
            out[name] = x
    return out


def seed_gram(tensor: torch.Tensor) -> torch.Tensor:
    """The notebook's unnormalised Gram matrix."""
    _, d, h, w = tensor.size()
    flat = tensor.view(d, h * w)
    return flat @ flat.t()


def seed_loss(target: torch.Tensor, content: torch.Tensor, style: torch.Tensor, model: nn.Sequential) -> torch.Tensor:
    """The seed's total loss, with content and style features recomputed on every call."""
    content_features = seed_features(content, model)
    style_features = seed_features(style, model)
    style_grams = {layer: seed_gram(style_features[layer]) for layer in SEED_STYLE_LAYERS}
    target_features = seed_features(target, model)
    content_loss = torch.mean((target_features[SEED_CONTENT_LAYER] - content_features[SEED_CONTENT_LAYER]) ** 2)
    style_loss = target.new_zeros(())
    for layer, weight in SEED_STYLE_LAYERS.items():
        feature = target_features[layer]
        _, d, h, w = feature.shape
        style_loss = style_loss + weight * torch.mean((seed_gram(feature) - style_grams[layer]) ** 2) / (d * h * w)
    return SEED_CONTENT_WEIGHT * content_loss + SEED_STYLE_WEIGHT * style_loss


def caffe(rgb255: torch.Tensor) -> torch.Tensor:
    """RGB 0..255 to the original network's BGR, mean-subtracted input."""
    return load_vgg("original").preprocess(rgb255)
