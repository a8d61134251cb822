"""A small HTTP client for the v1 API, used by the CLI's client commands."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import requests

FINISHED = ("succeeded", "failed", "canceled")


class ApiError(Exception):
    """The API answered with an error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class ApiClient:
    """Calls the impasto API at `base_url`."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout

    def _check(self, response: requests.Response) -> requests.Response:
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise ApiError(response.status_code, error.get("code", "error"), error.get("message", ""))
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, "http_error", response.text[:200]) from None
        return response

    def submit(self, content: Path, styles: list[Path], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /v1/jobs with the images and params; returns the job."""
        handles = [("content", (content.name, content.read_bytes()))]
        handles += [("style", (s.name, s.read_bytes())) for s in styles]
        data = {"params": json.dumps(params)} if params else {}
        response = self.session.post(f"{self.base_url}/v1/jobs", files=handles, data=data, timeout=self.timeout)
        return self._check(response).json()  # type: ignore[no-any-return]

    def get(self, job_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{id}."""
        return self._check(self.session.get(f"{self.base_url}/v1/jobs/{job_id}", timeout=self.timeout)).json()  # type: ignore[no-any-return]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """POST /v1/jobs/{id}/cancel."""
        url = f"{self.base_url}/v1/jobs/{job_id}/cancel"
        return self._check(self.session.post(url, timeout=self.timeout)).json()  # type: ignore[no-any-return]

    def download(self, url: str, path: Path) -> Path:
        """Fetch an image URL of the API into `path`."""
        response = self._check(self.session.get(url, timeout=self.timeout))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(response.content)
        return path

    def wait(
        self, job_id: str, on_update: Callable[[dict[str, Any]], None] | None = None, poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Poll until the job is finished; returns the final job."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if on_update:
                on_update(job)
            if job["status"] in FINISHED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
            time.sleep(poll_s)

    def events(self, job_id: str, last_event_id: str | None = None) -> Iterator[tuple[str, dict[str, Any], str | None]]:
        """GET /v1/jobs/{id}/events: (event, data, id) until the stream ends."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        url = f"{self.base_url}/v1/jobs/{job_id}/events"
        # The read timeout outlasts the server's 15 s heartbeat; a silent stream is a dead one.
        with self.session.get(url, headers=headers, stream=True, timeout=(self.timeout, 60)) as response:
            self._check(response)
            lines = (line.decode() if isinstance(line, bytes) else line for line in response.iter_lines())
            yield from parse_sse(lines)

    def follow(
        self, job_id: str, on_update: Callable[[dict[str, Any]], None] | None = None, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Follow the event stream until the job ends, reconnecting with Last-Event-ID; polls if
        the stream cannot be read (an old server, a proxy that buffers). Returns the final job."""
        last_id: str | None = None
        for _attempt in range(5):
            try:
                for event, data, event_id in self.events(job_id, last_id):
                    last_id = event_id or last_id
                    if event == "completed":
                        if on_update:
                            on_update(data)
                        return data
                    if on_update and event == "status" and "job" in data:
                        on_update(data["job"])
                    elif on_update and event == "progress":
                        on_update({"status": "running", "progress": data})
            except (requests.RequestException, ValueError):
                time.sleep(0.5)
        return self.wait(job_id, on_update, timeout_s=timeout_s)

    def ready(self) -> bool:
        """True when /readyz answers 200."""
        try:
            return self.session.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """Server-Sent Events from text lines: (event, JSON data, id); comments are skipped."""
    event, data, event_id = "message", "", None
    for line in lines:
        if not line:
            if data:
                yield event, json.loads(data), event_id
            event, data, event_id = "message", "", None
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data = f"{data}\n{value}" if data else value
            elif name == "id":
                event_id = value
