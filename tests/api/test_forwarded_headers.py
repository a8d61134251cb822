"""X-Forwarded-* headers are believed only from the proxies IMPASTO_TRUSTED_PROXIES says are in
front (deploy/nginx): the client's address is the one the outermost trusted proxy appended."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Response, jsonify, request

from impasto.api import create_app
from impasto.api.auth import public
from impasto.shared.settings import Settings

PEER = "127.0.0.1"


@public
def seen() -> Response:
    """What the app believes about the request's origin."""
    return jsonify({"addr": request.remote_addr, "scheme": request.scheme, "host": request.host})


@pytest.mark.parametrize(
    ("trusted", "headers", "expected"),
    [
        # No proxy configured: whatever a client claims, its address is the TCP peer's.
        (0, {"X-Forwarded-For": "6.6.6.6"}, {"addr": PEER, "scheme": "http", "host": "api.test"}),
        (0, {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.test"}, {"scheme": "http", "host": "api.test"}),
        # Behind nginx: the right-most value is the one nginx appended; the client's own is ignored.
        (1, {"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}, {"addr": "203.0.113.9"}),
        (
            1,
            {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
            {"addr": "203.0.113.9", "scheme": "https"},
        ),
        (1, {}, {"addr": PEER}),  # the kubelet or Prometheus, straight at gunicorn
        # A load balancer in front of nginx appends too: two are trusted.
        (2, {"X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.0.0.2"}, {"addr": "198.51.100.7"}),
    ],
)
def test_client_address_comes_from_trusted_proxies_only(
    tmp_path: Path, trusted: int, headers: dict[str, str], expected: dict[str, str]
) -> None:
    """request.remote_addr (rate limits, logs) and scheme follow only the trusted proxies' headers."""
    app = create_app(Settings(data_dir=tmp_path, trusted_proxies=trusted))
    app.add_url_rule("/test-seen", view_func=seen)
    try:
        response = app.test_client().get(
            "/test-seen", headers=headers, base_url="http://api.test", environ_base={"REMOTE_ADDR": PEER}
        )
    finally:
        app.extensions["impasto"].close()
    assert response.status_code == 200
    assert {name: response.json[name] for name in expected} == expected
