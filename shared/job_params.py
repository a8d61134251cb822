"""The job parameter schema: what a client may ask of the engine, with bounds and defaults.

Mirrors impasto.worker.engine.StyleParams (a test keeps the two in step) without importing torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

# The VGG19 layers a job may name (conv layers, taken after their ReLU).
VGG19_LAYERS: tuple[str, ...] = (
    "conv1_1", "conv1_2", "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4",
    "conv5_1", "conv5_2", "conv5_3", "conv5_4",
)  # fmt: skip
Layer = Literal[
    "conv1_1", "conv1_2", "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4",
    "conv5_1", "conv5_2", "conv5_3", "conv5_4",
]  # fmt: skip

# Bounds a queue job may ask for (the engine alone allows more).
MAX_JOB_ITERATIONS = 5000
MAX_JOB_SIZE = 8192  # the engine's bound; a deployment's limit is Settings.max_output_pixels (in pixels)
MAX_WEIGHT = 1e9
MAX_STYLES = 8  # the engine's most style images; IMPASTO_MAX_STYLES may lower it per deployment
MAX_REGIONS = 16
COLOUR_PATTERN = r"^#[0-9a-fA-F]{6}$"
STYLE_INDEX_PATTERN = r"^[0-7]$"  # a style's index among the `style` parts, 0-based, as a JSON object key

Weight = float
Colour = Annotated[str, StringConstraints(pattern=COLOUR_PATTERN)]
StyleIndex = Annotated[str, StringConstraints(pattern=STYLE_INDEX_PATTERN)]
LayerWeights = Annotated[tuple[Annotated[float, Field(ge=0, le=MAX_WEIGHT)], ...], Field(min_length=1, max_length=16)]


def schema_keywords(**keywords: Any) -> Callable[[dict[str, Any]], None]:
    """A json_schema_extra publishing checks the validators below make: on the array (of an optional field), and
    `items=` on its items. Only what JSON Schema can say; cross-field rules (one weight per layer) stay prose."""

    def edit(schema: dict[str, Any]) -> None:
        array = next((branch for branch in schema.get("anyOf", []) if branch.get("type") == "array"), schema)
        array.update({name: value for name, value in keywords.items() if name != "items"})
        array["items"].update(keywords.get("items", {}))

    return edit


UNIQUE_LAYERS = schema_keywords(uniqueItems=True)  # _consistent: a layer named twice is refused
# _finite_non_negative: each weight in [0, MAX_WEIGHT], not all 0.
WEIGHTS = schema_keywords(minItems=1, contains={"exclusiveMinimum": 0}, items={"minimum": 0, "maximum": MAX_WEIGHT})
# _coarse_to_fine: each in (0, 1], one of them 1.0; distinct (the order, increasing, JSON Schema cannot say).
SCALES = schema_keywords(uniqueItems=True, contains={"const": 1.0}, items={"exclusiveMinimum": 0, "maximum": 1})


def _closed_regions(schema: dict[str, Any]) -> None:
    """The regions schema refuses keys that are not a colour (of a region) or a style index (in a region)."""
    regions = next(branch for branch in schema["anyOf"] if branch.get("type") == "object")
    regions["additionalProperties"] = False
    for inner in regions["patternProperties"].values():
        inner["additionalProperties"] = False
        for weight in inner["patternProperties"].values():
            weight.update({"minimum": 0, "maximum": MAX_WEIGHT})


class JobParams(BaseModel):
    """Parameters of a style-transfer job; unknown keys are refused, and so are values of another type."""

    # strict: the types the schema promises, not what pydantic could coerce into them; `true` is
    # not an iteration count, "yes" not a boolean, "64" not a size. A float field still takes an
    # integer (JSON has one number type). Validate JSON text with model_validate_json: strict
    # Python-mode validation takes tuples only, while JSON arrays become the tuple fields.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    iterations: int = Field(500, ge=1, le=MAX_JOB_ITERATIONS, description="optimisation steps in all")
    size: int = Field(512, ge=16, le=MAX_JOB_SIZE, description="long side of the output, px")
    style_scale: float = Field(1.0, gt=0.05, le=4.0, description="style image size relative to the content")
    content_weight: Weight = Field(1.0, ge=0, le=MAX_WEIGHT, description="α, relative content loss weight")
    style_weight: Weight = Field(25.0, ge=0, le=MAX_WEIGHT, description="β, relative style loss weight")
    tv_weight: Weight = Field(0.0, ge=0, le=MAX_WEIGHT, description="total-variation weight")
    content_layers: tuple[Layer, ...] = Field(
        ("conv4_2",), min_length=1, max_length=16, json_schema_extra=UNIQUE_LAYERS
    )
    style_layers: tuple[Layer, ...] = Field(
        ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"),
        min_length=1,
        max_length=16,
        json_schema_extra=UNIQUE_LAYERS,
    )
    style_layer_weights: tuple[Weight, ...] | None = Field(
        None, description="one per style layer", json_schema_extra=WEIGHTS
    )
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    learning_rate: float | None = Field(None, gt=0, le=1e4, description="default: 1 for L-BFGS, 0.05 for Adam")
    init: Literal["content", "noise"] = "content"
    seed: int = Field(0, ge=0, le=2**63 - 1)
    pooling: Literal["max", "avg"] = "max"
    style_blend_weights: tuple[Weight, ...] | None = Field(
        None, description="one per style image", json_schema_extra=WEIGHTS
    )
    preserve_color: bool = False
    scales: tuple[float, ...] = Field(
        (1.0,),
        min_length=1,
        max_length=6,
        description="coarse-to-fine fractions, increasing, ending at 1.0",
        json_schema_extra=SCALES,
    )
    pyramid_above: int = Field(
        0,
        ge=0,
        le=8192,
        description="with the default scales, a size above this many px runs coarse to fine automatically "
        "(steps of √2 from 256 px; the engine splits the iterations); 0 = never",
    )
    snapshot_every: int = Field(50, ge=0, le=MAX_JOB_ITERATIONS, description="0 = no snapshots")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: the network's convolutions under bf16 autocast (Grams and losses stay fp32)"
    )
    tile: int | None = Field(
        None,
        description="exact tiled evaluation in tiles of this many px (a multiple of 16 is used); 0 = never; "
        "default: only when the image would not fit the worker's memory",
    )

    @field_validator("tile")
    @classmethod
    def _tile_size(cls, value: int | None) -> int | None:
        if value is not None and value != 0 and not 32 <= value <= 8192:
            raise ValueError("tile must be 0 (off) or from 32 to 8192 px")
        return value

    style_loss: Literal["gram", "w2"] = Field(
        "gram",
        description="gram: Gram matrices (Gatys et al.); w2: 2-Wasserstein distance between Gaussian fits "
        "(mean, covariance) of the features, normalised so that style_weight means the same",
    )
    color_transfer: Literal["none", "before", "after"] = Field(
        "none",
        description="colour control: before: the style images take the content's colour statistics; "
        "after: the result does (not with preserve_color)",
    )
    color_transfer_method: Literal["pca", "cholesky", "sym"] = Field(
        "pca", description="the linear colour map: pca, cholesky, or sym (symmetric matrix square root)"
    )
    style_layer_weights_per_style: tuple[LayerWeights, ...] | None = Field(
        None,
        min_length=1,
        max_length=MAX_STYLES,
        description="scale control: one row per style image of one weight per style layer (replacing "
        "style_layer_weights for that style), e.g. one style on deep layers and another on shallow ones",
    )
    style_scales: tuple[Annotated[float, Field(gt=0.05, le=4.0)], ...] | None = Field(
        None, min_length=1, max_length=MAX_STYLES, description="one style_scale per style image"
    )
    regions: dict[Colour, dict[StyleIndex, Weight]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_REGIONS,
        description="spatial control, with a `mask` label image: each colour (#rrggbb) of the mask maps to "
        'the styles it takes, style index -> blend weight ({"0": 1}); {} for content only. Every colour '
        "of the mask must be named",
        json_schema_extra=_closed_regions,
    )

    @field_validator("content_weight", "style_weight", "tv_weight", "learning_rate")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("style_layer_weights", "style_blend_weights")
    @classmethod
    def _finite_non_negative(cls, values: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if values is not None:
            if any(not math.isfinite(v) or v < 0 or v > MAX_WEIGHT for v in values):
                raise ValueError(f"each weight must be finite and in [0, {MAX_WEIGHT:g}]")
            if sum(values) <= 0:
                raise ValueError("weights must not all be 0")
        return values

    @field_validator("scales")
    @classmethod
    def _coarse_to_fine(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if any(not math.isfinite(v) or not 0 < v <= 1 for v in values):
            raise ValueError("each scale must be in (0, 1]")
        if list(values) != sorted(set(values)):
            raise ValueError("scales must be strictly increasing")
        if values[-1] != 1.0:
            raise ValueError("scales must end at 1.0")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> JobParams:
        if len(set(self.content_layers)) != len(self.content_layers):
            raise ValueError("content_layers names a layer twice")
        if len(set(self.style_layers)) != len(self.style_layers):
            raise ValueError("style_layers names a layer twice")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise ValueError("style_layer_weights needs one value per style layer")
        if self.content_weight + self.style_weight == 0:
            raise ValueError("content_weight and style_weight are both 0")
        if self.iterations < len(self.scales):
            raise ValueError("iterations must be at least the number of scales")
        if self.color_transfer != "none" and self.preserve_color:
            raise ValueError("preserve_color and color_transfer are two colour controls; choose one")
        for row in self.style_layer_weights_per_style or ():
            if len(row) != len(self.style_layers):
                raise ValueError("style_layer_weights_per_style needs one value per style layer in each row")
        if self.style_layer_weights_per_style is not None and not any(
            w > 0 for row in self.style_layer_weights_per_style for w in row
        ):
            raise ValueError("style_layer_weights_per_style must not all be 0")
        if self.regions is not None:
            colours = [colour.lower() for colour in self.regions]
            if len(set(colours)) != len(colours):
                raise ValueError("regions names a colour twice")
            for colour, styles in self.regions.items():
                if any(not math.isfinite(w) or not 0 <= w <= MAX_WEIGHT for w in styles.values()):
                    raise ValueError(f"regions[{colour}]: each blend weight must be finite and in [0, {MAX_WEIGHT:g}]")
                if styles and sum(styles.values()) <= 0:
                    raise ValueError(f"regions[{colour}]: blend weights must not all be 0")
        return self

    def check_style_count(self, count: int) -> None:
        """Raise ValueError when the per-style fields do not match the number of style images."""
        if self.style_blend_weights is not None and len(self.style_blend_weights) != count:
            raise ValueError(f"style_blend_weights has {len(self.style_blend_weights)} values for {count} style images")
        for name in ("style_layer_weights_per_style", "style_scales"):
            values = getattr(self, name)
            if values is not None and len(values) != count:
                raise ValueError(f"{name} has {len(values)} values for {count} style images")
        for colour, styles in (self.regions or {}).items():
            for index in styles:
                if int(index) >= count:
                    raise ValueError(f"regions[{colour}]: style index {index} is out of range for {count} style images")

    def style_count_field(self, count: int) -> str:
        """The field check_style_count refuses for `count` style images (for the 422's detail)."""
        if self.style_blend_weights is not None and len(self.style_blend_weights) != count:
            return "style_blend_weights"
        for name in ("style_layer_weights_per_style", "style_scales"):
            if getattr(self, name) is not None and len(getattr(self, name)) != count:
                return name
        return "regions"

    def style_scale_of(self, index: int) -> float:
        """The style_scale of style image `index`."""
        return self.style_scales[index] if self.style_scales is not None else self.style_scale

    def pixel_count(self, aspect: float) -> int:
        """Output pixels for a content image of width/height `aspect`."""
        long_side = self.size
        short_side = round(long_side / aspect) if aspect >= 1 else round(long_side * aspect)
        return long_side * max(1, short_side)
