"""Label images (masks) for spatial control: their colours checked against the job's `regions`.

A label image paints each region in one exact colour; every colour it holds must be a region the
params name, and every style index a region names must be one of the job's style images (that
one is JobParams.check_style_count). The decode is the full image's, within the decode budget.
"""

from __future__ import annotations

import io
from typing import cast

from PIL import Image

from impasto.api.decode_budget import DecodeBudget
from impasto.api.errors import ApiError
from impasto.api.images import CheckedImage, reserved
from impasto.shared.job_params import MAX_REGIONS, JobParams


def mask_error(field: str, message: str) -> ApiError:
    """The 422 for a label image that does not fit the job."""
    return ApiError(422, "invalid_mask", f"{field}: {message}", details=[{"field": field, "message": message}])


def label_colours(image: CheckedImage, budget: DecodeBudget | None) -> set[str] | None:
    """The '#rrggbb' colours of a label image; None when it has more than MAX_REGIONS."""
    with reserved(budget, image.width * image.height * 4), Image.open(io.BytesIO(image.data)) as opened:
        found = opened.convert("RGB").getcolors(maxcolors=MAX_REGIONS)
    if found is None:
        return None
    return {"#{:02x}{:02x}{:02x}".format(*cast(tuple[int, int, int], colour)) for _count, colour in found}


def check_label(image: CheckedImage, field: str, params: JobParams, budget: DecodeBudget | None) -> None:
    """422 unless every colour of the label image is a region of params.regions."""
    assert params.regions is not None
    colours = label_colours(image, budget)
    if colours is None:
        raise mask_error(
            field,
            f"has more than {MAX_REGIONS} colours; paint each region in one exact colour and send a PNG "
            "(JPEG blurs the edges into new colours)",
        )
    named = {colour.lower() for colour in params.regions}
    if unnamed := sorted(colours - named):
        raise mask_error(field, f"has colours that no region names: {', '.join(unnamed)}; name each in params.regions")


def check_mask_parts(params: JobParams, mask_count: int, style_mask_count: int, style_count: int) -> None:
    """422 for masks without regions, regions without a mask, or a style_mask count that is not one per style."""
    if params.regions is None:
        if mask_count or style_mask_count:
            raise mask_error("mask", "label images need params.regions: the styles each colour takes")
        return
    if mask_count != 1:
        raise mask_error("mask", "params.regions needs exactly one 'mask' part: the content's label image")
    if style_mask_count not in (0, style_count):
        raise mask_error(
            "style_mask",
            f"{style_mask_count} style_mask parts for {style_count} style images; send one per style, "
            "in the order of the styles (an empty part for a style without one), or none",
        )
