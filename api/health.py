"""Liveness and readiness probes."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable

import redis
from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from impasto.api.auth import public
from impasto.api.context import Impasto, current_impasto
from impasto.api.openapi import documented
from impasto.api.schemas import Liveness, Readiness

logger = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

# A probe must answer before the orchestrator's own timeout, so a dead broker fails fast.
BROKER_TIMEOUT_S = 1.0


@bp.get("/healthz")
@public
@documented(responses={200: Liveness})
def healthz() -> Response:
    """Liveness: the process serves requests."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@public
@documented(responses={200: Readiness, 503: Readiness})
def readyz() -> tuple[Response, int]:
    """Readiness: SQL answers SELECT 1 and the broker is reachable."""
    impasto = current_impasto()
    checks = {"database": probe("database", check_database, impasto), "broker": probe("broker", check_broker, impasto)}
    down = [name for name, state in checks.items() if state != "ok"]
    if not down:
        return jsonify({"status": "ready", "checks": checks}), 200
    error = {"code": "not_ready", "message": f"{' and '.join(down)} unavailable"}
    return jsonify({"status": "unavailable", "checks": checks, "error": error}), 503


def probe(name: str, check: Callable[[Impasto], None], impasto: Impasto) -> str:
    """Run one check: "ok", or "down" with the reason logged (never sent to the client)."""
    try:
        check(impasto)
    except Exception as exc:  # any failure of a dependency means "not ready", whatever its type
        logger.warning("readiness: %s down: %s", name, exc)
        return "down"
    return "ok"


def check_database(impasto: Impasto) -> None:
    """SELECT 1 on a pooled connection."""
    with impasto.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def check_broker(impasto: Impasto) -> None:
    """PING Redis; for the embedded broker, write to its folder; otherwise let kombu connect."""
    settings = impasto.settings
    url = settings.resolved_broker_url()
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(url, socket_connect_timeout=BROKER_TIMEOUT_S, socket_timeout=BROKER_TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()
    elif settings.uses_embedded_broker():
        with tempfile.TemporaryFile(dir=settings.broker_folder()):
            pass
    else:
        with impasto.celery.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
