"""What `celery -A impasto.cli.celery_control` points at: the app for operators' commands (inspect, status,
flower, purge...), built from the settings on first use. It loads no worker code and no torch, so it
answers in a second and works in the API image; it registers no task, so it cannot run a worker.

The style guide keeps work out of import time; `celery -A` needs a module attribute, so this module
gives `app` through a module `__getattr__` (PEP 562): importing it builds nothing, reading `app` does.
"""

from __future__ import annotations

import functools

from celery import Celery

from impasto.shared.celery_app import make_celery
from impasto.shared.settings import get_settings


@functools.cache
def control_app() -> Celery:
    """The Celery app of this deployment's broker, made once."""
    return make_celery(get_settings())


def __getattr__(name: str) -> Celery:
    """`app` (what `celery -A` looks up) is made on first access."""
    if name == "app":
        return control_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
