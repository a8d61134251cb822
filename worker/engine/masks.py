"""Spatial control (Gatys et al. 2017, §4): label images, their regions, and masks carried through VGG19.

A label image paints each region in one exact colour. It is resized to the image it labels with
nearest-neighbour (no new colours at the edges) and split into one 0/1 mask per region.

Propagation through the network. At every pooling layer the mask is pooled as the features are
(2×2, stride 2, ceil mode). Two versions are carried:
- "inside": eroded at each 3×3 convolution and min-pooled at each pooling layer, so a position
  belongs to a region only if its receptive field (as far as the convolutions go) lies entirely
  inside it. Its features then never see a neighbouring region, which keeps one region's style
  from bleeding across the border (the guided Gram of Gatys 2017 with "inside" guidance).
- "touching": max-pooled at pooling layers, never eroded: every position whose window touches the region.
A region uses its inside mask at a layer when that still has MIN_INSIDE_POSITIONS positions, and
else the touching one, so that a small region keeps a style term at deep layers of a small image
(where the receptive field spans most of the picture and erosion would leave nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from PIL import Image

from impasto.worker.engine import imaging
from impasto.worker.engine.errors import EngineError
from impasto.worker.engine.params import COLOUR, MAX_REGIONS, StyleParams
from impasto.worker.engine.vgg import CONV_NAMES

Colour = tuple[int, int, int]
# Below this many inside positions a region's deep-layer statistics are too few to trust: use "touching".
MIN_INSIDE_POSITIONS = 4


@dataclass(frozen=True)
class Region:
    """One colour of the label image and the styles it takes, (style index, blend weight); none: content only."""

    colour: str  # "#rrggbb"
    styles: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Guides:
    """The regions and their masks at one scale: the content's, and each style's (None: whole style everywhere)."""

    regions: tuple[Region, ...]
    content: torch.Tensor  # (R, 1, H, W) 0/1, one mask per region
    styles: tuple[torch.Tensor | None, ...]  # per style image: (R, 1, h, w) or None


def parse_colour(text: str) -> Colour:
    """'#rrggbb' to an (r, g, b) triple."""
    if not COLOUR.match(text):
        raise EngineError(f"region colour must be #rrggbb, got {text!r}")
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def image_colours(label: Image.Image) -> set[Colour]:
    """The distinct colours of a label image (RGB); EngineError past MAX_REGIONS."""
    found = label.convert("RGB").getcolors(maxcolors=MAX_REGIONS)
    if found is None:
        raise EngineError(
            f"the label image has more than {MAX_REGIONS} colours; paint each region in one exact colour "
            "and save it as PNG (JPEG adds colours at the edges)"
        )
    return {cast(Colour, colour) for _count, colour in found}  # RGB: a 3-tuple (Pillow types it loosely)


def check_label_colours(label: Image.Image, regions: Sequence[Region], name: str) -> None:
    """EngineError if the label image has a colour no region names."""
    named = {parse_colour(r.colour) for r in regions}
    unnamed = sorted(image_colours(label) - named)
    if unnamed:
        listed = ", ".join("#{:02x}{:02x}{:02x}".format(*c) for c in unnamed)
        raise EngineError(f"{name} has colours that no region names: {listed}; name each in regions")


def region_masks(label: Image.Image, regions: Sequence[Region], size: tuple[int, int]) -> torch.Tensor:
    """(R, 1, H, W) 0/1 masks of the regions in a label image resized to (width, height) with nearest-neighbour."""
    resized = label.convert("RGB").resize(size, Image.Resampling.NEAREST)
    data = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8).view(size[1], size[0], 3)
    masks = [(data == torch.tensor(parse_colour(r.colour), dtype=torch.uint8)).all(dim=-1) for r in regions]
    return torch.stack(masks).unsqueeze(1).float()


def layer_masks(masks: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Each region's mask at each of `layers` (R, 1, h, w): inside where it keeps enough positions, else touching."""
    wanted = set(layers)
    deepest = max(CONV_NAMES.index(name) for name in wanted)
    inside, touching = masks, masks
    out: dict[str, torch.Tensor] = {}
    for index, name in enumerate(CONV_NAMES[: deepest + 1]):
        if index > 0 and name.endswith("_1"):  # the pooling before each block, as in VGG19Features.forward
            touching = F.max_pool2d(touching, kernel_size=2, stride=2, ceil_mode=True)
            inside = -F.max_pool2d(-inside, kernel_size=2, stride=2, ceil_mode=True)
        # A 3×3 convolution: a position is inside only if its 3×3 neighbours are; the padding (beyond
        # the image) counts as inside, since there is no other region there to bleed from.
        inside = -F.max_pool2d(-inside, kernel_size=3, stride=1, padding=1)
        if name in wanted:
            enough = inside.sum(dim=(1, 2, 3), keepdim=True) >= MIN_INSIDE_POSITIONS
            out[name] = torch.where(enough, inside, touching)
    return out


@dataclass(frozen=True)
class Labels:
    """The label images of a run, checked: the content's, and each style's or None."""

    regions: tuple[Region, ...]
    content: Image.Image
    styles: tuple[Image.Image | None, ...]

    def guides(
        self, content_size: tuple[int, int], style_sizes: Sequence[tuple[int, int]], device: torch.device
    ) -> Guides:
        """The masks of one scale: the content's label at the content's size, each style's at its own."""
        styles = tuple(
            None if label is None else region_masks(label, self.regions, size).to(device)
            for label, size in zip(self.styles, style_sizes, strict=True)
        )
        return Guides(self.regions, region_masks(self.content, self.regions, content_size).to(device), styles)


def read_labels(
    params: StyleParams,
    style_count: int,
    mask: str | Path | Image.Image | None,
    style_masks: Sequence[str | Path | Image.Image | None] | None,
) -> Labels | None:
    """The run's label images, opened and checked against params.regions; None without regions."""
    if params.regions is None:
        if mask is not None or (style_masks is not None and any(m is not None for m in style_masks)):
            raise EngineError("a mask needs regions: name the styles each colour takes")
        return None
    if mask is None:
        raise EngineError("regions need a mask: the content's label image")
    regions = tuple(Region(colour.lower(), tuple(styles)) for colour, styles in params.regions)
    content = imaging.open_image(mask)
    check_label_colours(content, regions, "the mask")
    masks = list(style_masks) if style_masks is not None else [None] * style_count
    if len(masks) != style_count:
        raise EngineError(f"{len(masks)} style masks for {style_count} styles; give one per style (or None)")
    styles = []
    for index, label in enumerate(masks):
        opened = None if label is None else imaging.open_image(label)
        if opened is not None:
            check_label_colours(opened, regions, f"style mask {index}")
        styles.append(opened)
    return Labels(regions, content, tuple(styles))
