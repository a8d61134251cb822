"""The jobs resource: submit, read, list, cancel and delete."""

from __future__ import annotations

import functools
import math
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from pydantic import ValidationError
from sqlalchemy import BindParameter, Select, and_, bindparam, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from impasto.api.auth import current_key_id, require_active_key
from impasto.api.context import close_db_session, current_impasto, db_session, with_read_session
from impasto.api.errors import ApiError, not_found, validation_details
from impasto.api.idempotency import MAX_KEY_LENGTH, find_key, remember_key, request_fingerprint
from impasto.api.images import CheckedImage
from impasto.api.job_json import job_json
from impasto.api.openapi import documented
from impasto.api.pagination import ListQuery, encode_cursor, is_uuid
from impasto.api.quota import check_active_jobs
from impasto.api.schemas import ErrorBody, JobList, JobSubmission
from impasto.api.schemas import Job as JobSchema
from impasto.api.submission import Submission, read_submission
from impasto.shared.api_keys import key_is_active_clause
from impasto.shared.enqueue import enqueue_job
from impasto.shared.job_endings import JobWatchers
from impasto.shared.jobs import create_job as insert_job
from impasto.shared.jobs import delete_job as delete_finished_job
from impasto.shared.jobs import request_cancel
from impasto.shared.models import IdempotencyKey, Job
from impasto.shared.status import JobStatus
from impasto.shared.storage import Storage, job_prefix, upload_key

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")

PREFER_WAIT_POLL_S = 0.25  # how often a POST held by Prefer: wait re-reads the job


def stored_mask_keys(submission: Submission) -> dict[str, Any] | None:
    """Where a job's label images are stored: {"content": key, "styles": [key or None, ...]}; None without."""
    if submission.mask is None:
        return None
    styles = [None if m is None else upload_key(m.data, m.extension) for m in submission.style_masks or ()]
    return {"content": upload_key(submission.mask.data, submission.mask.extension), "styles": styles or None}


@bp.post("")
@documented(
    responses={
        201: JobSchema,
        202: JobSchema,
        400: ErrorBody,
        409: ErrorBody,
        413: ErrorBody,
        415: ErrorBody,
        422: ErrorBody,
        503: ErrorBody,
    },
    form=JobSubmission,
)
def create_job() -> tuple[Response, int, dict[str, str]]:
    """Submit a job: a content image, style images and optional params (Idempotency-Key honoured)."""
    impasto = current_impasto()
    owner = current_key_id()
    idempotency_key = read_idempotency_key(owner)
    submission = read_submission(request, impasto.settings)
    content_key = upload_key(submission.content.data, submission.content.extension)
    style_keys = [upload_key(style.data, style.extension) for style in submission.styles]
    params = submission.params.model_dump(mode="json")
    mask_keys = stored_mask_keys(submission)
    fingerprint = request_fingerprint(
        content_key, style_keys, params, submission.webhook, submission.webhook_events, mask_keys
    )
    session = db_session()
    if idempotency_key is not None and (earlier := find_key(session, idempotency_key)) is not None:
        return replay(earlier, fingerprint)
    check_active_jobs(session, owner, impasto.settings.max_active_jobs)
    masks = [m for m in (submission.mask, *(submission.style_masks or ())) if m is not None]
    for image in (submission.content, *submission.styles, *masks):
        store_upload(impasto.storage, image)
    # Owned from its INSERT: no other transaction ever sees the job without its owner.
    job = insert_job(
        session,
        params=params,
        content_key=content_key,
        style_keys=style_keys,
        queue=submission.queue,
        owner_key_id=owner,
        webhook_url=submission.webhook,
        webhook_events=submission.webhook_events,
        mask_keys=mask_keys,
    )
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
    headers = {"Location": url_for("jobs.get_job", job_id=job.id)}
    wait_s = preferred_wait(impasto.settings.prefer_wait_max_s)
    # A wait holds a thread like an event stream and takes a slot of the same bound; without one
    # (the key holds its share, or the process is full) the job is answered at once, unheld, as
    # RFC 7240 lets a server ignore a preference. An error here would make the client resubmit.
    if wait_s is None or impasto.held_requests.try_acquire(owner) is not None:
        return jsonify(job_json(job)), 202, headers
    job_id = job.id
    close_db_session()  # no pooled connection is held while the request waits
    try:
        body = wait_for_job(job_id, wait_s)
    finally:
        impasto.held_requests.release(owner)
    headers["Preference-Applied"] = f"wait={format_seconds(wait_s)}"
    # 201: the job is done and its outputs exist; 202: still queued or running, as without Prefer.
    return jsonify(body), 201 if JobStatus(body["status"]).finished else 202, headers


def preferred_wait(cap_s: float) -> float | None:
    """Seconds asked by a `Prefer: wait=N` header (RFC 7240), capped; None when not asked."""
    for preference in ",".join(request.headers.getlist("Prefer")).split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                seconds = float(value.strip().strip('"'))
            except ValueError:
                return None  # RFC 7240: a preference the server cannot understand is ignored
            return min(max(seconds, 0.0), cap_s) if math.isfinite(seconds) else None
    return None


def format_seconds(seconds: float) -> str:
    """A wait as the header writes it: 5, not 5.0."""
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)


def wait_for_job(job_id: str, wait_s: float) -> dict[str, Any]:
    """The job JSON once finished or after `wait_s`, polling SQL in short sessions."""
    impasto = current_impasto()
    deadline = time.monotonic() + wait_s
    while True:
        with impasto.sessions() as session:
            job = session.get(Job, job_id, options=[selectinload(Job.snapshots)])
            assert job is not None  # just created, and only a finished job can be deleted
            body = job_json(job)
        remaining = deadline - time.monotonic()
        if JobStatus(body["status"]).finished or remaining <= 0:
            return body
        time.sleep(min(PREFER_WAIT_POLL_S, remaining))


def read_idempotency_key(owner: str) -> str | None:
    """The Idempotency-Key header scoped to the caller's API key, if sent; 400 if empty or too long."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    # Printable ASCII, as the header's draft standard (a structured-field string) says; a NUL
    # byte would also make PostgreSQL refuse the row.
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all(" " <= char <= "~" for char in key):
        raise ApiError(400, "bad_request", f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    # Stored as "<key id>:<key>": two API keys' "abc" are two records. Key ids hold no ':'.
    return f"{owner}:{key}"


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
    """Store the original bytes under their content hash and return the key.

    Always written, even when the key exists: skipping the write for bytes already stored
    would let one tenant time whether another uploaded the same image. Same key, same bytes,
    so the rewrite changes nothing, and the write is atomic (readers see a whole file).
    """
    key = upload_key(image.data, image.extension)
    storage.put(key, image.data)
    return key


def find_job(job_id: str, session: Session | None = None) -> Job:
    """The caller's job with this id, or a 404: another key's job is answered as a missing one."""
    # Ids are UUIDs; anything else cannot match, and some strings (a NUL byte) would make
    # PostgreSQL raise instead of finding nothing.
    if not is_uuid(job_id):
        require_active_key()
        raise not_found("job")
    parameters = {"job_id": job_id, "key_id": current_key_id()}
    job = (session or db_session()).scalars(owned_job_query(), parameters).unique().first()
    if job is None:
        require_active_key()  # nothing found: a revoked key gets its 401, a live one the 404
        raise not_found("job")
    return job


@functools.cache
def owned_job_query() -> Select[Job]:
    """A job by :job_id if key :key_id owns it and is unrevoked, with its snapshots: one statement.

    One query for all conditions: another key's job and a missing one take the same path, and the
    key must still be unrevoked (authentication may have trusted a cached check). The snapshots,
    which the job JSON lists, come in the same query. Built once: a poll only binds the values.
    """
    key_id: BindParameter[str] = bindparam("key_id")
    return (
        select(Job)
        .where(Job.id == bindparam("job_id"), Job.owner_key_id == key_id, key_is_active_clause(key_id))
        .options(joinedload(Job.snapshots))
    )


@bp.get("/<job_id>")
@documented(responses={200: JobSchema, 404: ErrorBody})
def get_job(job_id: str) -> Response:
    """The job: status, progress, losses, ETA, outputs, error and metrics."""
    return jsonify(job_json(with_read_session(lambda session: find_job(job_id, session))))


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
    key_id = current_key_id()
    statement = (
        select(Job)
        .where(Job.owner_key_id == key_id, key_is_active_clause(key_id))
        .options(selectinload(Job.snapshots))
        .order_by(Job.created_at.desc(), Job.id.desc())
    )
    if query.status is not None:
        statement = statement.where(Job.status == query.status.value)
    position = query.position()
    if position is not None:
        created_at, job_id = position
        statement = statement.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    # One row more than the page says whether there is a next page.
    jobs = with_read_session(lambda session: list(session.scalars(statement.limit(query.limit + 1))))
    if not jobs:
        require_active_key()  # an empty page may mean a key revoked since it was cached
    page = jobs[: query.limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(jobs) > query.limit else None
    return jsonify({"jobs": [job_json(job) for job in page], "next_cursor": next_cursor})


@bp.post("/<job_id>/cancel")
@documented(responses={200: JobSchema, 404: ErrorBody})
def cancel_job(job_id: str) -> Response:
    """Cancel a queued job now, or ask a running one to stop; idempotent."""
    impasto = current_impasto()
    # A queued job ends here, and its watchers hear of it; a running one's worker ends it.
    job, _ = request_cancel(db_session(), find_job(job_id), JobWatchers(impasto.events, impasto.celery))
    return jsonify(job_json(job))


@bp.delete("/<job_id>")
@documented(responses={204: None, 404: ErrorBody, 409: ErrorBody})
def delete_job(job_id: str) -> tuple[str, int]:
    """Delete a finished job and its images (uploads are shared, and kept)."""
    session = db_session()
    job = find_job(job_id)
    if not delete_finished_job(session, job.id):  # the DELETE's guard: only a finished job goes
        raise ApiError(409, "job_not_finished", f"job is {job.status}; cancel it and wait until it has stopped")
    # Files go after the commit: a failed commit must not leave a row pointing at nothing.
    current_impasto().storage.delete_prefix(job_prefix(job_id))
    return "", 204
