"""The impasto HTTP API: a Flask app factory."""

from __future__ import annotations

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from impasto.api import events, health, job_files, jobs, metrics, openapi, web
from impasto.api.auth import authenticate
from impasto.api.context import EXTENSION_KEY, Impasto, close_db_session, request_id
from impasto.api.errors import register_error_handlers
from impasto.api.held_requests import HeldRequests
from impasto.api.rate_limit import install_rate_limit
from impasto.shared.celery_app import make_celery
from impasto.shared.database import make_engine, make_sessionmaker
from impasto.shared.events import make_publisher
from impasto.shared.settings import Settings, get_settings
from impasto.shared.storage import make_storage


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API; SQL, storage and Celery are made once here. Migrations are not run."""
    settings = settings if settings is not None else get_settings()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the job JSON in its documented order
    engine = make_engine(settings)
    app.extensions[EXTENSION_KEY] = Impasto(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        read_engine=make_engine(settings, reads_only=True),
        storage=make_storage(settings.resolved_storage_url(), settings.s3_endpoint_url),
        celery=make_celery(settings),
        events=make_publisher(settings),
        held_requests=HeldRequests(settings.max_event_streams, settings.max_held_requests_per_key),
    )
    if settings.trusted_proxies:
        # The client is the address the outermost trusted proxy saw: the n-th value from the right
        # of X-Forwarded-For (values further left are whatever the client sent). Scheme and host
        # come from the nearest proxy, which sets them itself rather than appending.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # the middleware pattern Flask documents
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=1, x_host=1
        )
    app.before_request(assign_request_id)
    metrics.install_request_timing(app)
    # Order matters: the key is checked first, then the limiter charges that key's budget.
    app.before_request(authenticate)
    install_rate_limit(app, settings)
    app.after_request(send_request_id)
    app.teardown_appcontext(close_db_session)
    register_error_handlers(app)
    for blueprint in (jobs.bp, job_files.bp, events.bp, health.bp, metrics.bp, openapi.bp, web.bp):
        app.register_blueprint(blueprint)
    return app


def assign_request_id() -> None:
    """Give the request its id before anything can fail and log it."""
    request_id()


def send_request_id(response: Response) -> Response:
    """Every response names its request, so a client can quote it."""
    response.headers["X-Request-ID"] = request_id()
    return response
