"""`Client`: the v1 HTTP API from Python, with requests only (no torch, no Flask)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Unpack, cast, overload

import requests

from impasto.errors import ImpastoError
from impasto.models import Job, JobPage, JobParams, JobStatus, WebhookEvent
from impasto.origin import origin_of
from impasto.sse import Event, parse_sse

# An image to upload: a path, its bytes, or an open binary file.
ImageSource = str | os.PathLike[str] | bytes | IO[bytes]
DEFAULT_URL = "http://127.0.0.1:8000"
CHUNK_BYTES = 256 * 1024  # per write of a download to disk
STREAM_READ_TIMEOUT_S = 60.0  # well over the server's 15 s heartbeat: a silent stream is a dead one
RECONNECT_TRIES = 5  # consecutive dropped connections an event stream survives


class Client:
    """Calls the impasto API at `url` with `api_key` (defaults: IMPASTO_URL, IMPASTO_API_KEY).

    The key is sent only to `url`'s origin: any other URL (a job URL naming another host, say)
    is refused with ImpastoError(code="foreign_origin") before a byte is sent.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.url = (url or os.environ.get("IMPASTO_URL") or DEFAULT_URL).rstrip("/")
        self.origin = origin_of(self.url)
        self.api_key = api_key if api_key is not None else os.environ.get("IMPASTO_API_KEY")
        self.timeout = timeout
        self.session = session or requests.Session()

    def submit(
        self,
        content: ImageSource,
        styles: ImageSource | Sequence[ImageSource],
        params: Mapping[str, Any] | None = None,
        *,
        webhook: str | None = None,
        webhook_events: Sequence[WebhookEvent] | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
        mask: ImageSource | None = None,
        style_masks: Sequence[ImageSource | None] | None = None,
        **param_values: Unpack[JobParams],
    ) -> Job:
        """POST /v1/jobs: one content image, one or more styles, params as a mapping and/or keywords.

        `wait` asks the server to hold the answer up to that many seconds until the job ends
        (`Prefer: wait`); the job comes back finished, or still running when the time is up.
        `mask` is the content's label image for the `regions` param (spatial control), and
        `style_masks` one label image per style (None for a style without one).
        """
        style_list = image_list(styles)
        files = [("content", upload("content", content))]
        files += [("style", upload(f"style-{index}", style)) for index, style in enumerate(style_list)]
        if mask is not None:
            files.append(("mask", upload("mask", mask)))
        for index, style_mask in enumerate(style_masks or ()):  # an empty part: that style has no label
            files.append(("style_mask", upload(f"style-mask-{index}", b"" if style_mask is None else style_mask)))
        data: dict[str, str] = {}
        merged = {**(params or {}), **param_values}
        if merged:
            data["params"] = json.dumps(merged)
        if webhook is not None:
            data["webhook"] = webhook
        if webhook_events:  # None or empty: the server's default, every event (it refuses an empty value)
            data["webhook_events_filter"] = ",".join(webhook_events)
        headers = {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        timeout = self.timeout
        if wait is not None:
            headers["Prefer"] = f"wait={wait:g}"
            timeout = self.timeout + wait
        return self._json("POST", "/v1/jobs", files=files, data=data, headers=headers, timeout=timeout)  # type: ignore[no-any-return]

    def get(self, job_id: str) -> Job:
        """GET /v1/jobs/{id}: status, progress, outputs, error, metrics."""
        return self._json("GET", f"/v1/jobs/{job_id}")  # type: ignore[no-any-return]

    def list_jobs(
        self, status: JobStatus | None = None, limit: int | None = None, cursor: str | None = None
    ) -> JobPage:
        """One page of the caller's jobs, newest first; pass its next_cursor for the next page."""
        query = {name: value for name, value in (("status", status), ("limit", limit), ("cursor", cursor)) if value}
        return self._json("GET", "/v1/jobs", params=query)  # type: ignore[no-any-return]

    def iter_jobs(self, status: JobStatus | None = None, page_size: int = 100) -> Iterator[Job]:
        """Every job of the caller, newest first, fetching pages as the iteration goes."""
        cursor: str | None = None
        while True:
            page = self.list_jobs(status=status, limit=page_size, cursor=cursor)
            yield from page["jobs"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def cancel(self, job_id: str) -> Job:
        """POST /v1/jobs/{id}/cancel: a queued job ends now, a running one soon; idempotent."""
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")  # type: ignore[no-any-return]

    def delete(self, job_id: str) -> None:
        """DELETE /v1/jobs/{id}: a finished job and its images."""
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def events(self, job_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's events until `completed`, reconnecting with Last-Event-ID when the connection drops."""
        drops = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            got_one = False
            try:
                with self._request(
                    "GET", f"/v1/jobs/{job_id}/events", headers=headers, stream=True,
                    timeout=(self.timeout, STREAM_READ_TIMEOUT_S),
                ) as response:  # fmt: skip
                    # UTF-8 as the SSE standard says, whatever charset the headers name (or omit).
                    lines = (line.decode("utf-8", "replace") for line in response.iter_lines())
                    for event in parse_sse(lines):
                        got_one = True
                        last_event_id = event.id or last_event_id
                        yield event
                        if event.event == "completed":
                            return
            except (requests.RequestException, ImpastoError) as exc:
                if isinstance(exc, ImpastoError) and exc.status is not None:
                    raise  # the API answered no: reconnecting will not change that
            # Dropped, or closed before `completed`: resume after the last event seen.
            drops = 0 if got_one else drops + 1
            if drops >= RECONNECT_TRIES:
                raise ImpastoError("connection_error", f"event stream of job {job_id} dropped {drops} times in a row")
            time.sleep(0.2 * 2**drops)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Follow the job's events until it ends; returns the finished job (timeout checked at each event)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self.events(job_id):
            if event.event == "completed":
                return event.data  # type: ignore[return-value]
            if deadline is not None and time.monotonic() > deadline:
                raise ImpastoError("timeout", f"job {job_id} not finished after {timeout} s")
        raise ImpastoError("bad_response", f"event stream of job {job_id} ended without `completed`")

    @overload
    def download_output(self, job_id: str, path: None = None) -> bytes: ...
    @overload
    def download_output(self, job_id: str, path: str | os.PathLike[str]) -> Path: ...
    def download_output(self, job_id: str, path: str | os.PathLike[str] | None = None) -> bytes | Path:
        """The final PNG: its bytes, or written to `path` (then the path is returned)."""
        return self._download(f"/v1/jobs/{job_id}/output", path)

    @overload
    def download_snapshot(self, job_id: str, iteration: int, path: None = None) -> bytes: ...
    @overload
    def download_snapshot(self, job_id: str, iteration: int, path: str | os.PathLike[str]) -> Path: ...
    def download_snapshot(
        self, job_id: str, iteration: int, path: str | os.PathLike[str] | None = None
    ) -> bytes | Path:
        """The snapshot PNG taken at `iteration`: its bytes, or written to `path`."""
        return self._download(f"/v1/jobs/{job_id}/intermediates/{int(iteration)}", path)

    @overload
    def download(self, url: str, path: None = None) -> bytes: ...
    @overload
    def download(self, url: str, path: str | os.PathLike[str]) -> Path: ...
    def download(self, url: str, path: str | os.PathLike[str] | None = None) -> bytes | Path:
        """An image URL from a job's JSON; refused unless it is on the client's own API origin."""
        return self._download(url, path)

    def ready(self) -> bool:
        """True when /readyz answers 200 (the database and broker are reachable)."""
        try:
            return self._request("GET", "/readyz", timeout=2).status_code == 200
        except ImpastoError:
            return False

    def close(self) -> None:
        """Close the HTTP connections."""
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _download(self, url: str, path: str | os.PathLike[str] | None) -> bytes | Path:
        """GET an image: whole into memory, or streamed to `path` in chunks."""
        with self._request("GET", url, stream=True) as response:
            if path is None:
                return bytes(response.content)
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as handle:
                for chunk in response.iter_content(CHUNK_BYTES):
                    handle.write(chunk)
            return target

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        """A request whose answer is JSON."""
        response = self._request(method, url, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ImpastoError("bad_response", f"not JSON: {response.text[:200]!r}", response.status_code) from exc

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send a request to the API (a path, or an absolute URL on its origin); errors as ImpastoError."""
        full_url = url if "://" in url else self.url + url
        try:
            foreign = origin_of(full_url) != self.origin
        except ValueError:
            foreign = True
        if foreign:
            raise ImpastoError("foreign_origin", f"{full_url} is not on {self.url}; the API key is not sent there")
        headers = dict(kwargs.pop("headers", None) or {})
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        kwargs.setdefault("timeout", self.timeout)
        try:
            # No redirects: the API sends none, and following one could carry the key elsewhere.
            response = self.session.request(method, full_url, headers=headers, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            raise ImpastoError("connection_error", f"{method} {full_url}: {exc}") from exc
        if response.is_redirect:
            response.close()
            raise ImpastoError("unexpected_redirect", f"{method} {full_url} redirects", response.status_code)
        if response.status_code >= 400:
            raise error_of(response)
        return response


def error_of(response: requests.Response) -> ImpastoError:
    """The API's error body as an ImpastoError (a body that is not one keeps the status)."""
    try:
        error = response.json()["error"]
        return ImpastoError(error["code"], error.get("message", ""), response.status_code, error.get("details"))
    except (ValueError, KeyError, TypeError):
        return ImpastoError("http_error", response.text[:200], response.status_code)
    finally:
        response.close()


def image_list(styles: ImageSource | Sequence[ImageSource]) -> list[ImageSource]:
    """One image (a path, bytes or a file) as a list of one; a sequence of them as a list."""
    if isinstance(styles, str | bytes | bytearray | os.PathLike) or hasattr(styles, "read"):
        return [cast(ImageSource, styles)]
    return list(cast(Sequence[ImageSource], styles))


def upload(name: str, image: ImageSource) -> tuple[str, bytes | IO[bytes]]:
    """A multipart file part: (file name, bytes or open file)."""
    if isinstance(image, bytes | bytearray):
        return name, bytes(image)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        return path.name, path.read_bytes()
    file_name = getattr(image, "name", None)
    return (Path(file_name).name if isinstance(file_name, str) else name), image
