"""Exact tiled evaluation: the objective and its gradient computed tile by tile, in bounded memory.

Every loss term is a function of statistics that are sums over feature positions: a style
term's moment sums Σ f and Σ f fᵀ (statistics.py; masked for a region), a content layer's
Σ (F − P)². So one pass without autograd sums each tile's statistics over its *core* positions
(each feature position belongs to exactly one core); the loss and its derivative with respect to
the statistics follow from the totals. A second pass runs, per tile, a backward of the surrogate
⟨∂L/∂S, S_tile⟩ + the tile's content sum, whose gradient with respect to the tile's features is
exactly the global ∂L/∂F restricted to its core, and adds the tile's whole input gradient, halo
included, into one full-size buffer.

A tile's crop is its core widened by HALO pixels (clipped at the image's edges). VGG19's conv5_1
feature j reads input rows 16j − 70 … 16j + 85 (receptive field 156 px), so with HALO ≥ 80 every
core feature sees the same pixels (and, at the image's edges, the same zero padding) as in the
whole image; cores and crops start on multiples of 16, so the four 2×2 poolings see the same grid.
The result equals the untiled one to float32 rounding (tests/engine/test_tiling.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from worker.engine.losses import tv_loss
from worker.engine.statistics import MomentSums, feature_moments
from worker.engine.vgg import VGG19Features

if TYPE_CHECKING:  # objective.py imports this module for its tiled target passes
    from worker.engine.objective import Objective, StyleTerm

ALIGN = 16  # VGG19's pooling stride before conv5_1: tiles start on its grid
HALO = 80  # px: conv5_1 reads 70 px before and 85 − 15 = 70 px after a 16-px cell; rounded up to ALIGN
MIN_TILE = 32
# Bytes a pixel of one tile's crop costs during forward and backward to conv5_1 (fp32, max
# pooling): measured peak RSS growth on the CPU (bench/tiling_memory.py), with headroom.
TILE_BYTES_PER_PIXEL = 4000


def layer_stride(layer: str) -> int:
    """The input pixels per feature position of a conv layer: conv3_x -> 4."""
    return 2 ** (int(layer[4]) - 1)


@dataclass(frozen=True)
class Span:
    """One axis of a tile: the core [start, stop) it owns and the crop [lo, hi) it reads, in pixels."""

    start: int
    stop: int
    lo: int
    hi: int

    def core(self, stride: int) -> slice:
        """The core's feature positions within the crop's feature map at `stride`."""
        return slice((self.start - self.lo) // stride, -(-(self.stop - self.lo) // stride))

    def full(self, stride: int) -> slice:
        """The core's feature positions within the whole image's feature map at `stride`."""
        return slice(self.start // stride, -(-self.stop // stride))


def spans(length: int, tile: int, halo: int = HALO) -> list[Span]:
    """Cores of `tile` px (the last one shorter) covering 0..length, each with its halo-widened crop."""
    if tile % ALIGN or tile <= 0 or halo % ALIGN:
        raise ValueError(f"tile ({tile}) and halo ({halo}) must be positive multiples of {ALIGN}")
    return [
        Span(start, min(start + tile, length), max(0, start - halo), min(length, start + tile + halo))
        for start in range(0, length, tile)
    ]


@dataclass(frozen=True)
class Tile:
    """A rectangle of the image: rows and columns."""

    rows: Span
    cols: Span

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        """The pixels this tile reads, halo included."""
        return image[..., self.rows.lo : self.rows.hi, self.cols.lo : self.cols.hi]

    def core(self, features: torch.Tensor, layer: str) -> torch.Tensor:
        """The core positions of this tile's features at `layer`."""
        s = layer_stride(layer)
        return features[..., self.rows.core(s), self.cols.core(s)]

    def full(self, features: torch.Tensor, layer: str) -> torch.Tensor:
        """The same positions in a whole-image feature map (a view, for reading or writing)."""
        s = layer_stride(layer)
        return features[..., self.rows.full(s), self.cols.full(s)]


def tiles(height: int, width: int, tile: int, halo: int = HALO) -> list[Tile]:
    """The tiles of an image, row-major."""
    return [Tile(r, c) for r in spans(height, tile, halo) for c in spans(width, tile, halo)]


def feature_shape(height: int, width: int, layer: str) -> tuple[int, int]:
    """The feature map size at `layer` (ceil-mode pooling, as vgg.py)."""
    s = layer_stride(layer)
    return -(-height // s), -(-width // s)


def tiled_features(
    model: VGG19Features,
    pixels: torch.Tensor,
    layers: tuple[str, ...],
    pooling: str,
    tile: int,
    before_layer: Callable[[], None] | None = None,
    halo: int = HALO,
) -> dict[str, torch.Tensor]:
    """Whole-image feature maps at `layers`, assembled from tiles' cores without autograd (fp32)."""
    height, width = pixels.shape[-2:]
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for t in tiles(height, width, tile, halo):
            features = model(t.crop(pixels), layers, pooling, before_layer)
            for name in layers:
                if name not in out:
                    channels = features[name].shape[1]
                    out[name] = pixels.new_zeros((pixels.shape[0], channels, *feature_shape(height, width, name)))
                t.full(out[name], name).copy_(t.core(features[name], name))
    return out


def tiled_grams(
    model: VGG19Features,
    pixels: torch.Tensor,
    layers: tuple[str, ...],
    pooling: str,
    tile: int,
    before_layer: Callable[[], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-position Gram matrices Ĝ = Σ F Fᵀ / M of one image (C, C), summed over tiles without autograd."""
    height, width = pixels.shape[-2:]
    sums: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for t in tiles(height, width, tile):
            features = model(t.crop(pixels), layers, pooling, before_layer)
            for name in layers:
                flat = _flat(t.core(features[name], name))
                sums[name] = sums[name] + flat @ flat.T if name in sums else flat @ flat.T
    return {name: s / _positions(height, width, name) for name, s in sums.items()}


def _positions(height: int, width: int, layer: str) -> int:
    h, w = feature_shape(height, width, layer)
    return h * w


def _grad_or_zero(leaf: torch.Tensor) -> torch.Tensor:
    return leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)


def _flat(core: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) core features as (C, h·w) fp32."""
    return core.float().reshape(core.shape[1], -1)


class TiledEvaluation:
    """The objective's value, weighted terms and gradient with respect to the pixels, tile by tile.

    Works from an Objective's targets (content features, style terms): the same loss as
    Objective.__call__, reorganised as statistics summed over positions (statistics.py), so any
    style loss (Gram, W2) and any region mask tiles alike.
    """

    def __init__(self, objective: Objective, tile: int, halo: int = HALO) -> None:
        self.o = objective
        self.tile = tile
        self.halo = halo

    def _features(self, crop: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.o
        p = o.params
        with torch.autocast(crop.device.type, dtype=torch.bfloat16, enabled=p.precision == "bf16"):
            return o.model(crop, o.layers, p.pooling)

    def _content_sum(self, t: Tile, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ over the tile's core of the relative content error, already divided by the layer's size."""
        o = self.o
        p = o.params
        total = features[p.content_layers[0]].new_zeros((), dtype=torch.float32)
        for name in p.content_layers:
            target = o.content_targets[name]
            diff = t.core(features[name], name).float() - t.full(target, name)
            total = total + diff.pow(2).sum() / (target.numel() * o.content_energy[name])
        return total / len(p.content_layers)

    @staticmethod
    def _term_sums(t: Tile, features: dict[str, torch.Tensor], term: StyleTerm) -> MomentSums:
        """A style term's moment sums over the tile's core (weighted by the term's mask there, if any)."""
        core = t.core(features[term.layer], term.layer)
        return feature_moments(core, None if term.mask is None else t.full(term.mask, term.layer))

    def _tiles(self, pixels: torch.Tensor) -> Iterator[Tile]:
        height, width = pixels.shape[-2:]
        return iter(tiles(height, width, self.tile, self.halo))

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, [content, style, tv] weighted terms, ∂total/∂pixels) for an RGB 0..255 image."""
        o = self.o
        p = o.params
        pixels = pixels.detach()
        height, width = pixels.shape[-2:]
        # Pass 1: the statistics, summed over cores, without autograd: per style term (a layer,
        # inside a region's mask or not), the moment sums of statistics.py.
        terms = o.style_terms
        sums: list[MomentSums | None] = [None] * len(terms)
        content = pixels.new_zeros(())
        with torch.no_grad():
            for t in self._tiles(pixels):
                features = self._features(t.crop(pixels))
                content = content + self._content_sum(t, features)
                for k, term in enumerate(terms):
                    part = self._term_sums(t, features, term)
                    sums[k] = part if sums[k] is None else sums[k] + part  # type: ignore[operator]
                del features
        # The style term from the totals, and its derivative with respect to each term's sums.
        leaves = [(s.count, s.total.requires_grad_(True), s.outer.requires_grad_(True)) for s in sums if s is not None]
        with torch.enable_grad():
            style = pixels.new_zeros(())
            for term, (count, total, outer) in zip(terms, leaves, strict=True):
                style = style + term.weight * term.target(MomentSums(count, total, outer).normalised())
            if terms:
                style.backward()
        # A Gram term does not read the mean: no gradient reaches its Σ f, which then counts as 0.
        d_sums = [(_grad_or_zero(total), _grad_or_zero(outer)) for _count, total, outer in leaves]
        # Pass 2: per tile, the surrogate whose gradient is the global one on the core.
        grad = torch.zeros_like(pixels)
        for t in self._tiles(pixels):
            crop = t.crop(pixels).clone().requires_grad_(True)
            with torch.enable_grad():
                features = self._features(crop)
                surrogate = p.content_weight * self._content_sum(t, features)
                for term, (d_total, d_outer) in zip(terms, d_sums, strict=True):
                    part = self._term_sums(t, features, term)
                    linear = (d_total * part.total).sum() + (d_outer * part.outer).sum()
                    surrogate = surrogate + p.style_weight * linear
                del features
                surrogate.backward()
            assert crop.grad is not None
            t.crop(grad).add_(crop.grad)
        # Total variation on the whole image: a handful of image-sized tensors, no network.
        tv = pixels.new_zeros(())
        if p.tv_weight > 0:
            leaf = pixels.clone().requires_grad_(True)
            with torch.enable_grad():
                tv = tv_loss(leaf)
                (p.tv_weight * tv).backward()
            assert leaf.grad is not None
            grad.add_(leaf.grad)
            tv = tv.detach()
        terms = torch.stack([p.content_weight * content, p.style_weight * style.detach(), p.tv_weight * tv])
        return terms.sum(), terms, grad
