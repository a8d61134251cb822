"""impasto.Client against the real API (gunicorn, a CPU worker, PostgreSQL, Redis): every method,
and the errors as the API words them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from impasto import Client, ImpastoError
from tests.client.conftest import Stack, tiny_png
from tests.e2e.conftest import ROOT, free_port

TINY = {"size": 16, "iterations": 4, "snapshot_every": 2}


def test_submit_everything_wait_and_download(stack: Stack, samples: Path, tmp_path: Path) -> None:
    """Files as a path, bytes and an open file; params as a mapping and keywords; a webhook with a filter;
    Prefer: wait; then the output and a snapshot as bytes and to a path, and by a job URL."""
    client = stack.client()
    with open(samples / "starry_night.jpg", "rb") as style_file:
        job = client.submit(
            samples / "chelsea.jpg",
            [tiny_png((20, 20)), style_file],
            {"size": 16, "style_blend_weights": [1.0, 3.0]},
            iterations=4,
            snapshot_every=2,
            precision="fp32",
            webhook="http://127.0.0.1:9/hook",
            webhook_events=["start", "completed"],
            wait=60,
        )
    assert job["status"] == "succeeded", job
    assert job["params"]["style_blend_weights"] == [1.0, 3.0] and job["params"]["iterations"] == 4
    assert job["webhook"] == "http://127.0.0.1:9/hook" and job["webhook_events_filter"] == ["completed", "start"]
    output = client.download_output(job["id"])
    assert output.startswith(b"\x89PNG")
    assert client.download_output(job["id"], tmp_path / "out" / "final.png").read_bytes() == output
    assert client.download(job["outputs"]["final"] or "") == output
    assert [item["iteration"] for item in job["outputs"]["intermediates"]] == [2, 4]
    snapshot = client.download_snapshot(job["id"], 2)
    assert snapshot.startswith(b"\x89PNG")
    assert client.download_snapshot(job["id"], 2, tmp_path / "snap.png").read_bytes() == snapshot
    assert client.get(job["id"]) == job


def test_idempotency_key(stack: Stack) -> None:
    """The same key and request give the same job; the same key with other params is a 409."""
    client = stack.client()
    first = client.submit(tiny_png(), tiny_png(), TINY, idempotency_key="retry-me")
    again = client.submit(tiny_png(), tiny_png(), TINY, idempotency_key="retry-me")
    assert again["id"] == first["id"]
    with pytest.raises(ImpastoError) as caught:
        client.submit(tiny_png(), tiny_png(), {**TINY, "iterations": 5}, idempotency_key="retry-me")
    assert (caught.value.status, caught.value.code) == (409, "idempotency_key_reused")
    client.wait(first["id"], timeout=120)


def test_list_pages_filters_and_iterates(stack: Stack) -> None:
    """Pages of two with cursors, a status filter, and iter_jobs over every page, newest first."""
    client = Client(stack.url, stack.api_key)
    ids = [client.submit(io.BytesIO(tiny_png()), tiny_png(), TINY)["id"] for _ in range(3)]
    for job_id in ids:
        assert client.wait(job_id, timeout=120)["status"] == "succeeded"
    everything = [job["id"] for job in client.iter_jobs(page_size=2)]
    assert everything[:3] == ids[::-1]
    assert len(everything) == len(set(everything))
    first = client.list_jobs(limit=2)
    assert [job["id"] for job in first["jobs"]] == everything[:2] and first["next_cursor"]
    second = client.list_jobs(limit=2, cursor=first["next_cursor"])
    assert [job["id"] for job in second["jobs"]] == everything[2:4]
    succeeded = [job["id"] for job in client.iter_jobs(status="succeeded", page_size=1)]
    assert set(ids) <= set(succeeded)
    assert all(job["status"] == "canceled" for job in client.iter_jobs(status="canceled"))


def test_cancel_then_delete(stack: Stack) -> None:
    """A long job is canceled; an unfinished one cannot be deleted; a finished one is, and is gone."""
    client = stack.client()
    job = client.submit(tiny_png(), tiny_png(), size=32, iterations=5000, snapshot_every=0)
    with pytest.raises(ImpastoError) as caught:
        client.download_output(job["id"])
    assert (caught.value.status, caught.value.code) == (409, "output_not_ready")
    with pytest.raises(ImpastoError) as caught:  # 5000 iterations: unfinished until canceled
        client.delete(job["id"])
    assert (caught.value.status, caught.value.code) == (409, "job_not_finished")
    canceled = client.cancel(job["id"])
    assert canceled["cancel_requested"] is True
    assert client.wait(job["id"], timeout=120)["status"] == "canceled"
    client.delete(job["id"])
    with pytest.raises(ImpastoError) as caught:
        client.get(job["id"])
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_errors_carry_the_api_code_message_and_status(stack: Stack) -> None:
    """Invalid params (422 with details), a wrong key (401), a missing job (404), no server at all."""
    client = stack.client()
    with pytest.raises(ImpastoError) as caught:
        client.submit(tiny_png(), tiny_png(), size=1)
    assert (caught.value.status, caught.value.code) == (422, "invalid_params")
    assert caught.value.details[0]["field"] == "size" and "size" in caught.value.message
    with pytest.raises(ImpastoError) as caught:
        Client(stack.url, "imp_wrong").get("00000000-0000-0000-0000-000000000000")
    assert caught.value.status == 401
    with pytest.raises(ImpastoError) as caught:
        client.get("00000000-0000-0000-0000-000000000000")
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    with pytest.raises(ImpastoError) as caught:
        Client(f"http://127.0.0.1:{free_port()}", "imp_x").get("x")
    assert (caught.value.status, caught.value.code) == (None, "connection_error")
    assert client.ready() and not Client(f"http://127.0.0.1:{free_port()}").ready()


def test_cli_submit_wait_status_cancel_use_the_client(stack: Stack, samples: Path, tmp_path: Path) -> None:
    """`impasto submit --wait` follows the job and writes the image and snapshots; status and cancel answer."""
    env = {**os.environ, "IMPASTO_URL": stack.url, "IMPASTO_API_KEY": stack.api_key}
    cli = [sys.executable, "-m", "impasto.cli"]
    out = tmp_path / "result.png"
    submitted = subprocess.run(
        [*cli, "submit", str(samples / "chelsea.jpg"), str(samples / "starry_night.jpg"), "--wait", "--out", str(out)]
        + ["--param", "size=16", "--param", "iterations=4", "--param", "snapshot_every=2"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert out.read_bytes().startswith(b"\x89PNG") and (tmp_path / "result-000002.png").is_file()
    job_id = submitted.stdout.splitlines()[0]
    status = subprocess.run([*cli, "status", job_id], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert '"succeeded"' in status.stdout, status.stderr
    cancel = subprocess.run([*cli, "cancel", job_id], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert cancel.stdout.strip() == f"{job_id}: succeeded", cancel.stderr
    missing = subprocess.run(
        [*cli, "status", "00000000-0000-0000-0000-000000000000"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1 and "404 not_found" in missing.stderr
