"""A job's images: the final output and the intermediate snapshots, as PNG, and its input images as uploaded;
each also as a small JPEG preview (`?preview=true`) for pages that show them rather than save them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from impasto.api.context import current_impasto, db_session
from impasto.api.decode_budget import DecodeBusy, app_decode_budget, decode_busy
from impasto.api.errors import ApiError, not_found, validation_details
from impasto.api.images import EXTENSIONS, MEDIA_TYPES
from impasto.api.jobs import find_job
from impasto.api.openapi import documented
from impasto.api.previews import PreviewUnavailable, missing_original, open_preview, unavailable
from impasto.api.schemas import ErrorBody
from impasto.shared.job_params import MAX_JOB_ITERATIONS
from impasto.shared.models import Job, JobSnapshot
from impasto.shared.previews import PREVIEW_MAX_SIDE, PREVIEW_MEDIA_TYPE

logger = logging.getLogger(__name__)

bp = Blueprint("job_files", __name__, url_prefix="/v1/jobs")

CHUNK_BYTES = 256 * 1024  # per read from storage: few calls per image, little memory per download
# The media type of an upload, from the extension it is stored under (the format Pillow detected).
UPLOAD_MEDIA_TYPES = {extension: MEDIA_TYPES[image_format] for image_format, extension in EXTENSIONS.items()}
# A preview never changes once made (a job's images are written once; uploads are content-addressed), so
# the browser may keep it; `private` and Vary: Authorization keep it to the key that fetched it.
PREVIEW_CACHE_CONTROL = "private, max-age=31536000, immutable"
# What the image endpoints answer: the image as stored, or its JPEG preview.
FULL_OR_PREVIEW = ("image/png", PREVIEW_MEDIA_TYPE)
UPLOAD_OR_PREVIEW = ("image/*", PREVIEW_MEDIA_TYPE)
PREVIEW_ERRORS = {404: ErrorBody, 409: ErrorBody, 410: ErrorBody, 422: ErrorBody, 503: ErrorBody}


class ImageQuery(BaseModel):
    """Query parameters of a job's image endpoints."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    preview: bool = Field(
        False,
        description=f"true: a JPEG at most {PREVIEW_MAX_SIDE} px on its long side, for showing the image "
        "rather than saving it (a print-size PNG is tens of MB); made once and kept with the image",
    )


def image_query() -> ImageQuery:
    """The request's ImageQuery; 422 invalid_query for a value that is not a boolean."""
    try:
        return ImageQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        details = validation_details(exc, root="query")
        message = "invalid query: " + "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise ApiError(422, "invalid_query", message, details) from exc


def png_response(key: str, filename: str, mimetype: str = "image/png") -> Response:
    """The image stored under `key` (a PNG unless told), streamed from storage in chunks; 404 if storage lost it.

    A 2048 px output is several MB: read whole, every concurrent download would hold its own
    copy in the API's memory.
    """
    try:
        stream, size = current_impasto().storage.open(key)
    except KeyError:
        logger.warning("storage key %s is recorded but missing", key)
        raise not_found("image") from None
    response = Response(read_chunks(stream), mimetype=mimetype)
    response.call_on_close(stream.close)  # also when the body is never read (a client gone at once)
    response.content_length = size
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


def image_response(key: str, filename: str, mimetype: str, query: ImageQuery) -> Response:
    """The image under `key` as stored, or its preview if the query asks for one."""
    if not query.preview:
        return png_response(key, filename, mimetype)
    settings = current_impasto().settings
    try:
        stream, size = open_preview(
            current_impasto().storage, key, settings.max_image_pixels, app_decode_budget(settings)
        )
    except KeyError:
        raise missing_original(key) from None
    except PreviewUnavailable as exc:
        raise unavailable(exc) from exc
    except DecodeBusy as exc:
        raise decode_busy("images") from exc
    response = Response(read_chunks(stream), mimetype=PREVIEW_MEDIA_TYPE)
    response.call_on_close(stream.close)
    response.content_length = size
    response.headers["Content-Disposition"] = f'inline; filename="{filename.rsplit(".", 1)[0]}-preview.jpg"'
    response.headers["Cache-Control"] = PREVIEW_CACHE_CONTROL
    response.headers["Vary"] = "Authorization"
    return response


def read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """The stream's bytes, CHUNK_BYTES at a time; closed once read to the end."""
    with stream:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk


def check_not_expired(job: Job) -> None:
    """410 `expired` once the retention pass has deleted the job's images (impasto/background/retention.py)."""
    if job.expired_at is not None:
        raise ApiError(410, "expired", "the job's images were deleted after the retention period")


@bp.get("/<job_id>/output")
@documented(responses={200: FULL_OR_PREVIEW, **PREVIEW_ERRORS}, query=ImageQuery)
def get_output(job_id: str) -> Response:
    """The final image (PNG, or a JPEG preview); 409 until the job has succeeded."""
    query = image_query()
    job = find_job(job_id)
    check_not_expired(job)
    if job.output_key is None:
        raise ApiError(409, "output_not_ready", f"job is {job.status} and has no output yet")
    return image_response(job.output_key, f"{job.id}.png", "image/png", query)


@bp.get("/<job_id>/intermediates/<int:iteration>")
@documented(responses={200: FULL_OR_PREVIEW, **PREVIEW_ERRORS}, query=ImageQuery)
def get_intermediate(job_id: str, iteration: int) -> Response:
    """The snapshot taken at one iteration (PNG, or a JPEG preview)."""
    query = image_query()
    job = find_job(job_id)
    check_not_expired(job)
    # No snapshot lies past the last iteration; a larger number would overflow SQL's integer.
    if iteration > MAX_JOB_ITERATIONS:
        raise not_found(f"snapshot at iteration {iteration}")
    snapshot = db_session().get(JobSnapshot, (job.id, iteration))
    if snapshot is None:
        raise not_found(f"snapshot at iteration {iteration}")
    return image_response(snapshot.key, f"{job.id}-{iteration:06d}.png", "image/png", query)


@bp.get("/<job_id>/inputs/content")
@documented(responses={200: UPLOAD_OR_PREVIEW, **PREVIEW_ERRORS}, query=ImageQuery)
def get_content_input(job_id: str) -> Response:
    """The job's content image, as it was uploaded (JPEG, PNG or WebP), or a JPEG preview."""
    query = image_query()
    job = find_job(job_id)
    check_not_expired(job)
    return upload_response(job.content_key, f"{job.id}-content", query)


@bp.get("/<job_id>/inputs/style/<int:index>")
@documented(responses={200: UPLOAD_OR_PREVIEW, **PREVIEW_ERRORS}, query=ImageQuery)
def get_style_input(job_id: str, index: int) -> Response:
    """One of the job's style images (0 is the first), as it was uploaded, or a JPEG preview."""
    query = image_query()
    job = find_job(job_id)
    check_not_expired(job)
    if index >= len(job.style_keys):
        raise not_found(f"style image {index}")
    return upload_response(job.style_keys[index], f"{job.id}-style-{index}", query)


def upload_response(key: str, stem: str, query: ImageQuery) -> Response:
    """An uploaded image with the media type of its stored format, or its preview."""
    extension = key.rsplit(".", 1)[-1]
    mimetype = UPLOAD_MEDIA_TYPES.get(extension, "application/octet-stream")
    return image_response(key, f"{stem}.{extension}", mimetype, query)
