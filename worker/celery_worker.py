"""What `celery -A impasto.worker.celery_worker` points at: the app from settings, with the task loaded."""

from impasto.shared.celery_app import make_celery
from impasto.shared.settings import get_settings
from impasto.worker import shutdown, transfer_task  # noqa: F401  (registers the task and the SIGTERM hook)

app = make_celery(get_settings())
