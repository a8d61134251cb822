"""What the shipped nginx config answers by itself, in the API's JSON error shape: past the
per-address limit of requests in progress (429), a body over the upload limit (413), and an API
that does not answer (503). nginx runs in front of a stand-in upstream that holds requests."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from impasto.shared.settings import get_settings
from tests.deploy.proxy_config import nginx_binary, running_nginx, shipped_directives

HOLD_LIMIT_S = 30  # a held request is let go after this whatever happens


class HoldingUpstream(ThreadingHTTPServer):
    """Answers /healthz at once and holds /hold until `release` is set, counting those in progress."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HoldingHandler)
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.holding = 0


class HoldingHandler(BaseHTTPRequestHandler):
    """The stand-in API's one view."""

    server: HoldingUpstream
    protocol_version = "HTTP/1.0"  # one request a connection: nothing outlives the server's shutdown

    def do_GET(self) -> None:
        """200 {} at once, or after the release for /hold."""
        if self.path == "/hold":
            with self.server.lock:
                self.server.holding += 1
            self.server.release.wait(HOLD_LIMIT_S)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest's output is for failures."""


@pytest.fixture
def holding_proxy(tmp_path: Path) -> Iterator[tuple[str, HoldingUpstream]]:
    """(nginx URL, the upstream behind it)."""
    nginx_binary()
    upstream = HoldingUpstream()
    serving = threading.Thread(target=upstream.serve_forever, daemon=True)
    serving.start()
    try:
        with running_nginx(upstream.server_address[1], tmp_path / "nginx") as proxy_url:
            yield proxy_url, upstream
    finally:
        upstream.release.set()
        upstream.shutdown()
        upstream.server_close()


def test_requests_in_progress_are_limited_per_address(holding_proxy: tuple[str, HoldingUpstream]) -> None:
    """Past `limit_conn` requests in progress from one address, nginx answers 429 without asking the API."""
    proxy_url, upstream = holding_proxy
    (limit,) = shipped_directives("limit_conn")
    allowed = int(limit.split()[1])
    with ThreadPoolExecutor(allowed) as pool:
        held = [pool.submit(requests.get, f"{proxy_url}/hold", timeout=HOLD_LIMIT_S + 10) for _ in range(allowed)]
        deadline = time.monotonic() + 20
        while upstream.holding < allowed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.holding == allowed
        refused = requests.get(f"{proxy_url}/healthz", timeout=10)
        upstream.release.set()
        statuses = [future.result().status_code for future in held]
    assert statuses == [200] * allowed
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "too_many_connections"
    assert requests.get(f"{proxy_url}/healthz", timeout=10).status_code == 200  # room again


def test_a_body_over_the_upload_limit_is_refused_before_it_is_sent(holding_proxy: tuple[str, HoldingUpstream]) -> None:
    """The declared length alone gets the JSON 413: nginx reads nothing more, gunicorn sees nothing."""
    proxy_url, _ = holding_proxy
    connection = http.client.HTTPConnection(proxy_url.removeprefix("http://"), timeout=10)
    try:
        connection.putrequest("POST", "/v1/jobs")
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(get_settings().max_upload_bytes + 1))
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 413 and response.getheader("Content-Type") == "application/json"
    assert b'"payload_too_large"' in body


def test_an_api_that_does_not_answer_is_a_json_503(holding_proxy: tuple[str, HoldingUpstream]) -> None:
    """Nothing listening behind nginx: 503 with Retry-After and the API's error shape, not an HTML 502."""
    proxy_url, upstream = holding_proxy
    upstream.shutdown()
    upstream.server_close()
    response = requests.get(f"{proxy_url}/healthz", timeout=10)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "unavailable"
