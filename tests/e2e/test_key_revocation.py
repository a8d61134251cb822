"""A revoked key stops working in every API process within a second, although each process caches
keys it found valid (IMPASTO_API_KEY_CACHE_S): two gunicorn-served APIs on one database and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import ROOT, Processes, free_port, wait_ready

REVOCATION_BOUND_S = 1.0  # the promise: no process serves a revoked key for longer


def impasto(env: dict[str, str], *args: str) -> str:
    """Run `impasto ARGS` to the end and return what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "impasto.cli", *args], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture
def two_apis(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Two `impasto api` processes (gunicorn, one worker each) sharing PostgreSQL and Redis."""
    env = {
        **os.environ,
        "IMPASTO_DATA_DIR": str(tmp_path / "data"),
        "IMPASTO_DATABASE_URL": postgres_url,
        "IMPASTO_BROKER_URL": redis_url,
        "IMPASTO_STORAGE_URL": f"file://{tmp_path / 'storage'}",
    }
    impasto(env, "db", "upgrade")
    processes = Processes(env, tmp_path)
    urls = []
    for name in ("api-a", "api-b"):
        port = free_port()
        processes.start(name, "api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            wait_ready(url)
        yield urls, env
    finally:
        processes.stop_all()


def test_a_revoked_key_is_refused_by_every_process_within_a_second(
    two_apis: tuple[list[str], dict[str, str]],
) -> None:
    """Both processes serve the key (and cache it); after `impasto keys revoke`, both answer 401."""
    urls, env = two_apis
    key = impasto(env, "keys", "create", "--name", "revoked-soon")
    headers = {"Authorization": f"Bearer {key}"}
    missing_job = f"/v1/jobs/{uuid.uuid4()}"
    for url in urls:
        # A POST without a form is refused by the view, after authentication: the key is good and cached.
        assert requests.post(f"{url}/v1/jobs", headers=headers, timeout=30).status_code in {400, 415, 422}
        assert requests.get(f"{url}{missing_job}", headers=headers, timeout=30).status_code == 404
    impasto(env, "keys", "revoke", key[:16])
    revoked_at = time.monotonic()
    # A poll reads the key's row in its own query: refused at once, cache or not.
    for url in urls:
        response = requests.get(f"{url}{missing_job}", headers=headers, timeout=30)
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "this API key has been revoked"
    # A submission trusts the cache: refused by every process once the bound has passed.
    time.sleep(max(0.0, revoked_at + REVOCATION_BOUND_S - time.monotonic()))
    for url in urls:
        response = requests.post(f"{url}/v1/jobs", headers=headers, timeout=30)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["message"] == "this API key has been revoked"
