"""The memory plan (memory.py): when to tile, how long L-BFGS's history is, and a tiled run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from impasto.worker.engine import StyleParams, imaging, stylize
from impasto.worker.engine.memory import (
    DEFAULT_CPU_BUDGET,
    MB,
    MIN_HISTORY,
    PAIR_BYTES_PER_PIXEL,
    device_budget,
    evaluation_bytes,
    held_bytes,
    plan,
)

LAYERS = ("conv4_2",)


def test_a_default_job_fits_untiled_with_its_full_history() -> None:
    """512 px in the default CPU budget: no tiles, the 100 pairs asked for."""
    memory = plan(512, 384, DEFAULT_CPU_BUDGET, None, 100, LAYERS)
    assert (memory.tile, memory.history) == (0, 100)


@pytest.mark.parametrize(("side", "budget"), [(2048, DEFAULT_CPU_BUDGET), (4096, 8192 * MB)])
def test_a_large_image_is_tiled_and_its_history_shrinks_to_fit(side: int, budget: int) -> None:
    """At print sizes the plan tiles, keeps at least MIN_HISTORY pairs, and the estimate fits the budget."""
    memory = plan(side, side, budget, None, 100, LAYERS)
    assert memory.tile > 0 and memory.tile % 16 == 0
    assert MIN_HISTORY <= memory.history < 100
    estimate = held_bytes(side * side, LAYERS) + evaluation_bytes(side, side, memory.tile)
    if memory.history > MIN_HISTORY:  # the floor may overrun a tiny budget; above it the rule fits
        assert estimate + memory.history * side * side * PAIR_BYTES_PER_PIXEL <= budget


def test_more_budget_buys_more_history_and_bigger_tiles() -> None:
    """Doubling the budget never shrinks the tile or the history."""
    small = plan(2048, 2048, 3072 * MB, None, 100, LAYERS)
    large = plan(2048, 2048, 6144 * MB, None, 100, LAYERS)
    assert large.tile >= small.tile and large.history > small.history


def test_an_asked_tile_is_kept_rounded_to_16_and_one_covering_the_image_is_off() -> None:
    """tile=100 becomes 96; tile 0 stays off even where auto would tile; a tile ≥ the image means none."""
    assert plan(1024, 1024, DEFAULT_CPU_BUDGET, 100, 100, LAYERS).tile == 96
    assert plan(4096, 4096, DEFAULT_CPU_BUDGET, 0, 100, LAYERS).tile == 0
    assert plan(4096, 4096, 1, None, 100, LAYERS).tile == 128  # no budget at all: the smallest auto tile
    assert plan(300, 200, DEFAULT_CPU_BUDGET, 512, 100, LAYERS).tile == 0


def test_cpu_budget_is_the_setting_or_the_default() -> None:
    """On the CPU the caller's budget wins; without one the default applies."""
    assert device_budget(torch.device("cpu"), 1234 * MB) == 1234 * MB
    assert device_budget(torch.device("cpu")) == DEFAULT_CPU_BUDGET


def test_tiled_run_matches_untiled_run(images: dict[str, Path]) -> None:
    """An Adam iteration at 240 px in 96-px tiles reaches the untiled run's losses and image."""
    params = StyleParams(iterations=1, size=240, optimizer="adam")  # two evaluations: the step and the result
    untiled = stylize(images["content"], [images["style"]], StyleParams(**{**params.__dict__, "tile": 0}))
    tiled = stylize(images["content"], [images["style"]], StyleParams(**{**params.__dict__, "tile": 96}))
    assert tiled.memory is not None and tiled.memory.tile == 96
    assert untiled.memory is not None and untiled.memory.tile == 0
    assert tiled.losses is not None and untiled.losses is not None
    assert tiled.losses.total == pytest.approx(untiled.losses.total, rel=1e-3)
    a, b = imaging.to_tensor(tiled.image), imaging.to_tensor(untiled.image)
    assert float((a - b).abs().max()) <= 2.0  # 8-bit rounding of values that agree to float32 rounding


def test_small_budget_shortens_the_history_of_a_run(images: dict[str, Path]) -> None:
    """A run given a tiny budget reports the shorter history it ran with."""
    result = stylize(images["content"], [images["style"]], StyleParams(iterations=1, size=64), memory_budget=1)
    assert result.memory is not None and result.memory.history == MIN_HISTORY


@pytest.mark.parametrize("budget_mb", [None, 4096, 8192])
def test_the_cpu_workers_size_rule_is_the_engines_plan(budget_mb: int | None) -> None:
    """shared/size_classes' CPU rule (which may not import the engine) agrees with plan(): at the pixels it
    says a budget holds, the plan keeps the smallest tile and history within the budget; 5 % more do not fit."""
    from impasto.shared.size_classes import DEFAULT_CPU_BUDGET_MB, pixels_for_cpu_budget
    from impasto.worker.engine.memory import MIN_AUTO_TILE

    assert DEFAULT_CPU_BUDGET_MB * MB == DEFAULT_CPU_BUDGET
    budget = (budget_mb or DEFAULT_CPU_BUDGET_MB) * MB

    def fits(pixels: int) -> bool:
        side = int(pixels**0.5)
        memory = plan(side, side, budget, None, 100, LAYERS)
        used = held_bytes(side * side, LAYERS) + evaluation_bytes(side, side, memory.tile)
        return memory.tile >= MIN_AUTO_TILE and used + MIN_HISTORY * side * side * PAIR_BYTES_PER_PIXEL <= budget

    holds = pixels_for_cpu_budget(budget_mb)
    assert fits(holds) and not fits(int(holds * 1.05))
