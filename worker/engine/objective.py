"""The objective for one scale: targets computed once, then α·content + β·style + γ·tv."""

from __future__ import annotations

from collections.abc import Callable

import torch

from worker.engine.gram_cache import GramCache
from worker.engine.losses import content_loss, energy, gram, style_loss, tv_loss
from worker.engine.params import StyleParams
from worker.engine.tiling import tiled_features, tiled_grams
from worker.engine.vgg import VGG19Features


class Objective:
    """Content features and blended style Grams of one scale, and the loss of an image against them."""

    def __init__(
        self,
        model: VGG19Features,
        params: StyleParams,
        content: torch.Tensor,  # (1, 3, H, W) RGB 0..255
        styles: list[torch.Tensor],  # each (1, 3, h, w) RGB 0..255
        gram_cache: GramCache | None = None,
        check_interrupt: Callable[[], None] | None = None,  # between layers of the target passes
        tile: int = 0,  # px; 0: the target passes see whole images, else tiles (tiling.py)
    ) -> None:
        self.model = model
        self.params = params
        self.layers = tuple(dict.fromkeys(params.content_layers + params.style_layers))
        self.layer_weights = params.layer_weights()
        with torch.no_grad():
            if tile:
                features = tiled_features(model, content, params.content_layers, params.pooling, tile, check_interrupt)
            else:
                features = model(content, params.content_layers, params.pooling, check_interrupt)
            self.content_targets = {name: features[name].float() for name in params.content_layers}
            self.content_energy = {name: energy(t) for name, t in self.content_targets.items()}
            self.style_targets = blended_style_grams(model, params, styles, gram_cache, check_interrupt, tile)
            self.style_energy = {name: energy(g) for name, g in self.style_targets.items()}

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total, [content, style, tv] weighted terms) for an RGB 0..255 image."""
        p = self.params
        with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=p.precision == "bf16"):
            features = self.model(pixels, self.layers, p.pooling)
        # Grams and losses in fp32 whatever the convolutions ran in: a bf16 Gram sums H·W
        # products with an 8-bit mantissa, and its error would swamp the style term.
        features = {name: f.float() for name, f in features.items()}
        zero = pixels.new_zeros(())
        content = sum(
            (content_loss(features[n], self.content_targets[n], self.content_energy[n]) for n in p.content_layers),
            zero,
        ) / len(p.content_layers)
        style = sum(
            (
                w * style_loss(features[n], self.style_targets[n], self.style_energy[n])
                for n, w in zip(p.style_layers, self.layer_weights, strict=True)
            ),
            zero,
        )
        tv = tv_loss(pixels) if p.tv_weight > 0 else zero
        terms = torch.stack([p.content_weight * content, p.style_weight * style, p.tv_weight * tv])
        return terms.sum(), terms


def blended_style_grams(
    model: VGG19Features,
    params: StyleParams,
    styles: list[torch.Tensor],
    cache: GramCache | None = None,
    check_interrupt: Callable[[], None] | None = None,
    tile: int = 0,
) -> dict[str, torch.Tensor]:
    """Per style layer, Σ_s b_s·Ĝ_s over the style images (jcjohnson's blend of Gram targets)."""
    blend = params.blend(len(styles))
    grams: dict[str, torch.Tensor] = {}
    for weight, style in zip(blend, styles, strict=True):
        for name, g in style_grams(model, params, style, cache, check_interrupt, tile).items():
            grams[name] = grams[name] + weight * g if name in grams else weight * g
    return grams


def style_grams(
    model: VGG19Features,
    params: StyleParams,
    style: torch.Tensor,
    cache: GramCache | None,
    check_interrupt: Callable[[], None] | None = None,
    tile: int = 0,
) -> dict[str, torch.Tensor]:
    """Ĝ of one style image at each style layer, from the cache when it has them."""
    key = GramCache.key(style, params.style_layers, params.pooling, model) if cache is not None else None
    if cache is not None and key is not None and (cached := cache.get(key)) is not None:
        return cached
    if tile and max(style.shape[-2:]) > tile:
        grams = tiled_grams(model, style, params.style_layers, params.pooling, tile, check_interrupt)
    else:
        with torch.no_grad():
            features = model(style, params.style_layers, params.pooling, check_interrupt)
            grams = {name: gram(features[name])[0] for name in params.style_layers}
    if cache is not None and key is not None:
        cache.put(key, grams)
    return grams
