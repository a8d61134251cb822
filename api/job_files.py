"""A job's images: the final output and the intermediate snapshots, as PNG, and its input images as uploaded."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO

from flask import Blueprint, Response

from impasto.api.context import current_impasto, db_session
from impasto.api.errors import ApiError, not_found
from impasto.api.images import EXTENSIONS, MEDIA_TYPES
from impasto.api.jobs import find_job
from impasto.api.openapi import documented
from impasto.api.schemas import ErrorBody
from impasto.shared.job_params import MAX_JOB_ITERATIONS
from impasto.shared.models import Job, JobSnapshot

logger = logging.getLogger(__name__)

bp = Blueprint("job_files", __name__, url_prefix="/v1/jobs")

CHUNK_BYTES = 256 * 1024  # per read from storage: few calls per image, little memory per download
# The media type of an upload, from the extension it is stored under (the format Pillow detected).
UPLOAD_MEDIA_TYPES = {extension: MEDIA_TYPES[image_format] for image_format, extension in EXTENSIONS.items()}


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
@documented(responses={200: "image/png", 404: ErrorBody, 409: ErrorBody, 410: ErrorBody})
def get_output(job_id: str) -> Response:
    """The final image (PNG); 409 until the job has succeeded."""
    job = find_job(job_id)
    check_not_expired(job)
    if job.output_key is None:
        raise ApiError(409, "output_not_ready", f"job is {job.status} and has no output yet")
    return png_response(job.output_key, f"{job.id}.png")


@bp.get("/<job_id>/intermediates/<int:iteration>")
@documented(responses={200: "image/png", 404: ErrorBody, 410: ErrorBody})
def get_intermediate(job_id: str, iteration: int) -> Response:
    """The snapshot taken at one iteration (PNG)."""
    job = find_job(job_id)
    check_not_expired(job)
    # No snapshot lies past the last iteration; a larger number would overflow SQL's integer.
    if iteration > MAX_JOB_ITERATIONS:
        raise not_found(f"snapshot at iteration {iteration}")
    snapshot = db_session().get(JobSnapshot, (job.id, iteration))
    if snapshot is None:
        raise not_found(f"snapshot at iteration {iteration}")
    return png_response(snapshot.key, f"{job.id}-{iteration:06d}.png")


@bp.get("/<job_id>/inputs/content")
@documented(responses={200: "image/*", 404: ErrorBody, 410: ErrorBody})
def get_content_input(job_id: str) -> Response:
    """The job's content image, as it was uploaded (JPEG, PNG or WebP)."""
    job = find_job(job_id)
    check_not_expired(job)
    return upload_response(job.content_key, f"{job.id}-content")


@bp.get("/<job_id>/inputs/style/<int:index>")
@documented(responses={200: "image/*", 404: ErrorBody, 410: ErrorBody})
def get_style_input(job_id: str, index: int) -> Response:
    """One of the job's style images (0 is the first), as it was uploaded."""
    job = find_job(job_id)
    check_not_expired(job)
    if index >= len(job.style_keys):
        raise not_found(f"style image {index}")
    return upload_response(job.style_keys[index], f"{job.id}-style-{index}")


def upload_response(key: str, stem: str) -> Response:
    """An uploaded image with the media type of its stored format."""
    extension = key.rsplit(".", 1)[-1]
    return png_response(key, f"{stem}.{extension}", UPLOAD_MEDIA_TYPES.get(extension, "application/octet-stream"))
