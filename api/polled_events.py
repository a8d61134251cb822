"""A job's events without Redis (the embedded set-up): derived from SQL row changes, polled; the
ids are increasing integers, and a client that reconnects finds what it missed in the opening
`status` event's job JSON."""

from __future__ import annotations

import time
from collections.abc import Iterator

from impasto.api.context import Impasto
from impasto.api.event_messages import KeyWatch, heartbeat, is_finished, key_revoked_event, read_job, sse


def polled_events(impasto: Impasto, job_id: str, last_event_id: str, key_watch: KeyWatch) -> Iterator[str]:
    """Events derived from SQL row changes, polled; ids are increasing integers."""
    settings = impasto.settings
    counter = int(last_event_id) if last_event_id else 0

    def next_id() -> str:
        nonlocal counter
        counter += 1
        return str(counter)

    job = read_job(impasto, job_id)
    if job is None:
        return
    yield sse("status", {"status": job["status"], "job": job}, next_id())
    status, iteration = job["status"], job["progress"]["iteration"]
    seen_snapshots = {item["iteration"] for item in job["outputs"]["intermediates"]}
    last_beat = time.monotonic()
    while not is_finished(job):
        time.sleep(settings.sse_poll_s)
        if key_watch.revoked():
            yield key_revoked_event()
            return
        latest = read_job(impasto, job_id)
        if latest is None:
            return
        job = latest
        if job["status"] != status and not is_finished(job):
            status = job["status"]
            yield sse("status", {"status": status, "job": job}, next_id())
        if job["progress"]["iteration"] != iteration:
            iteration = job["progress"]["iteration"]
            yield sse("progress", job["progress"], next_id())
        for item in job["outputs"]["intermediates"]:
            if item["iteration"] not in seen_snapshots:
                seen_snapshots.add(item["iteration"])
                yield sse("snapshot", {"iteration": item["iteration"], "url": item["url"]}, next_id())
        if time.monotonic() - last_beat >= settings.sse_heartbeat_s:
            last_beat = time.monotonic()
            yield heartbeat()
    if job["status"] != status:
        yield sse("status", {"status": job["status"], "job": job}, next_id())
    yield sse("completed", job, next_id())
