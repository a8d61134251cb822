"""The Celery app factory, with the settings a long GPU job needs."""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from impasto.shared.settings import Settings
from impasto.shared.task_names import TRANSFER_QUEUE, TRANSFER_QUEUES, TRANSFER_TASK, WEBHOOK_QUEUE, WEBHOOK_TASK


def queue_arguments(settings: Settings, name: str) -> dict[str, object] | None:
    """RabbitMQ declaration arguments of a queue; None on other brokers (they take none)."""
    if not settings.uses_amqp_broker():
        return None
    # RabbitMQ closes the channel of a consumer that holds an unacked message longer than its
    # consumer_timeout (30 min by default), and late acks hold one for a whole job: as long as the
    # Redis visibility timeout, on servers that take it per queue (3.12+; older ones ignore it).
    arguments: dict[str, object] = {"x-consumer-timeout": settings.visibility_timeout_s * 1000}
    # Quorum queues are replicated and survive a node's loss; they take no priorities (none are
    # used) and only per-consumer prefetch (Celery detects them). Webhook retries are countdowns,
    # which on quorum queues need topic exchanges; that queue stays classic (durable all the same).
    if settings.amqp_queue_type == "quorum" and name != WEBHOOK_QUEUE:
        arguments["x-queue-type"] = "quorum"
    return arguments


def make_celery(settings: Settings) -> Celery:
    """A Celery app for the configured broker; results live in SQL, not in Celery."""
    app = Celery("impasto", broker=settings.resolved_broker_url(), set_as_current=False)
    transport_options: dict[str, object] = {
        # Redis redelivers an unacked message after this many seconds. Long jobs must not be
        # redelivered while they run (celery #3430), and a dead worker's job is recovered by
        # its lease expiring in SQL, so this is set far beyond any job's length.
        "visibility_timeout": settings.visibility_timeout_s,
    }
    if settings.uses_embedded_broker():
        folder = settings.broker_folder()
        folder.mkdir(parents=True, exist_ok=True)
        # polling_interval: the folder is polled; 0.2 s keeps a new job's start latency low.
        transport_options.update(
            data_folder_in=str(folder),
            data_folder_out=str(folder),
            control_folder=str(folder / "control"),  # kombu's default is ./control in the cwd
            polling_interval=0.2,
        )
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        # Acknowledge after the task returns, so a worker killed mid-job leaves the message
        # for redelivery instead of losing it.
        task_acks_late=True,
        # ...and when the worker process itself dies (OOM, kill -9), requeue rather than ack.
        task_reject_on_worker_lost=True,
        # One job at a time per process: a prefetched job would wait behind a long one while
        # another GPU sits idle.
        worker_prefetch_multiplier=1,
        # CUDA and forked pools do not mix (celery #3402): one process per GPU, and in it a thread
        # pool of one. Not the solo pool: it runs the job on the consumer's own thread, which then
        # sends no heartbeat, task event or control reply until the job ends (a busy worker looked
        # dead to Flower and `celery inspect`). With threads the consumer stays free for those.
        worker_pool="threads",
        worker_concurrency=1,
        # Job state lives in SQL; Celery's result backend would be a second, weaker truth.
        task_ignore_result=True,
        # One queue per size class, each bound by its own name: the API names the queue when it
        # sends (impasto.shared.size_classes.queue_for), and the Redis list key is that name (KEDA's listName).
        # GPU workers name their queues (--queues), so listing the webhook queue here does not make
        # them consume it; only `impasto webhook-worker` does.
        task_queues=[
            Queue(
                name, Exchange(name, type="direct"), routing_key=name, queue_arguments=queue_arguments(settings, name)
            )
            for name in (*TRANSFER_QUEUES, WEBHOOK_QUEUE)
        ],
        task_routes={TRANSFER_TASK: {"queue": TRANSFER_QUEUE}, WEBHOOK_TASK: {"queue": WEBHOOK_QUEUE}},
        task_default_queue=TRANSFER_QUEUE,
        # Task events (received, started, succeeded...) for Flower, and a task-sent event from
        # the API, so Flower sees queued jobs too. On Redis they are pub/sub messages: nothing
        # piles up when no monitor listens (and the filesystem broker drops unbound ones).
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app
