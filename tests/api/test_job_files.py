"""A job's images: the final PNG, the snapshots and the uploaded inputs, through the API."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from impasto.shared.status import JobStatus
from tests.api.conftest import Images, Submit, WorkerActions


@pytest.mark.parametrize("claimed", [False, True], ids=["queued", "running"])
def test_output_before_success_is_409(
    client: FlaskClient, submit: Submit, worker_actions: WorkerActions, claimed: bool
) -> None:
    """No output yet: 409 output_not_ready, not a 404 (the job exists)."""
    job_id = submit().get_json()["id"]
    if claimed:
        worker_actions.claim(job_id)
    response = client.get(f"/v1/jobs/{job_id}/output")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "output_not_ready"


def test_output_of_failed_job_is_409(client: FlaskClient, submit: Submit, worker_actions: WorkerActions) -> None:
    """A failed job never has an output."""
    job_id = submit().get_json()["id"]
    worker_actions.claim(job_id)
    worker_actions.finish(job_id, JobStatus.FAILED, error_code="engine_error", error_message="boom")
    assert client.get(f"/v1/jobs/{job_id}/output").status_code == 409


def test_output_of_succeeded_job(
    client: FlaskClient, submit: Submit, worker_actions: WorkerActions, images: Images
) -> None:
    """The stored PNG, at the URL the job JSON gives."""
    job_id = submit().get_json()["id"]
    worker_actions.claim(job_id)
    worker_actions.finish(job_id, JobStatus.SUCCEEDED)
    final_url = client.get(f"/v1/jobs/{job_id}").get_json()["outputs"]["final"]
    response = client.get(final_url, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.is_streamed, "read from storage in chunks, not whole into memory"
    assert response.content_length == len(images.png)
    assert response.get_data() == images.png
    response.close()


def test_intermediates(client: FlaskClient, submit: Submit, worker_actions: WorkerActions, images: Images) -> None:
    """Each recorded snapshot is served; other iterations are 404 JSON."""
    job_id = submit().get_json()["id"]
    worker_actions.claim(job_id)
    worker_actions.snapshot(job_id, 8)
    worker_actions.snapshot(job_id, 4)
    intermediates = client.get(f"/v1/jobs/{job_id}").get_json()["outputs"]["intermediates"]
    assert [item["iteration"] for item in intermediates] == [4, 8]
    for item in intermediates:
        response = client.get(item["url"])
        assert (response.status_code, response.mimetype) == (200, "image/png")
        assert response.get_data() == images.png
    missing = client.get(f"/v1/jobs/{job_id}/intermediates/5")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"


def test_inputs_as_uploaded(client: FlaskClient, submit: Submit, images: Images) -> None:
    """The content and each style image, at the URLs the job JSON lists, byte for byte with their media type."""
    job_id = submit(styles=[images.png, images.jpeg]).get_json()["id"]
    inputs = client.get(f"/v1/jobs/{job_id}").get_json()["inputs"]
    assert inputs["content"].endswith(f"/v1/jobs/{job_id}/inputs/content")
    assert [url.rsplit("/", 1)[1] for url in inputs["style"]] == ["0", "1"]
    expected = [(inputs["content"], images.jpeg, "image/jpeg")]
    expected += [(inputs["style"][0], images.png, "image/png"), (inputs["style"][1], images.jpeg, "image/jpeg")]
    for url, data, mimetype in expected:
        response = client.get(url)
        assert (response.status_code, response.mimetype, response.get_data()) == (200, mimetype, data)
    assert client.get(f"/v1/jobs/{job_id}/inputs/style/2").status_code == 404


@pytest.mark.parametrize("path", ["output", "intermediates/4", "inputs/content", "inputs/style/0"])
def test_files_of_unknown_job_are_404(client: FlaskClient, path: str) -> None:
    """A missing job answers 404 JSON on its file URLs too."""
    response = client.get(f"/v1/jobs/nope/{path}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
