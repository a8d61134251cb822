"""Read and validate a POST /v1/jobs form; nothing is stored until every check has passed."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import Request
from pydantic import ValidationError
from werkzeug.datastructures import FileStorage

from api.errors import ApiError, validation_details
from api.images import CheckedImage, ImageRejected, check_image
from shared.job_params import JobParams
from shared.settings import Settings

# HTTP status per image rejection code: another format is 415, a bad or huge image 422.
IMAGE_ERROR_STATUS: dict[str, int] = {"unsupported_format": 415}


@dataclass(frozen=True)
class Submission:
    """A job request that passed every check."""

    content: CheckedImage
    styles: list[CheckedImage]
    params: JobParams


def read_submission(request: Request, settings: Settings) -> Submission:
    """Check, in order: body size, the files, each image, then the parameters."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the job as multipart/form-data")
    files = request.files  # parsing the body raises 413 past MAX_CONTENT_LENGTH
    contents = files.getlist("content")
    styles = files.getlist("style")
    if len(contents) != 1:
        raise ApiError(400, "bad_request", "send exactly one 'content' image file")
    if not styles:
        raise ApiError(400, "bad_request", "send at least one 'style' image file")
    if len(styles) > settings.max_styles:
        raise ApiError(
            422, "too_many_styles", f"{len(styles)} style images sent; at most {settings.max_styles} are allowed"
        )
    content = read_image(contents[0], "content", settings)
    style_images = [read_image(upload, f"style[{index}]", settings) for index, upload in enumerate(styles)]
    params = read_params(request)
    try:
        params.check_style_count(len(style_images))
    except ValueError as exc:
        raise invalid_params([{"field": "style_blend_weights", "message": str(exc)}]) from exc
    return Submission(content=content, styles=style_images, params=params)


def read_image(upload: FileStorage, field: str, settings: Settings) -> CheckedImage:
    """One uploaded file, decoded and checked; the error names the form field."""
    try:
        return check_image(upload.read(), settings.max_image_pixels)
    except ImageRejected as exc:
        raise ApiError(
            IMAGE_ERROR_STATUS.get(exc.code, 422),
            exc.code,
            f"{field}: {exc.message}",
            details=[{"field": field, "message": exc.message}],
        ) from exc


def read_params(request: Request) -> JobParams:
    """The `params` JSON object (a form field, or a file part as curl -F params=@f.json sends)."""
    upload = request.files.get("params")
    raw = upload.read().decode("utf-8", "replace") if upload is not None else request.form.get("params", "")
    if not raw.strip():
        return JobParams.model_validate({})
    try:
        values = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"params is not valid JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise invalid_params([{"field": "params", "message": "must be a JSON object"}])
    try:
        return JobParams.model_validate(values)
    except ValidationError as exc:
        raise invalid_params(validation_details(exc, root="params")) from exc


def invalid_params(details: list[dict[str, str]]) -> ApiError:
    """The 422 for parameters that fail the schema, one detail per field."""
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return ApiError(422, "invalid_params", f"invalid params: {summary}", details=details)
