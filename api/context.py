"""What the API builds once per app (SQL, storage, Celery) and what it opens per request."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from celery import Celery
from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from impasto.api.held_requests import HeldRequests
from impasto.shared.events import EventPublisher
from impasto.shared.settings import Settings
from impasto.shared.storage import Storage

EXTENSION_KEY = "impasto"

T = TypeVar("T")


@dataclass(frozen=True)
class Impasto:
    """The long-lived parts of one API app, kept on app.extensions["impasto"]."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    # Status polls and job lists: autocommit and unpinged, one round trip a read (impasto.api.context.read_session).
    read_engine: Engine
    storage: Storage
    celery: Celery
    events: EventPublisher  # job streams, for what the API itself ends (a cancel while queued)
    # One per open GET /v1/jobs/{id}/events or POST held by `Prefer: wait`: each holds a gunicorn
    # thread for minutes, so their number is bounded below the process's threads (leaving some for
    # other requests), and each key's share below that (impasto.api.held_requests).
    held_requests: HeldRequests

    def close(self) -> None:
        """Release pooled SQL and broker connections (tests and shutdown)."""
        self.celery.close()
        self.events.close()
        self.engine.dispose()
        self.read_engine.dispose()


def current_impasto() -> Impasto:
    """The Impasto parts of the app handling this request."""
    impasto: Impasto = current_app.extensions[EXTENSION_KEY]
    return impasto


def db_session() -> Session:
    """This request's SQL session, opened on first use and closed on teardown."""
    if "db_session" not in g:
        g.db_session = current_impasto().sessions()
    session: Session = g.db_session
    return session


def read_session() -> Session:
    """This request's session for reads only, on the read engine (autocommit, no ping on checkout)."""
    if "read_session" not in g:
        g.read_session = Session(current_impasto().read_engine)
    session: Session = g.read_session
    return session


def with_read_session(read: Callable[[Session], T]) -> T:
    """read(read_session()), retried once on a fresh connection if the pooled one was broken.

    The read engine skips the checkout ping (a round trip per request), so a connection that a
    database restart broke is found by the read itself; SQLAlchemy then drops the pool's stale
    connections, and the retry, safe because nothing was written, gets a new one.
    """
    try:
        return read(read_session())
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        g.pop("read_session").close()
        return read(read_session())


def close_db_session(_exc: BaseException | None = None) -> None:
    """Close the request's session; an uncommitted transaction is rolled back."""
    for name in ("db_session", "read_session"):
        session: Session | None = g.pop(name, None)
        if session is not None:
            session.close()


def request_id() -> str:
    """This request's id (uuid4), made on first use; logged with errors, sent as X-Request-ID."""
    if "request_id" not in g:
        g.request_id = str(uuid.uuid4())
    rid: str = g.request_id
    return rid
