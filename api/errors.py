"""Every error as JSON {"error": {"code", "message"}}; a 500 carries a request id, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from impasto.api.context import request_id

logger = logging.getLogger(__name__)

# Codes for the HTTP errors Flask and Werkzeug raise themselves; others use their name.
HTTP_ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",  # flask-limiter's RateLimitExceeded
}


class ApiError(Exception):
    """An error the API answers on purpose, with its status, code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def not_found(what: str) -> ApiError:
    """The 404 for a missing resource."""
    return ApiError(404, "not_found", f"{what} not found")


def validation_details(exc: ValidationError, root: str) -> list[dict[str, str]]:
    """Pydantic's errors as [{"field", "message"}]; errors about the whole object name `root`."""
    details = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or root
        message = error["msg"].removeprefix("Value error, ")
        details.append({"field": field, "message": message})
    return details


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """The JSON error body with its status."""
    body: dict[str, Any] = {"code": code, "message": message}
    body.update({key: value for key, value in extra.items() if value is not None})
    response = jsonify({"error": body})
    response.status_code = status
    return response


def handle_api_error(exc: ApiError) -> Response:
    """An ApiError as its JSON body, with its headers (WWW-Authenticate, Retry-After)."""
    response = error_response(exc.status, exc.code, exc.message, details=exc.details)
    response.headers.update(exc.headers)
    return response


def handle_http_exception(exc: HTTPException) -> Response:
    """Werkzeug's HTTP errors (404, 405, 413, ...) as JSON, keeping headers such as Allow."""
    status = exc.code or 500
    if status >= 500:
        return handle_unexpected(exc)
    code = HTTP_ERROR_CODES.get(status) or (exc.name or "error").lower().replace(" ", "_")
    response = error_response(status, code, exc.description or exc.name)
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def handle_unexpected(exc: BaseException) -> Response:
    """Log the failure with its request id; the client gets the id, not the traceback."""
    rid = request_id()
    logger.error("unhandled error, request_id=%s", rid, exc_info=exc)
    return error_response(500, "internal_error", "internal error", request_id=rid)


def handle_database_unavailable(exc: OperationalError | InterfaceError) -> Response:
    """SQL unreachable (down, restarting): 503 with a Retry-After, and nothing half-done."""
    logger.warning("database unavailable, request_id=%s: %s", request_id(), exc.orig)
    response = error_response(503, "database_unavailable", "the database is unavailable; retry shortly")
    response.headers["Retry-After"] = "5"
    return response


def register_error_handlers(app: Flask) -> None:
    """Install the JSON error handlers on an app."""
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(InterfaceError, handle_database_unavailable)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
