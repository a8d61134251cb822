"""GET /metrics: Prometheus text for the autoscaler and dashboards.

Queue depth per queue and jobs by status are read at scrape time (shared.metrics); request
latency is a histogram observed on every request. gunicorn runs several processes, so when
PROMETHEUS_MULTIPROC_DIR is set (`impasto api` sets it) the histogram is kept in
prometheus-client's multiprocess files and a scrape of any process sums them all.
"""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from api.auth import public
from api.context import current_impasto
from api.openapi import documented
from shared.metrics import render_api_metrics

bp = Blueprint("metrics", __name__)

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
@documented(responses={200: "text/plain"})
def metrics() -> Response:
    """Prometheus text: queue depth, jobs by status, broker/database up, request latency."""
    impasto = current_impasto()
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
    body, content_type = render_api_metrics(impasto.settings, impasto.sessions, registry)
    return Response(body, content_type=content_type)


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
            REQUEST_SECONDS.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response
