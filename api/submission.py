"""Read and validate a POST /v1/jobs form; nothing is stored until every check has passed."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

from flask import Request
from pydantic import ValidationError
from werkzeug.datastructures import FileStorage

from impasto.api.decode_budget import DecodeBudget, DecodeBusy, app_decode_budget, decode_busy
from impasto.api.errors import ApiError, validation_details
from impasto.api.images import CheckedImage, ImageRejected, check_image
from impasto.api.masks import check_label, check_mask_parts
from impasto.api.schemas import JobSubmission
from impasto.shared.job_params import JobParams
from impasto.shared.settings import Settings
from impasto.shared.size_classes import STYLE_PIXELS_PER_OUTPUT_PIXEL, job_pixels, max_job_pixels, queue_for
from impasto.shared.webhooks import (
    EVENTS_FILTER_PATTERN,
    WEBHOOK_EVENTS,
    WebhookRefused,
    check_webhook_url,
    parse_events_filter,
)

# The fields of the form, as the schema lists them; of each kind: image files, text fields (params: either).
FORM_FIELDS = tuple(JobSubmission.model_fields)
FILE_FIELDS = frozenset({"content", "style", "params", "mask", "style_mask"})
TEXT_FIELDS = frozenset({"params", "webhook", "webhook_events_filter"})
MAX_FIELD_NAME_SHOWN = 100  # of a name or value quoted in an error; the rest is cut
EVENTS_FILTER = re.compile(EVENTS_FILTER_PATTERN)
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
    mask: CheckedImage | None = None  # the content's label image (with params.regions)
    style_masks: list[CheckedImage | None] | None = None  # one per style (None: that style has none)


def read_submission(request: Request, settings: Settings) -> Submission:
    """Check, cheapest first: body size, the files, the parameters, each image (a bounded decode), the job's size."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the job as multipart/form-data")
    files = request.files  # parsing the body raises 413 past MAX_CONTENT_LENGTH
    check_field_names(request)
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
        raise invalid_params([{"field": params.style_count_field(len(styles)), "message": str(exc)}]) from exc
    check_snapshot_count(params, settings)
    check_mask_parts(params, len(files.getlist("mask")), len(files.getlist("style_mask")), len(styles))
    budget = app_decode_budget(settings)
    content = read_image(contents[0], "content", settings, budget)
    style_images = [read_image(upload, f"style[{index}]", settings, budget) for index, upload in enumerate(styles)]
    mask, style_masks = read_masks(request, params, settings, budget)
    queue = size_class_queue(params, content, style_images, settings, mask, style_masks)
    webhook, webhook_events = read_webhook(request, settings)
    return Submission(
        content=content, styles=style_images, params=params, queue=queue, webhook=webhook,
        webhook_events=webhook_events, mask=mask, style_masks=style_masks,
    )  # fmt: skip


def read_masks(
    request: Request, params: JobParams, settings: Settings, budget: DecodeBudget | None
) -> tuple[CheckedImage | None, list[CheckedImage | None] | None]:
    """The `mask` and `style_mask` label images, decoded and their colours checked (check_mask_parts ran first)."""
    if params.regions is None:
        return None, None
    mask = read_image(request.files.getlist("mask")[0], "mask", settings, budget)
    check_label(mask, "mask", params, budget)
    style_masks: list[CheckedImage | None] = []
    for index, upload in enumerate(request.files.getlist("style_mask")):
        data = upload.read()
        if not data:  # an empty part: this style has no label; the whole style serves its regions
            style_masks.append(None)
            continue
        checked = read_image(FileStorage(io.BytesIO(data)), f"style_mask[{index}]", settings, budget)
        check_label(checked, f"style_mask[{index}]", params, budget)
        style_masks.append(checked)
    return mask, style_masks or None


def check_field_names(request: Request) -> None:
    """Every part is a field of the form (JobSubmission), of its kind: images are files, webhook fields text."""
    unknown = sorted((set(request.form) | set(request.files)) - set(FORM_FIELDS))[:MAX_DETAILS]
    if unknown:
        names = ", ".join(repr(name[:MAX_FIELD_NAME_SHOWN]) for name in unknown)
        raise ApiError(
            422,
            "unknown_field",
            f"unknown form field(s) {names}; the fields are {', '.join(FORM_FIELDS)}",
            details=[{"field": name[:MAX_FIELD_NAME_SHOWN], "message": "not a field of this form"} for name in unknown],
        )
    # Else a part of the wrong kind would be ignored: request.files and request.form are read apart.
    if texts_as_files := sorted(set(request.files) - FILE_FIELDS):
        raise ApiError(400, "bad_request", f"send {texts_as_files[0]!r} as a text field, not a file part")
    if files_as_texts := sorted(set(request.form) - TEXT_FIELDS):
        name = files_as_texts[0]
        raise ApiError(400, "bad_request", f"send {name!r} as a file part (curl -F {name}=@file)")


def read_webhook(request: Request, settings: Settings) -> tuple[str | None, list[str] | None]:
    """The `webhook` URL and `webhook_events_filter` (repeated fields or comma-separated); 422 names the field.

    Exactly what the schema says: one webhook, as sent (an empty one is refused, nothing is stripped),
    and filter values that are comma-separated event names, only with a webhook.
    """
    urls = request.form.getlist("webhook")
    filters = request.form.getlist("webhook_events_filter")
    if not urls:
        if filters:
            raise webhook_error("webhook_events_filter", "given without a webhook")
        return None, None
    if len(urls) > 1:
        raise webhook_error("webhook", "given more than once; send one URL")
    url = urls[0]
    if not url:
        raise webhook_error("webhook", "is empty; leave the field out for no webhook")
    if settings.webhook_secret is None:
        raise webhook_error("webhook", "webhooks are not enabled on this server (no IMPASTO_WEBHOOK_SECRET)")
    events = read_events_filter(filters)
    try:
        check_webhook_url(url, settings.webhook_allow_private)
    except WebhookRefused as exc:
        raise webhook_error("webhook", str(exc)) from exc
    return url, sorted(events)


def read_events_filter(values: list[str]) -> frozenset[str]:
    """The events named by webhook_events_filter values (default: all); 422 for a value the schema's pattern refuses."""
    for value in values:
        if not EVENTS_FILTER.fullmatch(value):
            events = ", ".join(WEBHOOK_EVENTS)
            message = f"{value[:MAX_FIELD_NAME_SHOWN]!r} is not {events}, comma-separated without spaces"
            raise webhook_error("webhook_events_filter", message)
    return parse_events_filter([name for value in values for name in value.split(",")])


def webhook_error(field: str, message: str) -> ApiError:
    """The 422 for a refused webhook field."""
    return ApiError(422, "invalid_webhook", f"{field}: {message}", details=[{"field": field, "message": message}])


def size_class_queue(
    params: JobParams,
    content: CheckedImage,
    styles: list[CheckedImage],
    settings: Settings,
    mask: CheckedImage | None = None,
    style_masks: list[CheckedImage | None] | None = None,
) -> str:
    """The queue for the pixels the job makes the engine hold (output, styles, masks); 422 if none holds it."""
    masks = [(m.width, m.height) for m in (mask, *(style_masks or ())) if m is not None]
    pixels = job_pixels(params, (content.width, content.height), [(s.width, s.height) for s in styles], masks)
    queue = queue_for(pixels.counted, settings)
    if queue is not None:
        return queue
    limit = max_job_pixels(settings)
    if pixels.styles_dominate and pixels.masks:
        message = (
            f"the style images ({sum(pixels.styles)} pixels) and label images ({sum(pixels.masks)} pixels) of a "
            f"{params.size} px output count as {pixels.counted} (one per {STYLE_PIXELS_PER_OUTPUT_PIXEL} pixels); "
            f"the limit is {limit}: send smaller label images"
        )
        raise ApiError(422, "invalid_mask", message, details=[{"field": "mask", "message": message}])
    if pixels.styles_dominate:
        message = (
            f"at style_scale {params.style_scale:g} the style images of a {params.size} px output are "
            f"{sum(pixels.styles)} pixels, which count as {pixels.counted} (one per "
            f"{STYLE_PIXELS_PER_OUTPUT_PIXEL} style pixels); the limit is {limit}"
        )
        raise invalid_params([{"field": "style_scale", "message": message}])
    message = f"a {params.size} px output of this image is {pixels.output} pixels; the limit is {limit}"
    raise invalid_params([{"field": "size", "message": message}])


def check_snapshot_count(params: JobParams, settings: Settings) -> None:
    """422 when the job would store more than max_snapshots_per_job snapshots (refused, never silently widened)."""
    cap = settings.max_snapshots_per_job
    if params.snapshot_every == 0 or params.iterations // params.snapshot_every <= cap:
        return
    fewest = params.iterations // (cap + 1) + 1
    message = (
        f"{params.iterations} iterations with snapshot_every {params.snapshot_every} make "
        f"{params.iterations // params.snapshot_every} snapshots; at most {cap} are kept per job: "
        f"use snapshot_every {fewest} or more, or 0 for none"
    )
    raise invalid_params([{"field": "snapshot_every", "message": message}])


def read_image(upload: FileStorage, field: str, settings: Settings, budget: DecodeBudget | None = None) -> CheckedImage:
    """One uploaded file, decoded and checked; the error names the form field. 503 when decode memory stays spent."""
    try:
        return check_image(upload.read(), settings.max_image_pixels, settings.allowed_image_formats, budget)
    except DecodeBusy as exc:
        raise decode_busy("uploads") from exc
    except ImageRejected as exc:
        raise ApiError(
            IMAGE_ERROR_STATUS.get(exc.code, 422),
            exc.code,
            f"{field}: {exc.message}",
            details=[{"field": field, "message": exc.message}],
        ) from exc


def read_params(request: Request) -> JobParams:
    """The `params` JSON object (a form field, or a file part as curl -F params=@f.json sends); null means defaults."""
    upload = request.files.get("params")
    if upload is not None:
        raw = upload.read(MAX_PARAMS_LENGTH + 1).decode("utf-8", "replace")
    else:
        raw = request.form.get("params", "")
    if len(raw) > MAX_PARAMS_LENGTH:
        raise ApiError(413, "payload_too_large", f"params is longer than {MAX_PARAMS_LENGTH} characters")
    if not raw.strip():
        return JobParams()
    try:
        values = json.loads(raw)
    except RecursionError as exc:  # "[[[[...": nesting deeper than the parser's stack
        raise ApiError(400, "bad_request", "params is not valid JSON: nested too deeply") from exc
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"params is not valid JSON: {exc}") from exc
    if values is None:  # the schema's `null`: no params, as when the field is left out
        return JobParams()
    if not isinstance(values, dict):
        raise invalid_params([{"field": "params", "message": "must be a JSON object"}])
    try:
        # From the JSON text, not `values`: strict validation maps JSON arrays to the tuple
        # fields, where Python lists would be refused.
        return JobParams.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid_params(validation_details(exc, root="params")) from exc


def invalid_params(details: list[dict[str, str]]) -> ApiError:
    """The 422 for parameters that fail the schema, one detail per field (the first MAX_DETAILS)."""
    shown = details[:MAX_DETAILS]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in shown)
    if len(details) > len(shown):
        summary += f"; and {len(details) - len(shown)} more"
    return ApiError(422, "invalid_params", f"invalid params: {summary}", details=shown)
