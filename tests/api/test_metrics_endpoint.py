"""GET /metrics on the API: public, Prometheus text, queue depth, jobs by status, request latency."""

from __future__ import annotations

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Submit


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
