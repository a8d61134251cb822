"""Live job watching against real processes: the SSE stream and Prefer: wait, with gunicorn, a
worker, Redis and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from impasto import Client
from impasto.sse import parse_sse
from tests.e2e.conftest import API_KEYS, Processes, auth

Event = tuple[str, dict[str, Any], str | None]


def post_job(
    url: str, samples: Path, params: dict[str, Any], headers: dict[str, str] | None = None
) -> requests.Response:
    """POST a job with the bundled cat and Starry Night."""
    files = [
        ("content", ("chelsea.jpg", (samples / "chelsea.jpg").read_bytes(), "image/jpeg")),
        ("style", ("starry_night.jpg", (samples / "starry_night.jpg").read_bytes(), "image/jpeg")),
    ]
    return requests.post(
        f"{url}/v1/jobs",
        files=files,
        data={"params": json.dumps(params)},
        headers={**auth(url), **(headers or {})},
        timeout=120,
    )


def read_stream(url: str, job_id: str, last_event_id: str | None = None) -> list[Event]:
    """Every event of the job's stream until it ends (bounded by a read timeout)."""
    headers = {**auth(url), **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    with requests.get(f"{url}/v1/jobs/{job_id}/events", headers=headers, stream=True, timeout=(10, 60)) as response:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines = (line.decode() if isinstance(line, bytes) else line for line in response.iter_lines())
        return [(event.event, event.data, event.id) for event in parse_sse(lines)]


def id_key(event_id: str | None) -> tuple[int, ...]:
    """A Redis stream id as a sortable tuple."""
    return tuple(int(part) for part in str(event_id).split("-"))


def test_stream_of_a_small_job_and_resume(production_stack: tuple[str, Processes], samples: Path) -> None:
    """status, progress, snapshots and completed in order with increasing ids; a resume loses nothing."""
    url, _ = production_stack
    response = post_job(url, samples, {"size": 48, "iterations": 20, "snapshot_every": 5})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    events = read_stream(url, job_id)
    names = [name for name, _, _ in events]
    assert names[0] == "status" and names[-1] == "completed", names
    assert "progress" in names and "snapshot" in names, names
    assert names.index("progress") < names.index("completed") and names.index("snapshot") < names.index("completed")
    assert events[-1][1]["status"] == "succeeded"
    ids = [event_id for _, _, event_id in events if event_id is not None]
    assert [id_key(i) for i in ids] == sorted(id_key(i) for i in ids) and len(set(ids)) == len(ids)
    snapshot = next(data for name, data, _ in events if name == "snapshot")
    image = requests.get(snapshot["url"], headers=auth(url), timeout=10)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")

    # Reconnect after the first progress event: the rest of the relayed events come again, in order.
    relayed = [(name, event_id) for name, _, event_id in events[1:] if event_id is not None]
    resume_from = next(event_id for name, event_id in relayed if name == "progress")
    resumed = read_stream(url, job_id, last_event_id=resume_from)
    assert resumed[0][0] == "status" and resumed[0][2] is None and resumed[-1][0] == "completed"
    after = relayed[[event_id for _, event_id in relayed].index(resume_from) + 1 :]
    assert [(name, event_id) for name, _, event_id in resumed[1:-1]] == after

    # `impasto submit --wait` follows the same stream.
    final = Client(url, API_KEYS[url]).wait(job_id, timeout=60)
    assert final["status"] == "succeeded"


def test_prefer_wait_returns_the_finished_job(production_stack: tuple[str, Processes], samples: Path) -> None:
    """Prefer: wait=30 on a tiny job answers it succeeded, in the same response."""
    url, _ = production_stack
    response = post_job(url, samples, {"size": 32, "iterations": 5}, {"Prefer": "wait=30"})
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == "wait=30"
    assert response.json()["status"] == "succeeded" and response.json()["outputs"]["final"]
