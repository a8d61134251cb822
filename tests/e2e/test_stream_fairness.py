"""One key cannot take every long-held thread of an API process (gunicorn, real sockets), and revoking
a key ends its open streams: against `impasto api`, PostgreSQL and Redis.

Key A opens as many streams and `Prefer: wait` submissions as the process has slots and threads
(48 streams plus 16 waits: 64, gunicorn's threads per process); past its share it gets 429 with
Retry-After and its waits are answered at once. Key B, meanwhile, streams and polls as usual.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image

from tests.e2e.conftest import ROOT, auth, start_production_stack

PER_KEY = 8  # the default max_held_requests_per_key
STREAMS, WAITS = 48, 16  # what one key tried in the report: every stream slot and every thread left


def png(size: tuple[int, int] = (32, 24)) -> bytes:
    """A small gradient PNG."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def create_key(env: dict[str, str], name: str) -> str:
    """A new API key, made with `impasto keys create` as an operator makes one."""
    command = [sys.executable, "-m", "impasto.cli", "keys", "create", "--name", name]
    return subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def open_stream(url: str, job_id: str, key: str) -> requests.Response:
    """GET the job's events with `key`, the body left unread (a held stream, when 200)."""
    headers = {"Authorization": f"Bearer {key}"}
    return requests.get(f"{url}/v1/jobs/{job_id}/events", headers=headers, stream=True, timeout=(10, 120))


def submit(url: str, key: str, image: bytes, prefer: str | None = None) -> requests.Response:
    """POST a job with `key` (optionally with a Prefer header)."""
    headers = {"Authorization": f"Bearer {key}", **({"Prefer": prefer} if prefer else {})}
    files = [("content", ("c.png", image, "image/png")), ("style", ("s.png", image, "image/png"))]
    return requests.post(f"{url}/v1/jobs", files=files, headers=headers, timeout=120)


def test_one_key_cannot_take_every_thread_and_revocation_ends_its_streams(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """A fills its share (429 + Retry-After past it, waits not held); B streams and polls; revoking A ends A's."""
    with start_production_stack(tmp_path, postgres_url, redis_url) as (url, processes):
        # No job has to run: a stopped worker keeps them queued, so streams and waits stay open.
        processes.children["worker"].terminate()
        key_a, key_b = auth(url)["Authorization"].removeprefix("Bearer "), create_key(processes.env, "b")
        image = png()
        job_a = submit(url, key_a, image).json()["id"]
        job_b = submit(url, key_b, image).json()["id"]

        with ThreadPoolExecutor(max_workers=STREAMS + WAITS) as pool:
            streams = list(pool.map(lambda _: open_stream(url, job_a, key_a), range(STREAMS)))
            waits = list(pool.map(lambda _: submit(url, key_a, image, "wait=60"), range(WAITS)))
        held = [r for r in streams if r.status_code == 200]
        refused = [r for r in streams if r.status_code != 200]
        try:
            assert len(held) == PER_KEY, [r.status_code for r in streams]
            assert {r.status_code for r in refused} == {429}
            assert all(int(r.headers["Retry-After"]) > 0 for r in refused)
            assert {r.json()["error"]["code"] for r in refused} == {"too_many_streams"}
            # A's waits found no slot: answered at once (202, the job made), not held for 60 s.
            assert {r.status_code for r in waits} == {202}
            assert not any("Preference-Applied" in r.headers for r in waits)

            # B, meanwhile: its stream opens and its polls answer.
            with open_stream(url, job_b, key_b) as stream_b:
                assert stream_b.status_code == 200, stream_b.text
                first = next(stream_b.iter_lines(decode_unicode=True))
                assert first.startswith(("id:", "event:")), first
            for _ in range(5):
                started = time.monotonic()
                poll = requests.get(f"{url}/v1/jobs/{job_b}", headers={"Authorization": f"Bearer {key_b}"}, timeout=30)
                assert poll.status_code == 200
                assert time.monotonic() - started < 5, "a poll waited for a thread"

            # Revoking A (`impasto keys revoke`) ends A's open streams within a few seconds.
            key_id = key_a.split("_")[1]
            revoke = [sys.executable, "-m", "impasto.cli", "keys", "revoke", key_id]
            subprocess.run(revoke, env=processes.env, cwd=ROOT, check=True, capture_output=True)
            revoked_at = time.monotonic()
            with ThreadPoolExecutor(max_workers=PER_KEY) as pool:
                bodies = list(pool.map(lambda r: r.text, held))  # each read returns once its stream ends
            waited = time.monotonic() - revoked_at
            assert all("event: error" in body and "revoked" in body for body in bodies)
            assert waited < 15, f"A's streams ran {waited:.1f} s past the revocation"
        finally:
            for response in streams:
                response.close()
