"""The automatic scale pyramid (pyramid.py): its sizes, its split of the iterations, and a run through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from impasto.worker.engine import StyleParams, pyramid, stylize
from impasto.worker.engine.pyramid import pyramid_sides, pyramid_stages


def test_sides_step_by_root_two_from_the_start_up() -> None:
    """1024 px: 256, 362, 512, 724, 1024; a size at or below the start is one stage."""
    assert pyramid_sides(1024) == [256, 362, 512, 724, 1024]
    assert pyramid_sides(256) == [256]
    assert pyramid_sides(200) == []  # below the start there is no pyramid at all
    assert len(pyramid_sides(8192)) == pyramid.MAX_STAGES


def test_full_size_gets_half_the_iterations_and_the_stages_sum_to_all() -> None:
    """500 iterations at 1024 px: 250 at full size, 250 shared by four coarse stages."""
    stages = pyramid_stages(1024, 500)
    assert [round(f * 1024) for f, _ in stages] == [256, 362, 512, 724, 1024]
    assert stages[-1] == (1.0, 250)
    assert sum(n for _, n in stages) == 500 and min(n for _, n in stages) >= 62
    assert pyramid_stages(1024, 5) == [(1.0, 5)]  # too few iterations to share: single scale


def test_params_use_the_pyramid_only_above_the_threshold_with_default_scales() -> None:
    """pyramid_above decides; explicit scales always win; 0 turns it off."""
    assert StyleParams(size=1024, pyramid_above=768).uses_pyramid()
    assert not StyleParams(size=768, pyramid_above=768).uses_pyramid()
    assert not StyleParams(size=1024, pyramid_above=0).uses_pyramid()
    explicit = StyleParams(size=1024, pyramid_above=768, scales=(0.5, 1.0))
    assert not explicit.uses_pyramid() and len(explicit.stage_plan()) == 2
    plan = StyleParams(size=1024, iterations=500, pyramid_above=768).stage_plan()
    assert plan[0][1] == 1 and plan[-1] == (1.0, 251, 500)
    assert all(a[2] + 1 == b[1] for a, b in zip(plan, plan[1:], strict=False))


def test_a_run_goes_through_every_stage(
    images: dict[str, Path], recorder: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 64 px from a 32-px start: three stages (32, 45, 64), every iteration reported, a 64-px result."""
    monkeypatch.setattr(pyramid, "PYRAMID_START", 32)
    calls = recorder()
    result = stylize(images["content"], [images["style"]], StyleParams(iterations=6, size=64, pyramid_above=48), calls)
    assert calls.iterations == [1, 2, 3, 4, 5, 6]
    assert max(result.image.size) == 64 and result.iterations == 6
