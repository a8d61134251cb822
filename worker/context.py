"""What a worker process holds for its jobs: settings, SQL sessions, storage, device; built once."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from impasto.shared.database import make_engine, make_sessionmaker
from impasto.shared.events import EventPublisher, make_publisher
from impasto.shared.job_endings import JobWatchers
from impasto.shared.settings import Settings, get_settings
from impasto.shared.storage import Storage, make_storage
from impasto.worker.engine import GramCache


@dataclass(frozen=True)
class WorkerContext:
    """Per-process resources of a worker."""

    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    device: str
    gram_cache: GramCache  # style Gram targets shared by this process's jobs
    events: EventPublisher  # live status/progress/snapshot events for streams
    celery: Celery  # the app this process sends webhook deliveries with: the worker's own

    @property
    def watchers(self) -> JobWatchers:
        """Who hears of this process's runs: event streams and webhooks."""
        return JobWatchers(self.events, self.celery)


def resolve_device(setting: str) -> str:
    """'auto' means the first CUDA device when there is one, else the CPU."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def build_context(settings: Settings, celery: Celery) -> WorkerContext:
    """A context for these settings, sending through `celery`."""
    return WorkerContext(
        settings=settings,
        sessions=make_sessionmaker(make_engine(settings)),
        storage=make_storage(settings.resolved_storage_url(), settings.s3_endpoint_url),
        device=resolve_device(settings.device),
        gram_cache=GramCache(settings.gram_cache_entries),
        events=make_publisher(settings),
        celery=celery,
    )


@functools.cache
def worker_context(celery: Celery) -> WorkerContext:
    """This process's context, from the environment, built on first use (after any fork), sending through `celery`."""
    return build_context(get_settings(), celery)
