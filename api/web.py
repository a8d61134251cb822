"""The web page at `/`: plain HTML, CSS and JavaScript served by the API, no build step.

The page itself is public; everything it shows comes from the v1 API, called with the key the
user pastes. Under `impasto up` (embedded broker) the page may fetch the local key instead,
see local_key().
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from api.auth import public
from api.context import current_impasto
from api.errors import ApiError
from api.openapi import documented
from api.schemas import ErrorBody
from shared.local_key import read_local_key

bp = Blueprint("web", __name__)

STATIC = Path(__file__).parent / "static"
# The page loads only its own files; images are blob: URLs made from authenticated fetches.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
MIMETYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


@bp.get("/")
@public
@documented(responses={200: "text/html"})
def index() -> Response:
    """The web page."""
    return page_file("index.html")


@bp.get("/web/app.js")
@public
@documented(responses={200: "text/javascript"})
def script() -> Response:
    """The page's script."""
    return page_file("app.js")


@bp.get("/web/app.css")
@public
@documented(responses={200: "text/css"})
def style_sheet() -> Response:
    """The page's style sheet."""
    return page_file("app.css")


def page_file(name: str) -> Response:
    """A file of the page, with a strict Content-Security-Policy and no caching across upgrades."""
    # Read whole (a few KB): a streamed file handle would stay open on a response nobody closes.
    response = Response((STATIC / name).read_bytes(), mimetype=MIMETYPES[Path(name).suffix])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/web/local-key")
@public
@documented(responses={200: "application/json", 404: ErrorBody})
def local_key() -> Response:
    """The embedded stack's local API key, for the page's "use local key" button.

    Served only when all hold: the broker is the embedded one (a one-machine `impasto up`, whose
    key file already sits readable by the user in the data dir); the TCP peer is loopback and no
    proxy header says it forwarded someone else; the Host is a loopback name (a DNS-rebinding
    page on another origin that resolves to 127.0.0.1 still sends its own Host, and without
    CORS no other origin can read this response anyway).
    """
    settings = current_impasto().settings
    if not settings.uses_embedded_broker() or not from_loopback():
        raise ApiError(404, "not_found", "no local key here: paste an API key")
    key = read_local_key(settings.local_api_key_path())
    if key is None:
        raise ApiError(404, "not_found", "no local key here: paste an API key")
    response = jsonify({"api_key": key})
    response.headers["Cache-Control"] = "no-store"
    return response


def from_loopback() -> bool:
    """True for a direct request from this machine, addressed to a loopback name."""
    if any(header in request.headers for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP")):
        return False
    try:
        peer_is_loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
    host = request.host
    host = host[: host.index("]") + 1] if host.startswith("[") and "]" in host else host.split(":")[0]
    return peer_is_loopback and host in LOOPBACK_HOSTS
