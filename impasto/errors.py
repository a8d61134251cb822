"""The one exception the client raises: the API's error code, message and HTTP status."""

from __future__ import annotations

from typing import Any


class ImpastoError(Exception):
    """An error answer of the API (status set), or a request that got no answer (status None).

    `code` is the API's error code (`not_found`, `invalid_params`, ...); the client's own codes
    are `connection_error` (no answer), `foreign_origin` (a URL outside the configured API,
    refused so the key never leaves it), `unexpected_redirect` and `bad_response`.
    """

    def __init__(
        self, code: str, message: str, status: int | None = None, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if status is not None else f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or []
