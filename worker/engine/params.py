"""Every control of a style-transfer run, with its default and its bounds, in one dataclass."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from impasto.worker.engine.errors import EngineError
from impasto.worker.engine.pyramid import pyramid_stages
from impasto.worker.engine.vgg import FEATURE_LAYERS, POOLINGS

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "image")
# Arithmetic of the VGG convolutions. bf16 runs them under autocast (on CUDA, tensor cores);
# Gram matrices, losses, the pixels and the optimiser stay fp32 either way.
PRECISIONS = ("fp32", "bf16")
STYLE_LOSSES = ("gram", "w2")  # losses.py: Gram matrices, or the 2-Wasserstein distance of Gaussian fits
# Colour control (Gatys et al. 2017, §5): match the styles' colours to the content's before the
# transfer, or the result's to the content's after it, by a linear map of RGB (color.py).
COLOR_TRANSFERS = ("none", "before", "after")
COLOR_METHODS = ("pca", "cholesky", "sym")

# Bounds: wide enough for any real use, tight enough that a typo fails fast.
MAX_ITERATIONS = 100_000
MIN_SIZE, MAX_SIZE = 16, 8192
MAX_STYLE_SCALE = 4.0
MAX_SCALES = 6
MAX_STYLES = 8
MIN_TILE = 32
MAX_REGIONS = 16
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

# A region of a label image: ("#rrggbb", ((style index, blend weight), ...)); no styles: content only.
RegionSpec = tuple[str, tuple[tuple[int, float], ...]]


@dataclass(frozen=True)
class StyleParams:
    """The parameters of one run. Defaults give a good painting at 512 px in 500 L-BFGS steps."""

    iterations: int = 500
    size: int = 512  # long side of the output, px
    style_scale: float = 1.0  # style image's long side relative to the content's, per scale
    # Loss weights. Both terms are normalised per layer (see losses.py), so α/β means the same
    # thing at any size and layer; a smaller content/style ratio gives more style.
    content_weight: float = 1.0
    style_weight: float = 25.0
    tv_weight: float = 0.0
    content_layers: tuple[str, ...] = ("conv4_2",)
    style_layers: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    style_layer_weights: tuple[float, ...] | None = None  # one per style layer; None = equal
    optimizer: str = "lbfgs"
    learning_rate: float | None = None  # None: 1.0 for L-BFGS, 0.05 for Adam (on the logit scale)
    # 100 reaches a lower objective than 10 or 25 in the same time (bench/lbfgs_settings.py);
    # the strong-Wolfe line search costs about what it saves at 256 px, and guards against bad steps.
    lbfgs_history: int = 100
    # Size of L-BFGS's first step at each stage, as the RMS change of the optimised logits.
    # torch's own first step, min(1, 1/|g|₁)·lr, is so short that its line search spends about
    # seven evaluations extrapolating; a step of this size is accepted in one or two
    # (bench/seed_race.py: 0.3 moved the race further per evaluation than 0.1). Above 1 M pixels
    # it shrinks as 1/√pixels (evaluation.first_step_rms: 0.3 overshoots at 2048 px). None keeps torch's.
    lbfgs_first_step: float | None = 0.3
    init: str = "content"  # "image" takes the image passed to stylize(init_image=...)
    seed: int = 0
    pooling: str = "max"
    style_blend_weights: tuple[float, ...] | None = None  # one per style; None = equal
    preserve_color: bool = False  # luminance-only transfer (Gatys et al. 2017)
    # Coarse-to-fine fractions of `size`, ending at 1.0. Single-scale by default: at 256 px,
    # (0.5, 1.0) did not reach the single-scale objective sooner (bench/multiscale.py).
    scales: tuple[float, ...] = (1.0,)
    # With the default scales, a size above this many px runs the automatic √2 pyramid
    # (pyramid.py) instead of a single scale; 0 = never. Kept at 0 by bench/pyramid.py (see RESULTS.md).
    pyramid_above: int = 0
    snapshot_every: int = 0  # 0 = no snapshots
    precision: str = "fp32"  # "bf16": convolutions under bf16 autocast; not yet measured on a GPU
    # Exact tiled evaluation (tiling.py): tiles of this many px (rounded down to a multiple of 16),
    # 0 = never; None = only when the whole image would not fit the memory budget (memory.py).
    tile: int | None = None
    style_loss: str = "gram"  # "w2": 2-Wasserstein distance between Gaussian fits of the features
    color_transfer: str = "none"  # "before": styles take the content's colours; "after": the result does
    color_transfer_method: str = "pca"  # the linear map: "pca", "cholesky" or "sym" (color.py)
    # Scale control: one row per style of one weight per style layer (replacing style_layer_weights
    # for that style), so that one style feeds the deep layers and another the shallow ones.
    style_layer_weights_per_style: tuple[tuple[float, ...], ...] | None = None
    style_scales: tuple[float, ...] | None = None  # one style_scale per style; None: style_scale for all
    # Spatial control: the regions of the label image passed to stylize(mask=...); None: no regions.
    regions: tuple[RegionSpec, ...] | None = None

    def lr(self) -> float:
        """The learning rate the optimiser gets."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1.0 if self.optimizer == "lbfgs" else 0.05

    def validate(self, style_count: int = 1) -> StyleParams:
        """Raise EngineError naming the first bad field; return self when all are good."""
        _check_int("iterations", self.iterations, 1, MAX_ITERATIONS)
        _check_int("size", self.size, MIN_SIZE, MAX_SIZE)
        _check_float("style_scale", self.style_scale, 0.05, MAX_STYLE_SCALE, allow_zero=False)
        for name in ("content_weight", "style_weight", "tv_weight"):
            _check_float(name, getattr(self, name), 0.0, 1e12)
        _check_layers("content_layers", self.content_layers)
        _check_layers("style_layers", self.style_layers)
        if self.content_weight + self.style_weight == 0:
            raise EngineError("content_weight and style_weight are both 0: nothing to optimise")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise EngineError(
                    f"style_layer_weights has {len(self.style_layer_weights)} values for "
                    f"{len(self.style_layers)} style layers"
                )
            for w in self.style_layer_weights:
                _check_float("style_layer_weights", w, 0.0, 1e12)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.learning_rate is not None:
            _check_float("learning_rate", self.learning_rate, 0.0, 1e4, allow_zero=False)
        _check_int("lbfgs_history", self.lbfgs_history, 1, 1000)
        if self.lbfgs_first_step is not None:
            _check_float("lbfgs_first_step", self.lbfgs_first_step, 0.0, 100.0, allow_zero=False)
        _check_choice("init", self.init, INITS)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_choice("pooling", self.pooling, POOLINGS)
        if not 1 <= style_count <= MAX_STYLES:
            raise EngineError(f"between 1 and {MAX_STYLES} style images are needed, got {style_count}")
        if self.style_blend_weights is not None:
            if len(self.style_blend_weights) != style_count:
                raise EngineError(
                    f"style_blend_weights has {len(self.style_blend_weights)} values for {style_count} styles"
                )
            for w in self.style_blend_weights:
                _check_float("style_blend_weights", w, 0.0, 1e12)
            if sum(self.style_blend_weights) <= 0:
                raise EngineError("style_blend_weights must not all be 0")
        if not 1 <= len(self.scales) <= MAX_SCALES:
            raise EngineError(f"scales needs 1 to {MAX_SCALES} values")
        for s in self.scales:
            _check_float("scales", s, 0.0, 1.0, allow_zero=False)
        if list(self.scales) != sorted(self.scales) or len(set(self.scales)) != len(self.scales):
            raise EngineError("scales must be strictly increasing (coarse to fine)")
        if self.scales[-1] != 1.0:
            raise EngineError("scales must end at 1.0 (the full size)")
        if self.iterations < len(self.scales):
            raise EngineError("iterations must be at least the number of scales")
        _check_int("snapshot_every", self.snapshot_every, 0, MAX_ITERATIONS)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_int("pyramid_above", self.pyramid_above, 0, MAX_SIZE)
        if self.tile is not None and self.tile != 0:
            _check_int("tile", self.tile, MIN_TILE, MAX_SIZE)
        self._validate_controls(style_count)
        return self

    def _validate_controls(self, style_count: int) -> None:
        """The controls of Gatys et al. 2017 and the style loss."""
        _check_choice("style_loss", self.style_loss, STYLE_LOSSES)
        _check_choice("color_transfer", self.color_transfer, COLOR_TRANSFERS)
        _check_choice("color_transfer_method", self.color_transfer_method, COLOR_METHODS)
        if self.color_transfer != "none" and self.preserve_color:
            raise EngineError("preserve_color and color_transfer are two colour controls; choose one")
        if self.style_layer_weights_per_style is not None:
            rows = self.style_layer_weights_per_style
            if len(rows) != style_count:
                raise EngineError(f"style_layer_weights_per_style has {len(rows)} rows for {style_count} styles")
            for row in rows:
                if len(row) != len(self.style_layers):
                    raise EngineError(
                        f"style_layer_weights_per_style: a row has {len(row)} values for "
                        f"{len(self.style_layers)} style layers"
                    )
                for w in row:
                    _check_float("style_layer_weights_per_style", w, 0.0, 1e12)
            if not any(w > 0 for row in rows for w in row):
                raise EngineError("style_layer_weights_per_style must not all be 0")
        if self.style_scales is not None:
            if len(self.style_scales) != style_count:
                raise EngineError(f"style_scales has {len(self.style_scales)} values for {style_count} styles")
            for s in self.style_scales:
                _check_float("style_scales", s, 0.05, MAX_STYLE_SCALE, allow_zero=False)
        if self.regions is not None:
            _check_regions(self.regions, style_count)

    def style_layer_weight(self, style: int, layer: int) -> float:
        """The weight of style `style` at its `layer`-th style layer (scale control), else the layer's weight."""
        if self.style_layer_weights_per_style is not None:
            return self.style_layer_weights_per_style[style][layer]
        return self.layer_weights()[layer]

    def scale_of_style(self, style: int) -> float:
        """The style_scale of one style image."""
        return self.style_scales[style] if self.style_scales is not None else self.style_scale

    def blend(self, style_count: int) -> list[float]:
        """Style blend weights normalised to sum to 1."""
        raw = self.style_blend_weights or tuple(1.0 for _ in range(style_count))
        total = sum(raw)
        return [w / total for w in raw]

    def layer_weights(self) -> list[float]:
        """Per-style-layer weights; equal by default (the paper's w_l = 1/5)."""
        if self.style_layer_weights is None:
            return [1.0 / len(self.style_layers)] * len(self.style_layers)
        return list(self.style_layer_weights)

    def uses_pyramid(self) -> bool:
        """True when the automatic pyramid replaces the single default scale."""
        return self.scales == (1.0,) and 0 < self.pyramid_above < self.size

    def stage_plan(self) -> list[tuple[float, int, int]]:
        """(scale, first iteration, last iteration) per stage, 1-based.

        Given scales split the iterations evenly (the remainder to the last stage); the automatic
        pyramid splits them as pyramid.py says.
        """
        if self.uses_pyramid():
            counts = pyramid_stages(self.size, self.iterations)
        else:
            per_stage, extra = divmod(self.iterations, len(self.scales))
            counts = [(s, per_stage + (extra if i == len(self.scales) - 1 else 0)) for i, s in enumerate(self.scales)]
        plan, start = [], 1
        for scale, count in counts:
            plan.append((scale, start, start + count - 1))
            start += count
        return plan


def field_names() -> list[str]:
    """The names of all parameters, in declaration order."""
    return [f.name for f in fields(StyleParams)]


def engine_regions(regions: dict[str, dict[str, float]] | None) -> tuple[RegionSpec, ...] | None:
    """The job schema's regions ({colour: {style index: weight}}) as StyleParams.regions."""
    if regions is None:
        return None
    return tuple(
        (colour, tuple((int(index), float(weight)) for index, weight in styles.items()))
        for colour, styles in regions.items()
    )


def _check_regions(regions: tuple[RegionSpec, ...], style_count: int) -> None:
    if not 1 <= len(regions) <= MAX_REGIONS:
        raise EngineError(f"regions needs 1 to {MAX_REGIONS} colours")
    colours = [colour.lower() if isinstance(colour, str) else colour for colour, _ in regions]
    if len(set(colours)) != len(colours):
        raise EngineError("regions names a colour twice")
    for colour, styles in regions:
        if not isinstance(colour, str) or not COLOUR.match(colour):
            raise EngineError(f"regions: colour must be #rrggbb, got {colour!r}")
        for index, weight in styles:
            _check_int(f"regions[{colour}]: style index", index, 0, style_count - 1)
            _check_float(f"regions[{colour}]: blend weight", weight, 0.0, 1e12)
        if styles and sum(w for _, w in styles) <= 0:
            raise EngineError(f"regions[{colour}]: blend weights must not all be 0")
        if len({i for i, _ in styles}) != len(styles):
            raise EngineError(f"regions[{colour}] names a style twice")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EngineError(f"{name} must be an integer from {low} to {high}, got {value!r}")


def _check_float(name: str, value: object, low: float, high: float, *, allow_zero: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EngineError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high or (not allow_zero and value == 0):
        raise EngineError(
            f"{name} must be finite and in [{low}, {high}]{'' if allow_zero else ', not 0'}, got {value!r}"
        )


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise EngineError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_layers(name: str, layers: tuple[str, ...]) -> None:
    if not layers:
        raise EngineError(f"{name} must name at least one layer")
    for layer in layers:
        if layer not in FEATURE_LAYERS:
            raise EngineError(f"{name}: unknown layer {layer!r}; known: {', '.join(FEATURE_LAYERS)}")
    if len(set(layers)) != len(layers):
        raise EngineError(f"{name} names a layer twice")
