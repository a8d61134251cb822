"""Per-key request rate limit (flask-limiter): one budget per API key across every endpoint; the
same store counts failed authentications per address (impasto.api.failed_auth)."""

from __future__ import annotations

import math
import time

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded

from impasto.api.auth import authenticated, current_key_id
from impasto.api.errors import error_response
from impasto.api.failed_auth import EXTENSION_KEY as FAILED_AUTH_EXTENSION
from impasto.api.failed_auth import FailedAuthLimit
from impasto.shared.settings import Settings

# flask-limiter's key prefix, so its counters are easy to tell apart in a shared Redis.
KEY_PREFIX = "impasto-rate"
# A rate-limit store that does not answer must not stall requests: fail over quickly.
STORAGE_TIMEOUT_S = 1


def rate_limit_key() -> str:
    """Whose budget a request spends: its API key (the limit is only applied once authenticated)."""
    return current_key_id() if authenticated() else f"addr:{request.remote_addr}"


def install_rate_limit(app: Flask, settings: Settings) -> Limiter:
    """Attach the limiter; call after authentication's before_request, so the key is known."""
    storage_url = settings.resolved_rate_limit_storage_url()
    options: dict[str, str | int] = {}
    if storage_url.startswith(("redis://", "rediss://")):
        options = {"socket_connect_timeout": STORAGE_TIMEOUT_S, "socket_timeout": STORAGE_TIMEOUT_S}
    limiter = Limiter(
        rate_limit_key,
        # An application limit is shared by all routes: one budget per key, not one per endpoint.
        application_limits=[settings.rate_limit],
        # Public views (health, docs) and requests refused before authentication spend nothing.
        application_limits_exempt_when=lambda: not authenticated(),
        storage_uri=storage_url,
        storage_options=options,
        strategy="moving-window",  # no burst of twice the limit across a window boundary
        # Its headers would put Retry-After on every answer; the 429 handler below sets it alone.
        headers_enabled=False,
        key_prefix=KEY_PREFIX,
        # If Redis is down the API keeps serving (jobs still go to SQL): counters fall back to
        # this process's memory until the store answers again, and errors never become 500s.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    limiter.init_app(app)
    app.extensions[FAILED_AUTH_EXTENSION] = FailedAuthLimit(limiter, settings.failed_auth_limit, KEY_PREFIX)

    def rate_limited(exc: RateLimitExceeded) -> Response:
        """The JSON 429, with Retry-After: seconds until the key's window has room again."""
        limit = limiter.current_limit
        retry_after = max(1, math.ceil(limit.reset_at - time.time())) if limit is not None else 1
        response = error_response(
            429, "rate_limited", f"rate limit of {exc.description} per API key reached; retry in {retry_after} s"
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    app.register_error_handler(RateLimitExceeded, rate_limited)
    return limiter
