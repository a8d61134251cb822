"""Whole runs of stylize(): convergence, seeds, colour, callbacks, resume, memory, scales, snapshots, α/β."""

from __future__ import annotations

import math
import os

import pytest
import torch
from PIL import Image, ImageChops, ImageStat

from impasto.worker.engine import EngineError, Result, Resume, StyleParams, imaging, stylize
from impasto.worker.engine.objective import Objective

SIZE = 32  # long side of most runs; the generated content is 4:3, so outputs are 32x24


def _run(images, callbacks=None, **overrides):
    """stylize() the generated content in the generated swirl style, small and short by default."""
    params = StyleParams(**({"iterations": 5, "size": SIZE} | overrides))
    return stylize(images["content"], [images["style"]], params, callbacks)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_objective_falls_over_twenty_iterations(images, recorder, optimizer) -> None:
    """Over 20 iterations the total loss reported to on_progress falls clearly, for either optimiser."""
    callbacks = recorder()
    result = _run(images, callbacks, iterations=20, optimizer=optimizer)
    assert callbacks.iterations == list(range(1, 21))
    totals = callbacks.totals
    assert all(math.isfinite(t) for t in totals)
    assert totals[-1] < 0.75 * totals[0]
    assert result.iterations == 20
    assert result.losses is not None and result.losses == callbacks.progress[-1][1]
    assert result.losses.total == pytest.approx(result.losses.content + result.losses.style + result.losses.tv)
    assert result.evaluations >= 20
    assert not result.stopped


def test_first_lbfgs_iteration_needs_few_evaluations(images) -> None:
    """L-BFGS's first iteration is accepted in at most 3 evaluations (torch's own first step needs about 7)."""
    first = _run(images, iterations=1, size=48)
    assert first.evaluations <= 3
    torch_first_step = _run(images, iterations=1, size=48, lbfgs_first_step=None)
    assert torch_first_step.evaluations > first.evaluations


def test_the_first_step_shrinks_as_one_over_the_root_of_the_pixels_above_a_megapixel() -> None:
    """0.3 up to 1024² pixels; half of it at four times that (0.3 overshot at 2048 px: evaluation.py)."""
    from impasto.worker.engine.evaluation import first_step_rms

    assert first_step_rms(0.3, 1024 * 681) == first_step_rms(0.3, 1024 * 1024) == 0.3
    assert first_step_rms(0.3, 2048 * 2048) == pytest.approx(0.15)
    assert first_step_rms(0.3, 4096 * 2724) == pytest.approx(0.3 * (1024 * 1024 / (4096 * 2724)) ** 0.5)


def test_first_step_at_every_stage_keeps_evaluations_low(images, recorder) -> None:
    """With two scales each stage starts with the sized first step: few evaluations, and the objective still falls."""
    callbacks = recorder()
    result = _run(images, callbacks, iterations=8, size=48, scales=(0.5, 1.0))
    assert callbacks.iterations == list(range(1, 9))
    assert result.evaluations <= 12  # 10 here; torch's first step took 15
    assert callbacks.totals[-1] < callbacks.totals[4]


def test_same_seed_gives_identical_image_and_other_seed_differs(images) -> None:
    """Two noise-initialised runs with the same seed are bit-identical; another seed is not."""
    first = _run(images, iterations=3, init="noise", seed=7)
    again = _run(images, iterations=3, init="noise", seed=7)
    other = _run(images, iterations=3, init="noise", seed=8)
    assert first.image.tobytes() == again.image.tobytes()
    assert first.losses == again.losses
    assert first.image.tobytes() != other.image.tobytes()


def _ycbcr_mean_difference(output: Image.Image, content: Image.Image) -> list[float]:
    """Mean absolute Y, Cb, Cr difference between output and the content resized to output size."""
    reference = content.resize(output.size, Image.Resampling.LANCZOS).convert("YCbCr")
    return ImageStat.Stat(ImageChops.difference(output.convert("YCbCr"), reference)).mean


def test_preserve_color_keeps_the_contents_chroma(images) -> None:
    """With preserve_color the output's Cb/Cr stay within 3 levels of the content's; without, they do not."""
    with Image.open(images["content"]) as opened:
        content = opened.convert("RGB")
    kept = _ycbcr_mean_difference(_run(images, iterations=8, preserve_color=True).image, content)
    free = _ycbcr_mean_difference(_run(images, iterations=8, preserve_color=False).image, content)
    assert kept[1] < 3 and kept[2] < 3, kept
    assert kept[0] > 5, "the luminance should still have been stylised"
    assert max(free[1], free[2]) > 10, free


@pytest.mark.parametrize("stop_after", [1, 3])
def test_should_stop_ends_the_run_within_one_iteration(images, recorder, stop_after) -> None:
    """should_stop() turning True after iteration k is reported ends the run with k done and stopped set."""
    callbacks = recorder(stop_after=stop_after)
    result = _run(images, callbacks, iterations=10)
    assert result.stopped
    assert result.iterations == stop_after
    assert callbacks.iterations == list(range(1, stop_after + 1))
    assert callbacks.stop_checks == stop_after + 1
    assert result.losses == callbacks.progress[-1][1]
    assert result.image.size == (32, 24)


def test_should_stop_before_the_first_iteration_returns_the_start(images, recorder) -> None:
    """Stopping before any iteration returns the initial image, 0 iterations, no losses."""

    class StopAtOnce(recorder):
        def should_stop(self) -> bool:
            return True

    callbacks = StopAtOnce()
    result = _run(images, callbacks, iterations=10)
    assert result.stopped
    assert result.iterations == 0
    assert result.losses is None
    assert callbacks.progress == []
    assert result.image.size == (32, 24)


def test_resume_continues_the_iteration_count(images, recorder) -> None:
    """Resuming from the iteration-5 snapshot runs 6..10 only and ends near an uninterrupted run's loss."""
    full_callbacks = recorder()
    full = _run(images, full_callbacks, iterations=10, snapshot_every=5)
    snapshots = dict(full_callbacks.snapshots)
    assert sorted(snapshots) == [5, 10]

    resumed_callbacks = recorder()
    resumed = stylize(
        images["content"],
        [images["style"]],
        StyleParams(iterations=10, size=SIZE, snapshot_every=5),
        resumed_callbacks,
        resume=Resume(snapshots[5], 5),
    )
    assert resumed_callbacks.iterations == [6, 7, 8, 9, 10]
    assert [i for i, _ in resumed_callbacks.snapshots] == [10]
    assert resumed.iterations == 10
    assert not resumed.stopped
    assert resumed.image.size == full.image.size
    # It starts from the snapshot, not from scratch: its first total is below the full run's at 5's start.
    assert resumed_callbacks.totals[0] < full_callbacks.totals[0]
    assert resumed.losses is not None and full.losses is not None
    assert resumed.losses.total <= 1.5 * full.losses.total


def _rss_bytes() -> int:
    """This process's resident set size, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_memory_does_not_grow_across_iterations(images, recorder) -> None:
    """RSS at iteration 60 is within 30 MB of RSS at iteration 20 (L-BFGS history 5)."""
    rss: dict[int, int] = {}

    class Measure(recorder):
        def on_progress(self, iteration, losses) -> None:
            super().on_progress(iteration, losses)
            if iteration in (20, 60):
                rss[iteration] = _rss_bytes()

    result = _run(images, Measure(), iterations=60, size=40, lbfgs_history=5)
    assert result.iterations == 60
    growth_mb = (rss[60] - rss[20]) / 2**20
    assert growth_mb < 30, f"RSS grew {growth_mb:.1f} MB from iteration 20 to 60"


def test_multi_scale_runs_all_iterations_and_ends_at_full_size(images, recorder) -> None:
    """scales=(0.5, 1.0) reports iterations 1..N without gaps, snapshots grow, output is full size."""
    callbacks = recorder()
    result = _run(images, callbacks, iterations=6, size=64, scales=(0.5, 1.0), snapshot_every=3)
    assert callbacks.iterations == [1, 2, 3, 4, 5, 6]
    assert result.iterations == 6
    assert result.image.size == (64, 48)
    assert [(i, image.size) for i, image in callbacks.snapshots] == [(3, (32, 24)), (6, (64, 48))]


def test_snapshots_arrive_at_multiples_of_snapshot_every(images, recorder) -> None:
    """snapshot_every=3 over 7 iterations gives RGB PIL snapshots at 3 and 6, at the output size."""
    callbacks = recorder()
    result = _run(images, callbacks, iterations=7, snapshot_every=3)
    assert [i for i, _ in callbacks.snapshots] == [3, 6]
    for _, image in callbacks.snapshots:
        assert isinstance(image, Image.Image)
        assert image.mode == "RGB"
        assert image.size == result.image.size
    assert callbacks.snapshots[0][1].tobytes() != callbacks.snapshots[1][1].tobytes()


def test_snapshot_at_the_last_iteration_is_the_result(images, recorder) -> None:
    """A snapshot taken at the final iteration is pixel-identical to the returned image."""
    callbacks = recorder()
    result = _run(images, callbacks, iterations=4, snapshot_every=2)
    assert [i for i, _ in callbacks.snapshots] == [2, 4]
    assert callbacks.snapshots[-1][1].tobytes() == result.image.tobytes()


def test_no_snapshots_by_default(images, recorder) -> None:
    """snapshot_every=0 (the default) never calls on_snapshot."""
    callbacks = recorder()
    _run(images, callbacks, iterations=3)
    assert callbacks.snapshots == []
    assert callbacks.iterations == [1, 2, 3]


def test_init_image_starts_from_that_image(images, recorder) -> None:
    """init='image' starts from the given image: its first content loss is far above init='content''s."""
    from_content = recorder()
    _run(images, from_content, iterations=1)
    from_image = recorder()
    stylize(
        images["content"],
        [images["style"]],
        StyleParams(iterations=1, size=SIZE, init="image"),
        from_image,
        init_image=images["style2"],
    )
    assert from_image.progress[0][1].content > 3 * from_content.progress[0][1].content


@pytest.mark.parametrize(
    ("overrides", "expected_size"),
    [
        ({"size": 16}, (16, 12)),
        ({"size": 32, "scales": (0.5, 1.0)}, (32, 24)),
        ({"size": 16, "scales": (0.05, 1.0)}, (16, 12)),
        ({"size": 64, "style_scale": 0.1}, (64, 48)),
    ],
    ids=["min-size-4:3", "half-scale-of-32", "8px-stage", "style-scale-0.1"],
)
def test_stages_under_16_px_run_to_the_end(images, overrides, expected_size) -> None:
    """Valid params whose images go under 16 px on a side (8 px at least) run every iteration.

    Pooling rounds up (ceil_mode), so even an 8 px side leaves conv5_1 a 1x1 map.
    """
    result = _run(images, iterations=2, **overrides)
    assert result.image.size == expected_size
    assert result.iterations == 2 and not result.stopped
    assert result.losses is not None and math.isfinite(result.losses.total)


def _unit_losses(vgg, result: Result, images) -> tuple[float, float]:
    """(content, style) of a result at unit weights, against targets made as stylize() makes them."""
    width, height = result.image.size
    content = imaging.to_tensor(imaging.open_image(images["content"]), (width, height))
    style_image = imaging.open_image(images["style"])
    style = imaging.to_tensor(style_image, imaging.fit_long_side(*style_image.size, max(width, height)))
    objective = Objective(vgg, StyleParams(content_weight=1.0, style_weight=1.0), content, [style])
    with torch.no_grad():
        _, terms = objective(imaging.to_tensor(result.image))
    return terms[0].item(), terms[1].item()


def test_smaller_content_to_style_ratio_gives_more_style(vgg, images) -> None:
    """α/β = 1/100 ends with less style loss and more content loss than α/β = 1, as in the paper."""
    balanced = _unit_losses(vgg, _run(images, content_weight=1.0, style_weight=1.0), images)
    stylish = _unit_losses(vgg, _run(images, content_weight=1.0, style_weight=100.0), images)
    assert stylish[1] < 0.9 * balanced[1], (stylish, balanced)
    assert stylish[0] > 1.5 * balanced[0], (stylish, balanced)


def test_bf16_convolutions_optimise_like_fp32(images, recorder) -> None:
    """precision=bf16 (autocast; CPU here, CUDA in production) keeps fp32 losses and ends near the fp32 run."""
    fp32 = _run(images, iterations=10)
    callbacks = recorder()
    bf16 = _run(images, callbacks, iterations=10, precision="bf16")
    assert all(math.isfinite(t) for t in callbacks.totals) and callbacks.totals[-1] < 0.75 * callbacks.totals[0]
    assert fp32.losses is not None and bf16.losses is not None
    assert bf16.losses.total == pytest.approx(fp32.losses.total, rel=0.25), "bf16 must not change what is optimised"
    assert bf16.image.size == fp32.image.size and bf16.image.mode == "RGB"


def test_unknown_precision_is_refused(images) -> None:
    """A precision the engine does not know fails fast with EngineError naming it."""
    with pytest.raises(EngineError, match="precision"):
        _run(images, precision="fp8")
