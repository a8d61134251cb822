"""GET /metrics: Prometheus text for the autoscaler and dashboards.

Queue depth per queue and jobs by status are read at scrape time (impasto.api.queue_metrics); request
latency is a histogram observed on every request. gunicorn runs several processes, so when
PROMETHEUS_MULTIPROC_DIR is set (`impasto api` sets it) the histogram is kept in
prometheus-client's multiprocess files and a scrape of any process sums them all.
"""

from __future__ import annotations

import hmac
import os
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import SecretStr

from impasto.api.auth import public
from impasto.api.context import current_impasto
from impasto.api.errors import ApiError
from impasto.api.openapi import documented
from impasto.api.queue_metrics import render_api_metrics
from impasto.api.schemas import ErrorBody

bp = Blueprint("metrics", __name__)

# Methods with their own label value; anything else a client sends is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Short reads sit in the low buckets; uploads and `Prefer: wait` in the high ones.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUEST_SECONDS = Histogram(
    "impasto_http_request_duration_seconds",
    "time to the response's first byte, by route template, method and status",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
    registry=None,  # registered per scrape below, so tests and app factories never collide
)


@bp.get("/metrics")
@public
@documented(responses={200: "text/plain", 401: ErrorBody})
def metrics() -> Response:
    """Prometheus text: queue depth, jobs by status, broker/database up, request latency."""
    impasto = current_impasto()
    check_metrics_token(impasto.settings.metrics_token)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
    body, content_type = render_api_metrics(impasto.settings, impasto.sessions, registry)
    return Response(body, content_type=content_type)


def check_metrics_token(token: SecretStr | None) -> None:
    """With IMPASTO_METRICS_TOKEN set, a 401 unless the request sends it as its Bearer token."""
    if token is None:
        return
    scheme, _, presented = request.headers.get("Authorization", "").strip().partition(" ")
    expected = token.get_secret_value().encode()
    # compare_digest: the time taken says nothing about how much of the token matched.
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
        raise ApiError(
            401,
            "unauthorized",
            "/metrics needs Authorization: Bearer <IMPASTO_METRICS_TOKEN>",
            headers={"WWW-Authenticate": 'Bearer realm="impasto-metrics"'},
        )


def install_request_timing(app: Flask) -> None:
    """Observe every request's latency, labelled by its route template (never the raw path)."""

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.get("request_started")
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            # A client may send any method name: one series per name would grow without bound.
            method = request.method if request.method in KNOWN_METHODS else "other"
            REQUEST_SECONDS.labels(method, route, str(response.status_code)).observe(time.perf_counter() - started)
        return response
