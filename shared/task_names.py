"""Celery task and queue names: the API enqueues by name and never imports the worker."""

TRANSFER_TASK = "impasto.transfer"

# One queue per size class (shared/size_classes.py routes a job by its output pixels). The small
# class keeps the original name, so messages already in a broker, jobs whose row says "transfer"
# (the reconciler re-sends to the row's queue) and older workers all still meet.
SMALL_QUEUE = "transfer"
LARGE_QUEUE = "transfer.large"
# Every transfer queue, smallest class first: what a worker that can hold any job consumes.
TRANSFER_QUEUES: tuple[str, ...] = (SMALL_QUEUE, LARGE_QUEUE)
# The default queue (the small class): where a message without a class goes.
TRANSFER_QUEUE = SMALL_QUEUE

# Webhook deliveries: their own queue, consumed by `impasto webhook-worker` (threads), never by a GPU worker.
WEBHOOK_TASK = "impasto.deliver_webhook"
WEBHOOK_QUEUE = "webhooks"
