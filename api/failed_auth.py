"""Failed authentications per client address, counted in the rate limiter's store.

Each presented key costs a SQL lookup, and keys are guessed only by sending them: an address
that sends too many refused keys gets 429 for every keyed request until its window has room,
without a lookup. Successful authentications are not counted, so a client whose key works is
never slowed by its own traffic; a client sharing an address with a guesser (one NAT) waits
with it, which the generous default makes rare, unless its key was verified by this process
moments ago (impasto.api.auth skips this check for a key in its valid-key cache: no guess, and one
Redis round trip fewer on every poll). The address is request.remote_addr: the real
client's when a trusted proxy's X-Forwarded-For is applied (ProxyFix), else the peer's.
"""

from __future__ import annotations

import logging
import math
import time

from flask import current_app, request
from flask_limiter import Limiter
from limits import parse

log = logging.getLogger(__name__)

EXTENSION_KEY = "impasto-failed-auth"
SCOPE = "failed-auth"  # keeps these counters apart from the per-key request budgets


class FailedAuthLimit:
    """A moving-window count of refused keys per address, in the limiter's (fallback-aware) store."""

    def __init__(self, limiter: Limiter, limit: str, key_prefix: str) -> None:
        self.limiter = limiter
        self.item = parse(limit)
        self.description = limit
        # The limiter's own prefix: its counters and these are found (and told apart) the same way.
        self.scope = (key_prefix, SCOPE)

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may present keys again; None when it may now."""
        try:
            strategy = self.limiter.limiter
            if strategy.test(self.item, *self.scope, address):
                return None
            stats = strategy.get_window_stats(self.item, *self.scope, address)
        except Exception as exc:  # a store that does not answer must not stop authentication
            log.warning("failed-auth limit unreadable, not applied: %s", exc)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))

    def record_failure(self, address: str) -> None:
        """Count one refused key from `address`."""
        try:
            self.limiter.limiter.hit(self.item, *self.scope, address)
        except Exception as exc:  # as above: counting is best effort when the store is down
            log.warning("failed-auth limit not counted: %s", exc)


def client_address() -> str:
    """Whose failures a request counts as."""
    return request.remote_addr or "unknown"


def failed_auth_limit() -> FailedAuthLimit | None:
    """The app's limit, once impasto.api.rate_limit installed it."""
    limit: FailedAuthLimit | None = current_app.extensions.get(EXTENSION_KEY)
    return limit
