"""Size classes: which queue a job of N output pixels goes to, and which queues a worker takes."""

from __future__ import annotations

import pytest

from shared.settings import get_settings
from shared.size_classes import GB, max_job_pixels, pixels_for_memory, queue_for, queues_for_capacity
from shared.task_names import LARGE_QUEUE, SMALL_QUEUE, TRANSFER_QUEUE

SETTINGS = get_settings(small_job_max_pixels=1_000_000, max_output_pixels=4_000_000)


@pytest.mark.parametrize(
    ("pixels", "queue"),
    [
        (1, SMALL_QUEUE),
        (512 * 512, SMALL_QUEUE),
        (1_000_000, SMALL_QUEUE),  # the threshold itself is still small
        (1_000_001, LARGE_QUEUE),
        (4_000_000, LARGE_QUEUE),
        (4_000_001, None),  # larger than any class: the API answers 422
    ],
)
def test_queue_for(pixels: int, queue: str | None) -> None:
    """A job goes to the smallest class that holds it, or nowhere."""
    assert queue_for(pixels, SETTINGS) == queue


def test_defaults_route_the_largest_allowed_job() -> None:
    """With default settings the small class keeps the original queue name and 2048² is large."""
    settings = get_settings()
    assert SMALL_QUEUE == TRANSFER_QUEUE == "transfer"
    assert queue_for(512 * 512, settings) == "transfer"
    assert queue_for(2048 * 2048, settings) == "transfer.large"
    assert max_job_pixels(settings) == settings.max_output_pixels


def test_small_threshold_never_exceeds_the_output_limit() -> None:
    """A small threshold above max_output_pixels is capped: nothing above the limit is routed."""
    settings = get_settings(small_job_max_pixels=10_000_000, max_output_pixels=4_000_000)
    assert queue_for(4_000_001, settings) is None


@pytest.mark.parametrize(
    ("memory_gb", "pixels"),
    [(1, 0), (1.5, 0), (11.5, 1_000_000), (81.5, 8_000_000)],
)
def test_pixels_for_memory(memory_gb: float, pixels: int) -> None:
    """The documented rule: PIXELS_PER_GB for each GB after RESERVED_GB."""
    assert pixels_for_memory(int(memory_gb * GB)) == pixels


@pytest.mark.parametrize(
    ("capacity", "queues"),
    [
        (None, [SMALL_QUEUE, LARGE_QUEUE]),  # no limit (a CPU worker): every class
        (4_000_000, [SMALL_QUEUE, LARGE_QUEUE]),
        (3_999_999, [SMALL_QUEUE]),
        (1_000_000, [SMALL_QUEUE]),
        (10, [SMALL_QUEUE]),  # too small for anything: still takes small jobs, with a warning
    ],
)
def test_queues_for_capacity(capacity: int | None, queues: list[str]) -> None:
    """A worker consumes every class whose largest job it can hold."""
    assert queues_for_capacity(capacity, SETTINGS) == queues
