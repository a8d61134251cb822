"""The API's metrics: queue depth from Redis LLEN, jobs by status from PostgreSQL, rendered for Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from impasto.api.queue_metrics import folder_queue_depths, render_api_metrics
from impasto.shared.celery_app import make_celery
from impasto.shared.database import make_engine, make_sessionmaker, upgrade_database
from impasto.shared.enqueue import send_transfer
from impasto.shared.jobs import UNWATCHED, create_job, request_cancel
from impasto.shared.models import Job, utcnow
from impasto.shared.settings import Settings, get_settings
from impasto.shared.task_names import LARGE_QUEUE, SMALL_QUEUE, WEBHOOK_QUEUE, WEBHOOK_TASK
from tests.e2e.conftest import free_port


@pytest.fixture
def settings(tmp_path: Path, postgres_url: str, redis_12: str) -> Settings:
    """Settings on a migrated PostgreSQL database and Redis db 12."""
    settings = get_settings(data_dir=tmp_path, database_url=postgres_url, broker_url=redis_12)
    upgrade_database(settings)
    return settings


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test database; the engine is disposed afterwards."""
    engine = make_engine(settings)
    yield make_sessionmaker(engine)
    engine.dispose()


def scrape(settings: Settings, sessions: sessionmaker[Session]) -> dict[str, float]:
    """The rendered metrics as {'name{label=value}': value}."""
    body, content_type = render_api_metrics(settings, sessions)
    assert content_type.startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def add_job(sessions: sessionmaker[Session], queue: str) -> str:
    """Insert a queued job row."""
    with sessions() as session:
        job = create_job(session, params={"iterations": 10}, content_key="c", style_keys=["s"], queue=queue)
        session.commit()
        return job.id


def test_queue_depth_and_jobs_by_status(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Three small and one large message waiting; jobs counted per status, zeros included."""
    celery = make_celery(settings)
    ids = [add_job(sessions, SMALL_QUEUE) for _ in range(3)] + [add_job(sessions, LARGE_QUEUE)]
    for job_id in ids[:3]:
        assert send_transfer(celery, job_id, SMALL_QUEUE)
    assert send_transfer(celery, ids[3], LARGE_QUEUE)
    for event in ("started", "completed"):  # webhook deliveries wait on a queue of their own
        celery.send_task(WEBHOOK_TASK, args=[ids[0], event, None], queue=WEBHOOK_QUEUE)
    celery.close()
    with sessions() as session:
        job = session.get(Job, ids[0])
        assert job is not None
        request_cancel(session, job, UNWATCHED)
        session.execute(update(Job).where(Job.id == ids[1]).values(created_at=utcnow() - timedelta(minutes=5)))
        session.commit()
    values = scrape(settings, sessions)
    assert values["impasto_broker_up"] == 1 and values["impasto_database_up"] == 1
    assert values["impasto_queue_depth{queue=transfer}"] == 3
    assert values["impasto_queue_depth{queue=transfer.large}"] == 1
    assert values["impasto_queue_depth{queue=webhooks}"] == 2
    assert values["impasto_jobs{status=queued}"] == 3 and values["impasto_jobs{status=canceled}"] == 1
    assert values["impasto_jobs{status=running}"] == 0 and values["impasto_jobs{status=succeeded}"] == 0
    assert 290 < values["impasto_oldest_queued_job_seconds"] < 400


def test_an_unreachable_broker_is_reported_not_raised(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Redis down: broker_up 0 and no depth, while SQL's figures still come."""
    down = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    values = scrape(down, sessions)
    assert values["impasto_broker_up"] == 0 and not any(k.startswith("impasto_queue_depth") for k in values)
    assert values["impasto_database_up"] == 1 and values["impasto_jobs{status=queued}"] == 0


def test_an_unreachable_database_is_reported_not_raised(settings: Settings) -> None:
    """SQL down: database_up 0, the queue depths still come."""
    down = settings.model_copy(update={"database_url": f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x"})
    engine = make_engine(down)
    values = scrape(down, make_sessionmaker(engine))
    engine.dispose()
    assert values["impasto_database_up"] == 0 and "impasto_jobs{status=queued}" not in values
    assert values["impasto_broker_up"] == 1 and values["impasto_queue_depth{queue=transfer}"] == 0


def test_embedded_broker_depth_counts_message_files(tmp_path: Path) -> None:
    """The filesystem broker's waiting messages are files named <time>_<uuid>.<queue>.msg."""
    names = ("1_a.transfer.msg", "2_b.transfer.msg", "3_c.transfer.large.msg", "4_d.celery.msg", "5_e.webhooks.msg")
    for name in names:
        (tmp_path / name).write_bytes(b"{}")
    assert folder_queue_depths(tmp_path) == {"transfer": 2, "transfer.large": 1, "webhooks": 1}
    assert folder_queue_depths(tmp_path / "missing") == {"transfer": 0, "transfer.large": 0, "webhooks": 0}
