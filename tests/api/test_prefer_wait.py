"""POST /v1/jobs with `Prefer: wait=N` (RFC 7240): held until the job ends or N seconds pass."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from impasto.shared.models import Job
from impasto.shared.status import JobStatus
from tests.api.conftest import Images, WorkerActions, impasto_of, keyed_client


def post_job(client: FlaskClient, images: Images, prefer: str | None) -> TestResponse:
    """Submit a small job, with a Prefer header when given."""
    data = {"content": (io.BytesIO(images.jpeg), "c.jpg"), "style": [(io.BytesIO(images.png), "s.png")]}
    headers = {"Prefer": prefer} if prefer is not None else {}
    return client.post("/v1/jobs", data=data, content_type="multipart/form-data", headers=headers)


def test_wait_returns_the_finished_job(client: FlaskClient, images: Images, worker_actions: WorkerActions) -> None:
    """A job that ends during the wait comes back finished, 201, in the same response."""
    finished = threading.Event()

    def work() -> None:
        # Play the worker: take the job as soon as the POST has committed it.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with impasto_of(worker_actions.app).sessions() as session:
                ids = list(session.scalars(select(Job.id)))
            if ids:
                worker_actions.claim(ids[0])
                worker_actions.finish(ids[0], JobStatus.SUCCEEDED)
                finished.set()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=work)
    thread.start()
    response = post_job(client, images, "wait=20")
    thread.join()
    assert finished.is_set()
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Preference-Applied"] == "wait=20"
    body = response.get_json()
    assert body["status"] == "succeeded" and body["outputs"]["final"]
    assert response.headers["Location"] == f"/v1/jobs/{body['id']}"


def test_wait_times_out_with_the_job_as_it_stands(client: FlaskClient, images: Images) -> None:
    """Nothing runs the job: after N seconds it is answered queued, 202."""
    started = time.monotonic()
    response = post_job(client, images, "respond-async, wait=0.5")
    assert 0.5 <= time.monotonic() - started < 10
    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "wait=0.5"
    assert response.get_json()["status"] == "queued"


def test_wait_is_capped_by_the_setting(make_app: Callable[..., Flask], images: Images) -> None:
    """A longer wait than prefer_wait_max_s is cut to it, and the header says so."""
    client = keyed_client(make_app(prefer_wait_max_s=0.2))
    response = post_job(client, images, "wait=3600")
    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "wait=0.2"


@pytest.mark.parametrize("prefer", [None, "wait=soon", "respond-async", "wait=nan"])
def test_no_or_unreadable_wait_is_ignored(client: FlaskClient, images: Images, prefer: str | None) -> None:
    """Without a readable wait the POST answers at once, as before, with no Preference-Applied."""
    response = post_job(client, images, prefer)
    assert response.status_code == 202
    assert "Preference-Applied" not in response.headers
