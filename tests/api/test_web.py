"""The web page at /: served without a key under a strict CSP, and the local key of an embedded
stack only for the one-time token of the login link `impasto up` prints."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from impasto.api.context import EXTENSION_KEY
from impasto.shared.local_key import ensure_local_key, issue_web_token

# The page's ES modules (api/static/*.js), each served at /web/<name>.
MODULES = sorted(path.name for path in (Path(__file__).parents[2] / "api" / "static").glob("*.js"))


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [
        ("/", "text/html"),
        ("/web/app.css", "text/css"),
        *[("/web/" + name, "text/javascript") for name in MODULES],
    ],
)
def test_page_files_are_public(app: Flask, path: str, mimetype: str) -> None:
    """The page, its script and its style sheet need no key, and forbid other origins' code."""
    response = app.test_client().get(path)
    assert response.status_code == 200 and response.mimetype == mimetype
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    response.close()


@pytest.mark.parametrize(
    "path", ["/web/other.js", "/web/index.html", "/web/..%2Fweb.js", "/web/other.css", "/web/login"]
)
def test_unknown_page_file_is_not_found(app: Flask, path: str) -> None:
    """Only the page's own scripts and style sheet are served under /web/ (GET /web/login is not a file)."""
    assert app.test_client().get(path).status_code in (404, 405)


def test_every_module_the_page_imports_is_served(app: Flask) -> None:
    """Each `import ... from "./x.js"` of the page's modules names a file /web/ serves."""
    client = app.test_client()
    for name in MODULES:
        source = client.get("/web/" + name).get_data(as_text=True)
        for imported in re.findall(r'from "\./([\w.]+)"', source):
            assert client.get("/web/" + imported).status_code == 200, (name, imported)


def embedded_app(make_app: Callable[..., Flask]) -> tuple[Flask, str, str]:
    """An embedded-broker app with a local key file and a one-time login token."""
    app = make_app(broker_url=None)
    settings = app.extensions[EXTENSION_KEY].settings
    key = ensure_local_key(settings)
    return app, key, issue_web_token(settings)


def test_the_login_token_gives_the_key_once(make_app: Callable[..., Flask]) -> None:
    """The link's token is traded for the local key, uncached; the same token again is refused."""
    app, key, token = embedded_app(make_app)
    client = app.test_client()
    response = client.post("/web/login", json={"token": token})
    assert response.status_code == 200 and response.get_json() == {"api_key": key}
    assert response.headers["Cache-Control"] == "no-store"
    again = client.post("/web/login", json={"token": token})
    assert again.status_code == 403 and again.get_json()["error"]["code"] == "invalid_login_token"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"token": "guess"}, 403),
        ({"token": ""}, 400),
        ({"token": 7}, 400),
        (["x"], 400),
        (None, 400),
        ({"token": "guess", "key": "x"}, 400),  # the spec's LoginRequest has no other property
        ({}, 400),
    ],
)
def test_a_wrong_token_gets_nothing_and_spends_nothing(
    make_app: Callable[..., Flask], body: object, status: int
) -> None:
    """A wrong or malformed token is refused, and the real one still works afterwards."""
    app, key, token = embedded_app(make_app)
    client = app.test_client()
    response = client.post("/web/login", json=body) if body is not None else client.post("/web/login", data="x")
    assert response.status_code == status and "api_key" not in response.get_json()
    assert client.post("/web/login", json={"token": token}).get_json() == {"api_key": key}


def test_login_refused_without_the_embedded_broker(app: Flask) -> None:
    """A production (Redis) stack never hands out a key, even for a valid token."""
    settings = app.extensions[EXTENSION_KEY].settings
    ensure_local_key(settings)
    assert app.test_client().post("/web/login", json={"token": issue_web_token(settings)}).status_code == 403


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_old_local_key_endpoint_is_gone(make_app: Callable[..., Flask], method: str) -> None:
    """/web/local-key, which gave the key to any local process, answers 404 (GET) or 405, never a key."""
    app, _key, _token = embedded_app(make_app)
    response = app.test_client().open("/web/local-key", method=method, base_url="http://127.0.0.1:8000")
    assert response.status_code in (404, 405) and b"api_key" not in response.data
