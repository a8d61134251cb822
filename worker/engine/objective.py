"""The objective for one scale: targets computed once, then α·content + β·style + γ·tv.

The style term is a weighted sum of StyleTerms, one per (style layer, region): the statistics of the
image's features there (statistics.py, masked for a region) against a target (losses.py). The
target of a layer blends the styles' statistics, each style weighted by its blend weight times its
weight at that layer (per-style layer weights: scale control); the term's weight is that sum.
Without masks there is one region, the whole image, with the job's blend weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from impasto.worker.engine.gram_cache import GramCache
from impasto.worker.engine.losses import StyleTarget, content_loss, energy, style_target, tv_loss
from impasto.worker.engine.masks import Guides, layer_masks
from impasto.worker.engine.params import StyleParams
from impasto.worker.engine.statistics import Moments, blend_moments, feature_moments
from impasto.worker.engine.tiling import WHOLE, tiled_features, tiled_moment_sums
from impasto.worker.engine.vgg import VGG19Features


@dataclass(frozen=True)
class StyleTerm:
    """One weighted style loss: the image's statistics at `layer` (inside `mask`, if any) against `target`."""

    layer: str
    weight: float  # layer weight (Σ over styles of blend × per-style layer weight) × region's area share
    mask: torch.Tensor | None  # (1, 1, h, w) at the layer's resolution
    target: StyleTarget


class Objective:
    """Content features and style targets of one scale, and the loss of an image against them."""

    def __init__(
        self,
        model: VGG19Features,
        params: StyleParams,
        content: torch.Tensor,  # (1, 3, H, W) RGB 0..255
        styles: list[torch.Tensor],  # each (1, 3, h, w) RGB 0..255
        gram_cache: GramCache | None = None,
        check_interrupt: Callable[[], None] | None = None,  # between layers of the target passes
        guides: Guides | None = None,
        tile: int = 0,  # px; 0: the target passes see whole images, else tiles (tiling.py)
    ) -> None:
        self.model = model
        self.params = params
        self.layers = tuple(dict.fromkeys(params.content_layers + params.style_layers))
        with torch.no_grad():
            if tile:
                features = tiled_features(model, content, params.content_layers, params.pooling, tile, check_interrupt)
            else:
                features = model(content, params.content_layers, params.pooling, check_interrupt)
            self.content_targets = {name: features[name].float() for name in params.content_layers}
            self.content_energy = {name: energy(t) for name, t in self.content_targets.items()}
            self.style_terms = style_terms(model, params, styles, guides, gram_cache, check_interrupt, tile)

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total, [content, style, tv] weighted terms) for an RGB 0..255 image."""
        p = self.params
        with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=p.precision == "bf16"):
            features = self.model(pixels, self.layers, p.pooling)
        # Statistics and losses in fp32 whatever the convolutions ran in: a bf16 Gram sums H·W
        # products with an 8-bit mantissa, and its error would swamp the style term.
        features = {name: f.float() for name, f in features.items()}
        zero = pixels.new_zeros(())
        content = sum(
            (content_loss(features[n], self.content_targets[n], self.content_energy[n]) for n in p.content_layers),
            zero,
        ) / len(p.content_layers)
        unmasked: dict[str, Moments] = {}
        style = zero
        for term in self.style_terms:
            if term.mask is None:
                if term.layer not in unmasked:
                    unmasked[term.layer] = feature_moments(features[term.layer]).normalised()
                moments = unmasked[term.layer]
            else:
                moments = feature_moments(features[term.layer], term.mask).normalised()
            style = style + term.weight * term.target(moments)
        tv = tv_loss(pixels) if p.tv_weight > 0 else zero
        terms = torch.stack([p.content_weight * content, p.style_weight * style, p.tv_weight * tv])
        return terms.sum(), terms


def style_terms(
    model: VGG19Features,
    params: StyleParams,
    styles: Sequence[torch.Tensor],
    guides: Guides | None = None,
    cache: GramCache | None = None,
    check_interrupt: Callable[[], None] | None = None,
    tile: int = 0,
) -> list[StyleTerm]:
    """The StyleTerms of a run: per region (or the whole image) and style layer, skipping empty ones."""
    per_style = [
        style_moments(model, params, style, None if guides is None else guides.styles[i], cache, check_interrupt, tile)
        for i, style in enumerate(styles)
    ]
    if guides is None:
        blend = params.blend(len(styles))
        return _region_terms(params, [(i, b) for i, b in enumerate(blend)], per_style, WHOLE, None, 1.0)
    content_masks = layer_masks(guides.content, params.style_layers)
    pixels = guides.content[0].numel()
    terms: list[StyleTerm] = []
    for index, region in enumerate(guides.regions):
        share = float(guides.content[index].sum()) / pixels
        if not region.styles or share == 0:  # content only, or not in the picture at this scale
            continue
        masks = {name: m[index : index + 1] for name, m in content_masks.items()}
        terms += _region_terms(params, list(region.styles), per_style, index, masks, share)
    return terms


def _region_terms(
    params: StyleParams,
    blend: list[tuple[int, float]],
    per_style: list[dict[tuple[str, int], Moments]],
    region: int,
    masks: dict[str, torch.Tensor] | None,
    share: float,
) -> list[StyleTerm]:
    """One region's terms. Weighting a region by its share of the image keeps each pixel's balance of
    content and style as without masks: a region's mean statistics have 1/share the gradient per pixel."""
    total = sum(b for _, b in blend)
    terms = []
    for layer_index, layer in enumerate(params.style_layers):
        parts = [
            (b / total * params.style_layer_weight(style, layer_index), _moments_of(per_style[style], layer, region))
            for style, b in blend
        ]
        weight = sum(w for w, _ in parts)
        if weight <= 0:
            continue
        mask = None if masks is None else masks[layer]
        if mask is not None and float(mask.sum()) == 0:
            continue
        target = style_target(params.style_loss, blend_moments([(w, m) for w, m in parts if w > 0]))
        terms.append(StyleTerm(layer, weight * share, mask, target))
    return terms


def _moments_of(moments: dict[tuple[str, int], Moments], layer: str, region: int) -> Moments:
    """A style's statistics for a region: of its own region when its label has it there, else of the whole style."""
    return moments.get((layer, region)) or moments[(layer, WHOLE)]


def style_moments(
    model: VGG19Features,
    params: StyleParams,
    style: torch.Tensor,
    masks: torch.Tensor | None,
    cache: GramCache | None,
    check_interrupt: Callable[[], None] | None = None,
    tile: int = 0,
) -> dict[tuple[str, int], Moments]:
    """Moments of one style image at each style layer: of the whole image and of each non-empty region of its label."""
    key = GramCache.key(style, params.style_layers, params.pooling, model, masks) if cache is not None else None
    if cache is not None and key is not None and (cached := cache.get(key)) is not None:
        return cached
    if tile and max(style.shape[-2:]) > tile:  # a print-size style: its sums, tile by tile
        tiled = tiled_moment_sums(model, style, params.style_layers, params.pooling, tile, masks, check_interrupt)
        moments = {k: s.normalised() for k, s in tiled.items() if k[1] == WHOLE or float(s.count) > 0}
        if cache is not None and key is not None:
            cache.put(key, moments)
        return moments
    with torch.no_grad():
        features = model(style, params.style_layers, params.pooling, check_interrupt)
        moments = {(name, WHOLE): feature_moments(features[name]).normalised() for name in params.style_layers}
        if masks is not None:
            for name, mask in layer_masks(masks, params.style_layers).items():
                for region in range(mask.shape[0]):
                    sums = feature_moments(features[name], mask[region : region + 1])
                    if float(sums.count) > 0:
                        moments[(name, region)] = sums.normalised()
    if cache is not None and key is not None:
        cache.put(key, moments)
    return moments


def blended_style_grams(
    model: VGG19Features,
    params: StyleParams,
    styles: list[torch.Tensor],
    cache: GramCache | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Per style layer, Σ_s b_s·Ĝ_s over the style images (jcjohnson's blend of Gram targets)."""
    blend = params.blend(len(styles))
    per_style = [style_moments(model, params, style, None, cache, check_interrupt) for style in styles]
    return {
        name: blend_moments([(b, m[(name, WHOLE)]) for b, m in zip(blend, per_style, strict=True)]).second
        for name in params.style_layers
    }
