"""A small HTTP client for the v1 API, used by the CLI's client commands."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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

    def ready(self) -> bool:
        """True when /readyz answers 200."""
        try:
            return self.session.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False
