"""GET /metrics on the API: public (or behind its own token), Prometheus text, queue depth, jobs by status,
request latency with bounded labels."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Submit, keyed_client


def scrape(client: FlaskClient) -> dict[str, float]:
    """The /metrics samples as {'name{label=value,...}': value}."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def depth(samples: dict[str, float]) -> float:
    """Messages waiting over all transfer queues."""
    return sum(value for name, value in samples.items() if name.startswith("impasto_queue_depth{"))


def test_metrics_needs_no_key(anonymous: FlaskClient) -> None:
    """A Prometheus scraper carries no API key; the body reports both backends up."""
    samples = scrape(anonymous)
    assert samples["impasto_broker_up{}"] == 1 and samples["impasto_database_up{}"] == 1


def test_metrics_count_a_submitted_job_and_time_the_request(client: FlaskClient, submit: Submit) -> None:
    """After one submit: one queued job, one message in its queue, and a latency sample for the POST route."""
    before = scrape(client)
    response = submit()
    assert response.status_code == 202, response.get_json()
    after = scrape(client)
    assert after["impasto_jobs{status=queued}"] == before.get("impasto_jobs{status=queued}", 0) + 1
    assert depth(after) == depth(before) + 1
    post = "impasto_http_request_duration_seconds_count{method=POST,route=/v1/jobs,status=202}"
    assert after[post] - before.get(post, 0) == 1
    assert not any("/v1/jobs/" in name and "route=/v1/jobs/<" not in name for name in after), "raw paths leak as labels"


def test_junk_methods_do_not_grow_metrics(anonymous: FlaskClient) -> None:
    """500 made-up methods with no key add one `other` series, not 500: /metrics stays a few KB."""
    anonymous.get("/healthz")
    before = len(anonymous.get("/metrics").data)
    for index in range(500):
        anonymous.open("/v1/jobs", method=f"JUNK{index}")
        anonymous.open(f"/no/such/route/{index}", method=f"X{index}")
    body = anonymous.get("/metrics").get_data(as_text=True)
    assert len(body) - before < 10_000, f"/metrics grew from {before} to {len(body)} bytes"
    assert "JUNK" not in body and 'method="other"' in body
    assert "/no/such/route" not in body, "unknown paths are one route value"


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("Basic " + "s3cret-metrics-token", 401),
        ("Bearer s3cret-metrics-token", 200),
        ("bearer  s3cret-metrics-token ", 200),
    ],
)
def test_metrics_token_is_required_when_set(
    make_app: Callable[..., Flask], authorization: str | None, status: int
) -> None:
    """With IMPASTO_METRICS_TOKEN set, /metrics answers only a request that sends it as its Bearer token."""
    client = make_app(metrics_token="s3cret-metrics-token").test_client()
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.get_json()["error"]["code"] == "unauthorized" and "WWW-Authenticate" in response.headers
        assert "impasto_jobs" not in response.get_data(as_text=True)
    else:
        assert "impasto_jobs" in response.get_data(as_text=True)


def test_an_api_key_is_not_a_metrics_token(make_app: Callable[..., Flask]) -> None:
    """The metrics token is its own secret: a tenant's API key does not read /metrics."""
    app = make_app(metrics_token="s3cret-metrics-token")
    assert keyed_client(app).get("/metrics").status_code == 401
