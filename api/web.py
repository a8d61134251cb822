"""The web page at `/`: plain HTML, CSS and JavaScript served by the API, no build step.

The page itself is public; everything it shows comes from the v1 API, called with the key the
user pastes. Under `impasto up` (embedded broker) the one-time login link it prints gives the
page the local key instead, see login().
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError

from impasto.api.auth import public
from impasto.api.context import current_impasto
from impasto.api.errors import ApiError, validation_details
from impasto.api.openapi import documented
from impasto.api.schemas import ErrorBody, LoginAnswer, LoginRequest
from impasto.shared.local_key import read_local_key, redeem_web_token

bp = Blueprint("web", __name__)

STATIC = Path(__file__).parent / "static"
# The page loads only its own files; images are blob: URLs made from authenticated fetches.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
MIMETYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


@bp.get("/")
@public
@documented(responses={200: "text/html"})
def index() -> Response:
    """The web page."""
    return page_file("index.html")


@bp.get("/web/<module>.js")
@public
@documented(responses={200: "text/javascript", 404: ErrorBody})
def script(module: str) -> Response:
    """One of the page's scripts (ES modules: app.js imports the others)."""
    if f"{module}.js" not in page_modules():
        raise ApiError(404, "not_found", "no such script of the page")
    return page_file(f"{module}.js")


@bp.get("/web/app.css")
@public
@documented(responses={200: "text/css"})
def style_sheet() -> Response:
    """The page's style sheet."""
    return page_file("app.css")


def page_modules() -> frozenset[str]:
    """The scripts under static/."""
    return frozenset(path.name for path in STATIC.glob("*.js"))


def page_file(name: str) -> Response:
    """A file of the page, with a strict Content-Security-Policy and no caching across upgrades."""
    # Read whole (a few KB): a streamed file handle would stay open on a response nobody closes.
    response = Response((STATIC / name).read_bytes(), mimetype=MIMETYPES[Path(name).suffix])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.post("/web/login")
@public
@documented(responses={200: LoginAnswer, 400: ErrorBody, 403: ErrorBody}, json=LoginRequest)
def login() -> Response:
    """Trade the one-time token of `impasto up`'s login link for the stack's local API key.

    The page reads the token from its URL's fragment (never sent to a server, nor in a Referer)
    and posts it here. The token is consumed by its first use; only its hash is on disk, in the
    owner-only data folder, so no other user of the machine can log in.
    """
    settings = current_impasto().settings
    token = read_login_token()
    key = read_local_key(settings.local_api_key_path()) if settings.uses_embedded_broker() else None
    if key is None or not redeem_web_token(settings, token):
        raise ApiError(
            403, "invalid_login_token", "this login link was used already or is not this stack's: use the new one "
            "`impasto up` printed, or paste an API key",
        )  # fmt: skip
    response = jsonify(LoginAnswer(api_key=key).model_dump())
    response.headers["Cache-Control"] = "no-store"
    return response


def read_login_token() -> str:
    """The token of a JSON body that is exactly LoginRequest (what the spec says); 400 for anything else."""
    message = 'send {"token": "..."} as application/json, from the login link `impasto up` printed'
    if not request.is_json:
        raise ApiError(400, "bad_request", message)
    try:
        return LoginRequest.model_validate_json(request.get_data()).token
    except ValidationError as exc:
        raise ApiError(400, "bad_request", message, details=validation_details(exc, root="body")) from exc
