"""Retention with real processes: the reconciler deletes a finished job's images, and the API answers 410."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tests.e2e.conftest import auth, start_production_stack
from tests.e2e.test_pipeline import SMALL_JOB, poll, submit

RETENTION_S = 10  # long enough to see the files and fetch them first on a loaded machine


def test_retention_deletes_the_files_then_answers_410(
    tmp_path: Path, postgres_url: str, redis_url: str, samples: Path
) -> None:
    """A job finished RETENTION_S ago loses its final and snapshot files; its row stays, marked expired."""
    with start_production_stack(tmp_path, postgres_url, redis_url, retention_s=str(RETENTION_S)) as (url, processes):
        processes.start("reconcile", "reconcile", "--interval", "0.5")
        job = submit(url, samples, SMALL_JOB)
        job, _ = poll(url, job["id"], until=("succeeded", "failed", "canceled"))
        assert job["status"] == "succeeded", job
        files = tmp_path / "storage" / "jobs" / job["id"]
        snapshots = sorted(path.name for path in (files / "snapshots").iterdir())
        assert (files / "final.png").is_file() and (files / "final.preview.jpg").is_file()
        assert len([n for n in snapshots if n.endswith(".preview.jpg")]) == 4 and len(snapshots) == 8  # with previews
        image_urls = [job["outputs"]["final"], *(s["url"] for s in job["outputs"]["intermediates"])]
        assert all(requests.get(u, headers=auth(url), timeout=10).status_code == 200 for u in image_urls)

        deadline = time.monotonic() + RETENTION_S + 30
        while not (expired := requests.get(f"{url}/v1/jobs/{job['id']}", headers=auth(url), timeout=10).json())[
            "expired"
        ]:
            assert time.monotonic() < deadline, processes.log("reconcile")[-2000:]
            time.sleep(0.5)
        assert not files.exists(), "the images are deleted from storage"
        assert expired["status"] == "succeeded" and expired["id"] == job["id"], "the row stays"
        for image_url in image_urls:
            response = requests.get(image_url, headers=auth(url), timeout=10)
            assert response.status_code == 410 and response.json()["error"]["code"] == "expired", image_url
