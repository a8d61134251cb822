"""Celery task and queue names: the API enqueues by name and never imports the worker."""

TRANSFER_TASK = "impasto.transfer"
TRANSFER_QUEUE = "transfer"
