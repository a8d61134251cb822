"""Exact tiled evaluation: the objective and its gradient computed tile by tile, in bounded memory.

Every loss term is a function of statistics that are sums over feature positions: a style term's
moment sums Σw, Σw·f, Σw·f fᵀ (statistics.py: the Gram and W2 losses, masked per region or not), a
content layer's Σ (F − P)². So one pass without autograd sums each tile's statistics over its
*core* positions (each feature position belongs to exactly one core); the loss and its derivative
with respect to the statistics follow from the totals. A second pass runs, per tile, a backward of
the surrogate ⟨∂L/∂S, S_tile⟩ + the tile's content sum, whose gradient with respect to the tile's
features is exactly the global ∂L/∂F restricted to its core, and adds the tile's whole input
gradient, halo included, into one full-size buffer.

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

from impasto.worker.engine.losses import tv_loss
from impasto.worker.engine.masks import layer_masks
from impasto.worker.engine.statistics import MomentSums, feature_moments
from impasto.worker.engine.vgg import VGG19Features

if TYPE_CHECKING:  # objective.py imports this module for its tiled target passes
    from impasto.worker.engine.objective import Objective, StyleTerm

ALIGN = 16  # VGG19's pooling stride before conv5_1: tiles start on its grid
HALO = 80  # px: conv5_1 reads 70 px before and 85 − 15 = 70 px after a 16-px cell; rounded up to ALIGN
MIN_TILE = 32
WHOLE = -1  # the region index of unmasked statistics (objective.py's terms use it too)
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


def tiled_moment_sums(
    model: VGG19Features,
    pixels: torch.Tensor,
    layers: tuple[str, ...],
    pooling: str,
    tile: int,
    masks: torch.Tensor | None = None,  # (R, 1, H, W) region masks of this image, or None
    before_layer: Callable[[], None] | None = None,
) -> dict[tuple[str, int], MomentSums]:
    """One image's moment sums per (layer, WHOLE) and per (layer, region), summed over tiles without autograd."""
    height, width = pixels.shape[-2:]
    at_layer = layer_masks(masks, layers) if masks is not None else {}
    sums: dict[tuple[str, int], MomentSums] = {}
    with torch.no_grad():
        for t in tiles(height, width, tile):
            features = model(t.crop(pixels), layers, pooling, before_layer)
            for name in layers:
                core = t.core(features[name], name)
                pieces = {(name, WHOLE): feature_moments(core)}
                for region, mask in enumerate(at_layer.get(name, ())):
                    pieces[(name, region)] = feature_moments(core, t.full(mask[None], name))
                for key, piece in pieces.items():
                    sums[key] = sums[key] + piece if key in sums else piece
    return sums


class TiledEvaluation:
    """The objective's value, weighted terms and gradient with respect to the pixels, tile by tile.

    Works from an Objective's content targets and style terms (statistics.py sums, masked or not,
    against a Gram or W2 target): the same loss as Objective.__call__, reorganised as statistics
    summed over positions.
    """

    def __init__(
        self,
        objective: Objective,
        tile: int,
        halo: int = HALO,
        check_interrupt: Callable[[], None] | None = None,  # before each tile of both passes
    ) -> None:
        self.o = objective
        self.tile = tile
        self.halo = halo
        self.check_interrupt = check_interrupt or (lambda: None)

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

    def _tiles(self, pixels: torch.Tensor) -> Iterator[Tile]:
        """The tiles in order, with an interrupt check before each: one evaluation of a print-size image
        takes minutes, and a cancel or a shutdown should wait for one tile, not for all of them."""
        height, width = pixels.shape[-2:]
        for t in tiles(height, width, self.tile, self.halo):
            self.check_interrupt()
            yield t

    def _term_sums(
        self, t: Tile, features: dict[str, torch.Tensor], term: StyleTerm, unmasked: dict[str, MomentSums]
    ) -> MomentSums:
        """A style term's moment sums over the tile's core (inside the term's mask, if any)."""
        core = t.core(features[term.layer], term.layer)
        if term.mask is None:
            if term.layer not in unmasked:
                unmasked[term.layer] = feature_moments(core)
            return unmasked[term.layer]
        return feature_moments(core, t.full(term.mask, term.layer))

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, [content, style, tv] weighted terms, ∂total/∂pixels) for an RGB 0..255 image."""
        o = self.o
        p = o.params
        terms = o.style_terms
        pixels = pixels.detach()
        # Pass 1: each style term's moment sums over the cores, and the content error, without autograd.
        sums: list[MomentSums | None] = [None] * len(terms)
        content = pixels.new_zeros(())
        with torch.no_grad():
            for t in self._tiles(pixels):
                features = self._features(t.crop(pixels))
                content = content + self._content_sum(t, features)
                unmasked: dict[str, MomentSums] = {}
                for i, term in enumerate(terms):
                    piece = self._term_sums(t, features, term, unmasked)
                    previous = sums[i]
                    sums[i] = piece if previous is None else previous + piece
                del features
        # The style term from the totals, and its derivative with respect to each term's sums.
        leaves = [_leaf(s) for s in sums]
        with torch.enable_grad():
            style = pixels.new_zeros(())
            for term, leaf in zip(terms, leaves, strict=True):
                style = style + term.weight * term.target(leaf.normalised())
            if style.requires_grad:
                style.backward()
        slopes = [(leaf.total.grad, leaf.outer.grad) for leaf in leaves]  # None where a loss ignores a sum
        # Pass 2: per tile, the surrogate ⟨∂L/∂S, S_tile⟩ whose gradient is the global one on the core.
        grad = torch.zeros_like(pixels)
        for t in self._tiles(pixels):
            crop = t.crop(pixels).clone().requires_grad_(True)
            with torch.enable_grad():
                features = self._features(crop)
                surrogate = p.content_weight * self._content_sum(t, features)
                unmasked = {}
                for term, (d_total, d_outer) in zip(terms, slopes, strict=True):
                    piece = self._term_sums(t, features, term, unmasked)
                    if d_total is not None:
                        surrogate = surrogate + p.style_weight * (d_total * piece.total).sum()
                    if d_outer is not None:
                        surrogate = surrogate + p.style_weight * (d_outer * piece.outer).sum()
                del features
                surrogate.backward()
            assert crop.grad is not None
            t.crop(grad).add_(crop.grad)
        # Total variation on the whole image: a handful of image-sized tensors, no network.
        tv = pixels.new_zeros(())
        if p.tv_weight > 0:
            image = pixels.clone().requires_grad_(True)
            with torch.enable_grad():
                tv = tv_loss(image)
                (p.tv_weight * tv).backward()
            assert image.grad is not None
            grad.add_(image.grad)
            tv = tv.detach()
        terms_out = torch.stack([p.content_weight * content, p.style_weight * style.detach(), p.tv_weight * tv])
        return terms_out.sum(), terms_out, grad


def _leaf(sums: MomentSums | None) -> MomentSums:
    """Sums as autograd leaves (count stays a constant)."""
    assert sums is not None  # every term saw at least one tile
    return MomentSums(sums.count, sums.total.clone().requires_grad_(True), sums.outer.clone().requires_grad_(True))
