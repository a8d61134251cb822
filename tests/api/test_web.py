"""The web page at /: served without a key under a strict CSP, and the local key only to a
loopback browser of an embedded stack."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from api.context import EXTENSION_KEY
from shared.local_key import write_local_key


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [("/", "text/html"), ("/web/app.js", "text/javascript"), ("/web/app.css", "text/css")],
)
def test_page_files_are_public(app: Flask, path: str, mimetype: str) -> None:
    """The page, its script and its style sheet need no key, and forbid other origins' code."""
    response = app.test_client().get(path)
    assert response.status_code == 200 and response.mimetype == mimetype
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    response.close()


def test_unknown_page_file_is_not_found(app: Flask) -> None:
    """Only the page's own files are served."""
    assert app.test_client().get("/web/other.js").status_code == 404


def embedded_app(make_app: Callable[..., Flask]) -> tuple[Flask, str]:
    """An embedded-broker app with a local key file."""
    app = make_app(broker_url=None)
    key = "imp_local_test_key"
    write_local_key(app.extensions[EXTENSION_KEY].settings.local_api_key_path(), key)
    return app, key


def test_local_key_for_a_loopback_browser_of_an_embedded_stack(make_app: Callable[..., Flask]) -> None:
    """127.0.0.1 asking for localhost gets the key, uncached."""
    app, key = embedded_app(make_app)
    response = app.test_client().get("/web/local-key", base_url="http://127.0.0.1:8000")
    assert response.status_code == 200 and response.get_json() == {"api_key": key}
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "request_args",
    [
        {"base_url": "http://evil.example:8000"},  # DNS rebinding: another name resolved to loopback
        {"environ_base": {"REMOTE_ADDR": "192.0.2.7"}},  # another machine
        {"headers": {"X-Forwarded-For": "192.0.2.7"}},  # a proxy on loopback relaying someone else
    ],
)
def test_local_key_refused_off_loopback(make_app: Callable[..., Flask], request_args: dict[str, Any]) -> None:
    """Anything but a direct loopback request is answered as if there were no key."""
    app, _ = embedded_app(make_app)
    response = app.test_client().get("/web/local-key", **request_args)
    assert response.status_code == 404


def test_local_key_refused_without_the_embedded_broker(app: Flask) -> None:
    """A production (Redis) stack never hands out a key, even to loopback."""
    write_local_key(app.extensions[EXTENSION_KEY].settings.local_api_key_path(), "imp_x")
    assert app.test_client().get("/web/local-key").status_code == 404
