"""The jobs resource: submit, read, list, cancel and delete."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for
from pydantic import ValidationError
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from api.context import current_impasto, db_session
from api.errors import ApiError, not_found, validation_details
from api.images import CheckedImage
from api.job_json import job_json
from api.openapi import documented
from api.pagination import ListQuery, encode_cursor, is_uuid
from api.schemas import ErrorBody, JobList, JobSubmission
from api.schemas import Job as JobSchema
from api.submission import read_submission
from shared.enqueue import enqueue_job
from shared.idempotency import MAX_KEY_LENGTH, find_key, remember_key, request_fingerprint
from shared.jobs import create_job as insert_job
from shared.jobs import request_cancel
from shared.models import IdempotencyKey, Job
from shared.status import JobStatus
from shared.storage import Storage, job_prefix, upload_key
from shared.task_names import TRANSFER_QUEUE

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")


@bp.post("")
@documented(
    responses={202: JobSchema, 400: ErrorBody, 413: ErrorBody, 415: ErrorBody, 422: ErrorBody},
    form=JobSubmission,
)
def create_job() -> tuple[Response, int, dict[str, str]]:
    """Submit a job: a content image, style images and optional params (Idempotency-Key honoured)."""
    impasto = current_impasto()
    idempotency_key = read_idempotency_key()
    submission = read_submission(request, impasto.settings)
    content_key = upload_key(submission.content.data, submission.content.extension)
    style_keys = [upload_key(style.data, style.extension) for style in submission.styles]
    params = submission.params.model_dump(mode="json")
    fingerprint = request_fingerprint(content_key, style_keys, params)
    session = db_session()
    if idempotency_key is not None and (earlier := find_key(session, idempotency_key)) is not None:
        return replay(earlier, fingerprint)
    for image in (submission.content, *submission.styles):
        store_upload(impasto.storage, image)
    job = insert_job(session, params=params, content_key=content_key, style_keys=style_keys, queue=TRANSFER_QUEUE)
    if idempotency_key is not None:
        remember_key(session, idempotency_key, fingerprint, job.id, impasto.settings.idempotency_ttl_s)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key committed first: answer with its job.
        session.rollback()
        earlier = find_key(session, idempotency_key) if idempotency_key is not None else None
        if earlier is None:
            raise
        return replay(earlier, fingerprint)
    # Enqueue only after the commit, so the worker finds the row. If the broker is down the
    # job stays queued in SQL (enqueue_job logs it) and the reconciler sends it later; a 5xx
    # here would make the client retry and submit a second job.
    enqueue_job(impasto.celery, session, job.id, job.queue)
    return jsonify(job_json(job)), 202, {"Location": url_for("jobs.get_job", job_id=job.id)}


def read_idempotency_key() -> str | None:
    """The Idempotency-Key header, if sent; 400 if it is empty or too long."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ApiError(400, "bad_request", f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    return key


def replay(earlier: IdempotencyKey, fingerprint: str) -> tuple[Response, int, dict[str, str]]:
    """The job an earlier request with this key made; 409 if that request asked something else."""
    if earlier.request_hash != fingerprint:
        raise ApiError(
            409, "idempotency_key_reused", "this Idempotency-Key was used for a different request; use a new key"
        )
    job = find_job(earlier.job_id)
    headers = {"Location": url_for("jobs.get_job", job_id=job.id), "Idempotent-Replayed": "true"}
    return jsonify(job_json(job)), 202, headers


def store_upload(storage: Storage, image: CheckedImage) -> str:
    """Store the original bytes under their content hash (once) and return the key."""
    key = upload_key(image.data, image.extension)
    if not storage.exists(key):  # the same bytes are stored once
        storage.put(key, image.data)
    return key


def find_job(job_id: str) -> Job:
    """The job with this id, or a 404."""
    # Ids are UUIDs; anything else cannot match, and some strings (a NUL byte) would make
    # PostgreSQL raise instead of finding nothing.
    if not is_uuid(job_id):
        raise not_found("job")
    job = db_session().get(Job, job_id)
    if job is None:
        raise not_found("job")
    return job


@bp.get("/<job_id>")
@documented(responses={200: JobSchema, 404: ErrorBody})
def get_job(job_id: str) -> Response:
    """The job: status, progress, losses, ETA, outputs, error and metrics."""
    return jsonify(job_json(find_job(job_id)))


@bp.get("")
@documented(responses={200: JobList, 422: ErrorBody}, query=ListQuery)
def list_jobs() -> Response:
    """Jobs, newest first, a page at a time (follow next_cursor)."""
    try:
        query = ListQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        details = validation_details(exc, root="query")
        message = "invalid query: " + "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise ApiError(422, "invalid_query", message, details) from exc
    statement = select(Job).options(selectinload(Job.snapshots)).order_by(Job.created_at.desc(), Job.id.desc())
    if query.status is not None:
        statement = statement.where(Job.status == query.status.value)
    position = query.position()
    if position is not None:
        created_at, job_id = position
        statement = statement.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    # One row more than the page says whether there is a next page.
    jobs = list(db_session().scalars(statement.limit(query.limit + 1)))
    page = jobs[: query.limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(jobs) > query.limit else None
    return jsonify({"jobs": [job_json(job) for job in page], "next_cursor": next_cursor})


@bp.post("/<job_id>/cancel")
@documented(responses={200: JobSchema, 404: ErrorBody})
def cancel_job(job_id: str) -> Response:
    """Cancel a queued job now, or ask a running one to stop; idempotent."""
    return jsonify(job_json(request_cancel(db_session(), find_job(job_id))))


@bp.delete("/<job_id>")
@documented(responses={204: None, 404: ErrorBody, 409: ErrorBody})
def delete_job(job_id: str) -> tuple[str, int]:
    """Delete a finished job and its images (uploads are shared, and kept)."""
    session = db_session()
    job = find_job(job_id)
    if not JobStatus(job.status).finished:
        raise ApiError(409, "job_not_finished", f"job is {job.status}; cancel it and wait until it has stopped")
    session.delete(job)
    session.commit()
    # Files go after the commit: a failed commit must not leave a row pointing at nothing.
    current_impasto().storage.delete_prefix(job_prefix(job_id))
    return "", 204
