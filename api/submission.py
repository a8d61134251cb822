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
from shared.size_classes import max_job_pixels, queue_for
from shared.webhooks import WebhookRefused, check_webhook_url, parse_events_filter

# HTTP status per image rejection code: another format is 415, a bad or huge image 422.
IMAGE_ERROR_STATUS: dict[str, int] = {"unsupported_format": 415}
# Real params are a few hundred bytes; the cap keeps a file part from feeding the JSON parser megabytes.
MAX_PARAMS_LENGTH = 64 * 1024
# Errors listed in a 422; a params object with thousands of unknown keys gets the first few.
MAX_DETAILS = 20


@dataclass(frozen=True)
class Submission:
    """A job request that passed every check."""

    content: CheckedImage
    styles: list[CheckedImage]
    params: JobParams
    queue: str  # the queue of the job's size class
    webhook: str | None = None  # URL that gets signed job events (shared/webhooks.py)
    webhook_events: list[str] | None = None  # the events it gets, sorted; None with no webhook


def read_submission(request: Request, settings: Settings) -> Submission:
    """Check, cheapest first: body size, the files, the parameters, then each image (a full decode)."""
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
    params = read_params(request)
    try:
        params.check_style_count(len(styles))
    except ValueError as exc:
        raise invalid_params([{"field": "style_blend_weights", "message": str(exc)}]) from exc
    content = read_image(contents[0], "content", settings)
    style_images = [read_image(upload, f"style[{index}]", settings) for index, upload in enumerate(styles)]
    queue = size_class_queue(params, content, settings)
    webhook, webhook_events = read_webhook(request, settings)
    return Submission(
        content=content, styles=style_images, params=params, queue=queue, webhook=webhook, webhook_events=webhook_events
    )


def read_webhook(request: Request, settings: Settings) -> tuple[str | None, list[str] | None]:
    """The `webhook` URL and `webhook_events_filter` (repeated fields or comma-separated); 422 names the field."""
    url = request.form.get("webhook", "").strip()
    names = [name.strip() for value in request.form.getlist("webhook_events_filter") for name in value.split(",")]
    names = [name for name in names if name]
    if not url:
        if names:
            raise webhook_error("webhook_events_filter", "given without a webhook")
        return None, None
    if settings.webhook_secret is None:
        raise webhook_error("webhook", "webhooks are not enabled on this server (no IMPASTO_WEBHOOK_SECRET)")
    try:
        events = parse_events_filter(names)
    except ValueError as exc:
        raise webhook_error("webhook_events_filter", str(exc)) from exc
    try:
        check_webhook_url(url, settings.webhook_allow_private)
    except WebhookRefused as exc:
        raise webhook_error("webhook", str(exc)) from exc
    return url, sorted(events)


def webhook_error(field: str, message: str) -> ApiError:
    """The 422 for a refused webhook field."""
    return ApiError(422, "invalid_webhook", f"{field}: {message}", details=[{"field": field, "message": message}])


def size_class_queue(params: JobParams, content: CheckedImage, settings: Settings) -> str:
    """The queue for the job's output pixels (params.size at the content's aspect); 422 if no class holds it."""
    pixels = params.pixel_count(content.width / content.height)
    queue = queue_for(pixels, settings)
    if queue is None:
        message = f"a {params.size} px output of this image is {pixels} pixels; the limit is {max_job_pixels(settings)}"
        raise invalid_params([{"field": "size", "message": message}])
    return queue


def read_image(upload: FileStorage, field: str, settings: Settings) -> CheckedImage:
    """One uploaded file, decoded and checked; the error names the form field."""
    try:
        return check_image(upload.read(), settings.max_image_pixels, settings.allowed_image_formats)
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
    if upload is not None:
        raw = upload.read(MAX_PARAMS_LENGTH + 1).decode("utf-8", "replace")
    else:
        raw = request.form.get("params", "")
    if len(raw) > MAX_PARAMS_LENGTH:
        raise ApiError(413, "payload_too_large", f"params is longer than {MAX_PARAMS_LENGTH} characters")
    if not raw.strip():
        return JobParams.model_validate({})
    try:
        values = json.loads(raw)
    except RecursionError as exc:  # "[[[[...": nesting deeper than the parser's stack
        raise ApiError(400, "bad_request", "params is not valid JSON: nested too deeply") from exc
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"params is not valid JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise invalid_params([{"field": "params", "message": "must be a JSON object"}])
    try:
        return JobParams.model_validate(values)
    except ValidationError as exc:
        raise invalid_params(validation_details(exc, root="params")) from exc


def invalid_params(details: list[dict[str, str]]) -> ApiError:
    """The 422 for parameters that fail the schema, one detail per field (the first MAX_DETAILS)."""
    shown = details[:MAX_DETAILS]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in shown)
    if len(details) > len(shown):
        summary += f"; and {len(details) - len(shown)} more"
    return ApiError(422, "invalid_params", f"invalid params: {summary}", details=shown)
