"""One production-shaped stack (gunicorn, a worker, PostgreSQL, Redis) shared by the client tests,
and a local HTTP server that records what reaches it (for the tests that the key never goes there)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from impasto import Client
from tests.conftest import create_postgres_database, drop_postgres_database, flushed_redis
from tests.e2e.conftest import API_KEYS, start_production_stack

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks form, any decoder takes it


@dataclass
class Stack:
    """The running API's URL and key."""

    url: str
    api_key: str

    def client(self) -> Client:
        """A client of this stack with its key."""
        return Client(self.url, self.api_key)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API under gunicorn and one CPU worker, on a database and Redis of this module's own."""
    name, postgres_url = create_postgres_database()
    redis = flushed_redis(10)
    try:
        settings = {"webhook_secret": WEBHOOK_SECRET, "webhook_allow_private": "true"}
        with start_production_stack(tmp_path_factory.mktemp("client"), postgres_url, next(redis), **settings) as (
            url,
            _processes,
        ):
            yield Stack(url, API_KEYS[url])
    finally:
        next(redis, None)
        drop_postgres_database(name)


@dataclass
class Recorder:
    """A local HTTP server on its own port; `seen` lists (method, path, Authorization header)."""

    url: str
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """An HTTP server that answers 200 with a few bytes, or a redirect to ?to=URL, and records each request."""
    seen: list[tuple[str, str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            seen.append(("GET", self.path, self.headers.get("Authorization")))
            if "?to=" in self.path:
                self.send_response(302)
                self.send_header("Location", self.path.split("?to=", 1)[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"\x89PNG")

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Recorder(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()


def tiny_png(size: tuple[int, int] = (24, 16)) -> bytes:
    """A small gradient PNG made with Pillow."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()
