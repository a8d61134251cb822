"""Engine callbacks for a queued job: throttled progress to SQL, snapshots to storage, stop checks."""

from __future__ import annotations

import logging
import time

from PIL import Image
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from impasto.shared.job_records import record_progress
from impasto.shared.jobs import add_snapshot
from impasto.shared.models import Job
from impasto.shared.previews import encode_preview, preview_key
from impasto.shared.status import JobStatus
from impasto.shared.storage import snapshot_key
from impasto.shared.webhooks import WebhookTarget
from impasto.worker.context import WorkerContext
from impasto.worker.engine import Callbacks, Losses
from impasto.worker.engine.imaging import png_bytes
from impasto.worker.lease import Lease
from impasto.worker.shutdown import shutdown_requested

log = logging.getLogger(__name__)


class JobCallbacks(Callbacks):
    """Reports one job's run to SQL and storage, and tells the engine when to stop."""

    def __init__(
        self,
        ctx: WorkerContext,
        lease: Lease,
        iterations: int,
        start_iteration: int,
        webhook: WebhookTarget | None = None,
    ) -> None:
        self.ctx = ctx
        self.lease = lease
        self.job_id = lease.job_id
        self.iterations = iterations
        self.start_iteration = start_iteration
        self.webhook = webhook
        self.cancel_requested = False
        self.run_time_exceeded = False
        self.started = time.monotonic()
        # Counted from here (the job was claimed just before): set-up, model load and iterations.
        self.deadline = self.started + ctx.settings.max_run_seconds
        self._last_write = 0.0
        self._last_event = 0.0
        self._published_iteration = -1  # of the last progress event
        self._last_check = 0.0
        self.latest: tuple[int, Losses] | None = None

    def eta_seconds(self, iteration: int) -> float | None:
        """Seconds left at the pace of this run so far."""
        done = iteration - self.start_iteration
        if done <= 0:
            return None
        rate = done / (time.monotonic() - self.started)
        return (self.iterations - iteration) / rate

    def on_progress(self, iteration: int, losses: Losses) -> None:
        """Keep the latest progress; write it to SQL and publish it, each throttled."""
        self.latest = (iteration, losses)
        now = time.monotonic()
        if now - self._last_event >= self.ctx.settings.event_interval_s or iteration == self.iterations:
            self.publish_progress()
        if now - self._last_write >= self.ctx.settings.progress_interval_s:
            self.write_progress()

    def publish_progress(self) -> None:
        """Publish the latest progress as a live event, unless that iteration's event went out already."""
        if self.latest is None or self.latest[0] <= self._published_iteration:
            return
        iteration, losses = self.latest
        self._last_event = time.monotonic()
        self._published_iteration = iteration
        self.ctx.events.publish(self.job_id, "progress", self.progress_event(iteration, losses))

    def progress_event(self, iteration: int, losses: Losses) -> dict[str, object]:
        """The payload of a progress event."""
        return {
            "iteration": iteration,
            "iterations": self.iterations,
            "percent": round(100.0 * iteration / self.iterations, 2),
            "loss": losses.as_dict(),
            "eta_seconds": self.eta_seconds(iteration),
        }

    def write_progress(self) -> None:
        """Write the latest progress (a database error is logged; the next write catches up)."""
        if self.latest is None:
            return
        iteration, losses = self.latest
        try:
            with self.ctx.sessions() as session:
                still_owner = record_progress(
                    session, self.job_id, self.lease.owner, iteration, losses.as_dict(), self.eta_seconds(iteration)
                )
            if not still_owner:
                self.lease.lost.set()
            self._last_write = time.monotonic()
        except SQLAlchemyError as exc:
            log.warning("job %s: progress write failed (%s); will retry", self.job_id, exc)

    def on_snapshot(self, iteration: int, image: Image.Image) -> None:
        """Write and publish progress, then store the snapshot (it is also the checkpoint) and list it on the job.

        Progress first: whoever sees the snapshot (listed on the job, its event, its webhook, which
        reads the job when it is delivered) never finds progress.iteration behind the snapshot's own.
        The engine reports progress for an iteration before its snapshot, so `latest` is that iteration.
        """
        if not self.hold_lease():
            log.warning("job %s: snapshot %d not written (lease lost or database unreachable)", self.job_id, iteration)
            return
        self.write_progress()
        self.publish_progress()
        key = snapshot_key(self.job_id, iteration)
        self.ctx.storage.put(key, png_bytes(image))
        # Before the snapshot is listed: the page asks for its preview at once, and finds it made.
        self.ctx.storage.put(preview_key(key), encode_preview(image))
        try:
            with self.ctx.sessions() as session:
                add_snapshot(session, self.job_id, iteration, key)
        except SQLAlchemyError as exc:
            log.warning("job %s: snapshot %d not recorded (%s)", self.job_id, iteration, exc)
        self.ctx.watchers.snapshot_taken(self.job_id, self.webhook, iteration)  # the webhook: an enqueue, never a POST

    def hold_lease(self) -> bool:
        """Renew the lease before writing into the job's storage prefix; False if it is not ours.

        A worker that stalled past its lease (a long GC pause, a frozen VM) may find on waking
        that another worker runs the job now; renewing first, instead of writing and finding out
        at the next SQL write, keeps it from overwriting the new owner's files: once renewed,
        nobody can take the job over for lease_seconds, far longer than one PNG write. Without
        the database the snapshot could not be listed either, so it is skipped too.
        """
        try:
            return self.lease.renew()
        except SQLAlchemyError:
            return False

    def should_stop(self) -> bool:
        """Stop on a lost lease, a shutdown or the run-time limit at once; look for a cancel every cancel_poll_s."""
        if self.lease.lost.is_set() or shutdown_requested.is_set():
            return True
        now = time.monotonic()
        if now > self.deadline:
            self.run_time_exceeded = True
            return True
        if now - self._last_check >= self.ctx.settings.cancel_poll_s:
            self._last_check = now
            try:
                with self.ctx.sessions() as session:
                    row = session.execute(
                        select(Job.cancel_requested, Job.lease_owner, Job.status).where(Job.id == self.job_id)
                    ).one_or_none()
            except SQLAlchemyError:
                return False
            if row is None or row.lease_owner != self.lease.owner or row.status != JobStatus.RUNNING.value:
                self.lease.lost.set()
                return True
            self.cancel_requested = bool(row.cancel_requested)
        return self.cancel_requested

    def should_interrupt(self) -> bool:
        """The same reasons end set-up and a long iteration: a cancel must not wait for the model or the targets."""
        return self.should_stop()
