"""Bearer API keys: every view needs one unless it is marked @public; the caller's key id is
what every job query is scoped to."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from impasto.api.context import close_db_session, current_impasto, db_session
from impasto.api.errors import ApiError
from impasto.api.failed_auth import client_address, failed_auth_limit
from impasto.shared.api_keys import KeyCheck, ValidKeyCache, check_key, hash_key, key_is_active

KEY_CACHE_EXTENSION = "impasto-key-cache"

View = TypeVar("View", bound=Callable[..., Any])

PUBLIC_ATTRIBUTE = "__public__"
# RFC 6750: a 401 says which scheme to use, and, when a key was sent, that it was no good.
CHALLENGE = 'Bearer realm="impasto"'
INVALID_TOKEN_CHALLENGE = 'Bearer realm="impasto", error="invalid_token"'
# Longer than any key this API issues; a longer header is refused without a lookup.
MAX_AUTHORIZATION_LENGTH = 256


def public(view: View) -> View:
    """Mark a view as served without a key (health probes, metrics, the API's own docs)."""
    setattr(view, PUBLIC_ATTRIBUTE, True)
    return view


def is_public(view: Callable[..., Any]) -> bool:
    """True for views marked @public."""
    return bool(getattr(view, PUBLIC_ATTRIBUTE, False))


def unauthorized(message: str, challenge: str = INVALID_TOKEN_CHALLENGE) -> ApiError:
    """The 401 every authentication failure answers, with its WWW-Authenticate challenge."""
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def authenticate() -> None:
    """before_request: check the Bearer key of any request for a non-public view."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    # No view: routing failed, and the 404 or 405 says nothing a key would protect.
    if view is None or is_public(view):
        return
    header = request.headers.get("Authorization")
    if header is not None and (cached_id := cached_key_id(header)) is not None:
        # A key this process verified moments ago is no guess: no failed-auth check, no lookup.
        g.api_key_id = cached_id
        return
    limit = failed_auth_limit() if header is not None else None  # a request without a key guesses nothing
    address = client_address()
    if limit is not None and (retry_after := limit.retry_after(address)) is not None:
        raise ApiError(
            429,
            "too_many_failed_authentications",
            f"too many refused API keys from this address (limit: {limit.description}); retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    try:
        g.api_key_id = key_id_from_header(header)
    except ApiError:
        if limit is not None:
            limit.record_failure(address)
        raise


def cached_key_id(header: str) -> str | None:
    """The key id of a well-formed Bearer header whose key this process found valid within api_key_cache_s."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(header) > MAX_AUTHORIZATION_LENGTH:
        return None
    return key_cache().get(hash_key(token))


def key_id_from_header(header: str | None) -> str:
    """The id of the valid key in an Authorization header; a 401 for anything else."""
    if header is None:
        raise unauthorized("missing Authorization header; send Authorization: Bearer <API key>", CHALLENGE)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 7235)
        raise unauthorized("the Authorization header must use the Bearer scheme", CHALLENGE)
    token = token.strip()
    if not token:
        raise unauthorized("the Authorization header has no API key after Bearer")
    if len(header) > MAX_AUTHORIZATION_LENGTH:
        raise unauthorized("invalid API key")
    cache = key_cache()
    key_hash = hash_key(token)
    if (cached_id := cache.get(key_hash)) is not None:
        return cached_id
    checked_at = time.monotonic()  # before the lookup: a revocation it misses is seen ttl_s later
    result = check_key(db_session(), token, key_hash)
    # The lookup's transaction ends here: its pooled connection is not held through the view.
    close_db_session()
    if result.check == KeyCheck.REVOKED:
        raise unauthorized("this API key has been revoked")
    if result.check != KeyCheck.VALID or result.key_id is None:
        raise unauthorized("invalid API key")
    cache.put(key_hash, result.key_id, checked_at)
    return result.key_id


def key_cache() -> ValidKeyCache:
    """This app's cache of recently valid keys (made on first use; one per process)."""
    cache: ValidKeyCache | None = current_app.extensions.get(KEY_CACHE_EXTENSION)
    if cache is None:
        fresh = ValidKeyCache(current_impasto().settings.api_key_cache_s)
        cache = current_app.extensions.setdefault(KEY_CACHE_EXTENSION, fresh)  # atomic: one cache wins
    return cache


def require_active_key() -> None:
    """401 if this request's key was revoked after it was cached; a query scoped to it found nothing.

    Views whose queries join the key's row (impasto.api.jobs) call this when they come back empty, so they
    refuse a revoked key at once even while this process's cache still holds it.
    """
    key_id = current_key_id()
    if not key_is_active(db_session(), key_id):
        key_cache().forget(key_id)
        raise unauthorized("this API key has been revoked")


def current_key_id() -> str:
    """The id of the key that authenticated this request (views behind authenticate only)."""
    key_id: str = g.api_key_id
    return key_id


def authenticated() -> bool:
    """True once this request carries a valid key."""
    return "api_key_id" in g
