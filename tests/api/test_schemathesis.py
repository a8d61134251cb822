"""Property-based requests from /openapi.json (schemathesis, over WSGI): whatever the generated
request, the API never answers 5xx and answers as its spec says."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.status import JobStatus
from tests.api.conftest import Images, WorkerActions, add_key, keyed_client

# Examples per operation and mode: about two seconds per database for the whole API.
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,  # the request again without its key must be refused
]
WITHOUT_INPUTS = {
    "GET /docs",
    "GET /healthz",
    "GET /metrics",
    "GET /readyz",
    "GET /",
    "GET /web/app.js",
    "GET /web/app.css",
    "POST /web/login",  # its JSON body (the token) is not in the spec: a generated request is a 400
}
# Only meaningful for requests schemathesis made invalid on purpose.
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]


def seed_jobs(app: Flask, key: str, images: Images) -> list[str]:
    """Real ids for generated requests to hit: the key's queued and succeeded jobs, and another key's."""
    worker = WorkerActions(app, images.png)
    form = {"content": (images.jpeg, "c.jpg"), "style": (images.png, "s.png")}

    def new_job(client_key: str) -> str:
        """Submit one job with the key."""
        files = {name: (io.BytesIO(data), filename) for name, (data, filename) in form.items()}
        response = keyed_client(app, client_key).post("/v1/jobs", data=files, content_type="multipart/form-data")
        job_id: str = response.get_json()["id"]
        return job_id

    queued, succeeded, foreign = new_job(key), new_job(key), new_job(add_key(app, "someone else"))
    worker.claim(succeeded)
    worker.snapshot(succeeded, 4)
    worker.finish(succeeded, JobStatus.SUCCEEDED)
    return [queued, succeeded, foreign]


def with_real_inputs(case: Any, job_id: str | None, images: Images | None) -> None:
    """Point a generated case at a real job, and give a generated submission real images."""
    if job_id is not None and "job_id" in (case.path_parameters or {}):
        case.path_parameters["job_id"] = job_id
    if images is not None and isinstance(case.body, dict) and "content" in case.body:
        case.body["content"] = images.jpeg
        case.body["style"] = [images.png]


def fuzz(operation: Any, mode: GenerationMode, key: str, job_ids: list[str], images: Images) -> None:
    """MAX_EXAMPLES generated requests to one operation in one mode, each validated."""
    positive = mode == GenerationMode.POSITIVE
    checks = CHECKS if positive else NEGATIVE_CHECKS

    # Real job ids in both modes: a job id is any string to the spec, so it is never the part
    # a negative case made invalid. Real images only in positive mode: swapped into a negative
    # case they could make it valid again.
    @given(
        case=operation.as_strategy(generation_mode=mode),
        job_id=st.sampled_from([None, *job_ids]),
        real_images=st.sampled_from([None, images]) if positive else st.none(),
    )
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples every run: a failure here is reproducible
        database=None,  # no .hypothesis folder in the working tree
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any, job_id: str | None, real_images: Images | None) -> None:
        """One generated request, validated."""
        with_real_inputs(case, job_id, real_images)
        case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=checks)

    try:
        call()
    except Unsatisfiable:
        # An operation with no inputs (the health probes) has no invalid variant.
        assert not positive and operation.label in WITHOUT_INPUTS


def test_no_request_makes_a_5xx(make_app: Callable[..., Flask], images: Images) -> None:
    """Every operation, positive and negative examples, with a valid key: no 5xx, and spec-conformant answers."""
    app = make_app(rate_limit="100000 per minute", max_active_jobs=1000)
    key = add_key(app)
    job_ids = seed_jobs(app, key, images)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), results  # every operation's schema loads
    assert {operation.label for operation in operations} >= {
        "POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{job_id}", "DELETE /v1/jobs/{job_id}",
        "POST /v1/jobs/{job_id}/cancel", "GET /v1/jobs/{job_id}/output",
        "GET /v1/jobs/{job_id}/intermediates/{iteration}", "GET /healthz", "GET /readyz",
    }  # fmt: skip
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, key, job_ids, images)
