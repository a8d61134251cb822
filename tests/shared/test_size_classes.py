"""Size classes: what a job counts (output and style pixels), its queue, and which queues a worker takes."""

from __future__ import annotations

import logging

import pytest

from impasto.shared import size_classes
from impasto.shared.job_params import JobParams
from impasto.shared.settings import get_settings
from impasto.shared.size_classes import (
    GB,
    STYLE_PIXELS_PER_OUTPUT_PIXEL,
    cpu_queues,
    job_pixels,
    max_job_pixels,
    pixels_for_cpu_budget,
    pixels_for_memory,
    queue_for,
    queues_for_capacity,
)
from impasto.shared.task_names import LARGE_QUEUE, SMALL_QUEUE, TRANSFER_QUEUE

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
    """Default settings: the small class keeps the original queue name; 2048² and 4096² are large, more is refused."""
    settings = get_settings()
    assert SMALL_QUEUE == TRANSFER_QUEUE == "transfer"
    assert queue_for(512 * 512, settings) == "transfer"
    assert queue_for(2048 * 2048, settings) == "transfer.large"
    assert queue_for(4096 * 4096, settings) == "transfer.large"
    assert queue_for(4096 * 4096 + 1, settings) is None
    assert max_job_pixels(settings) == settings.max_output_pixels


def test_small_threshold_never_exceeds_the_output_limit() -> None:
    """A small threshold above max_output_pixels is capped: nothing above the limit is routed."""
    settings = get_settings(small_job_max_pixels=10_000_000, max_output_pixels=4_000_000)
    assert queue_for(4_000_001, settings) is None


@pytest.mark.parametrize(
    ("memory_gb", "pixels"),
    [(1, 0), (3, 0), (13, 10_000_000), (83, 80_000_000)],
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


@pytest.mark.parametrize(
    ("params", "content", "styles", "output", "style_pixels", "counted"),
    [
        # 4:3 content at 512 px: 512x384; a square style at scale 1: 512x512; the output decides.
        (JobParams(size=512), (640, 480), [(100, 100)], 512 * 384, (512 * 512,), 512 * 384),
        # style_scale 4 on a 2048 px output: an 8192x8192 style, 67 M pixels, counted as 8.4 M.
        (JobParams(size=2048, style_scale=4), (100, 100), [(10, 10)], 2048 * 2048, (8192 * 8192,), 8192 * 8192 // 8),
        # Every style counts, each at its own aspect: 1024x512 and 256x1024 at a 1024 px long side;
        # together they outweigh the output.
        (
            JobParams(size=256, style_scale=4),
            (300, 300),
            [(200, 100), (50, 200)],
            256 * 256,
            (1024 * 512, 256 * 1024),
            (1024 * 512 + 256 * 1024) // 8,  # 98 304: more than the output's 65 536
        ),
        (JobParams(size=512, style_scale=4), (512, 512), [(1, 1)] * 4, 512 * 512, (2048 * 2048,) * 4, 2097152),
    ],
    ids=["output decides", "one huge style", "styles at their aspects", "four styles"],
)
def test_job_pixels_count_the_output_and_every_style(
    params: JobParams,
    content: tuple[int, int],
    styles: list[tuple[int, int]],
    output: int,
    style_pixels: tuple[int, ...],
    counted: int,
) -> None:
    """Output at params.size, each style at style_scale times the output's long side; style pixels count 1/8."""
    pixels = job_pixels(params, content, styles)
    assert (pixels.output, pixels.styles, pixels.counted) == (output, style_pixels, counted)
    assert pixels.counted == max(output, -(-sum(style_pixels) // STYLE_PIXELS_PER_OUTPUT_PIXEL))


def test_a_job_over_the_limit_by_its_styles_gets_no_queue() -> None:
    """4096 px with style_scale 4 fits a class by its output alone, but its styles take it past every class."""
    pixels = job_pixels(JobParams(size=4096, style_scale=4), (100, 100), [(10, 10)])
    settings = get_settings()
    assert queue_for(pixels.output, settings) == LARGE_QUEUE
    assert queue_for(pixels.counted, settings) is None and pixels.styles_dominate


@pytest.mark.parametrize(
    ("budget_mb", "queues"),
    [
        (None, [SMALL_QUEUE, LARGE_QUEUE]),  # the 2048 MB default holds ~6.2 M pixels: more than 4 M
        (1280, [SMALL_QUEUE]),  # ~3.7 M pixels: the large class (to 4 M) is left to others
    ],
)
def test_a_cpu_worker_takes_the_classes_its_engine_budget_holds(
    budget_mb: int | None, queues: list[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CPU worker's classes follow its IMPASTO_ENGINE_MEMORY_BUDGET_MB, and it says what a larger one needs."""
    settings = get_settings(
        small_job_max_pixels=1_000_000, max_output_pixels=4_000_000, engine_memory_budget_mb=budget_mb
    )
    # On the logger itself: an earlier test in the same process may have configured logging so that
    # this module's records no longer reach the root logger (Celery's and the app's set-up do).
    logger = logging.getLogger(size_classes.__name__)
    monkeypatch.setattr(logger, "disabled", False)
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger=logger.name):
            assert cpu_queues(settings) == queues
    finally:
        logger.removeHandler(caplog.handler)
    assert pixels_for_cpu_budget(None) == pixels_for_cpu_budget(2048) > 6_000_000
    if queues == [SMALL_QUEUE]:
        assert "IMPASTO_ENGINE_MEMORY_BUDGET_MB=1379 or more would take it" in caplog.text
