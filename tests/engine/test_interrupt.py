"""should_interrupt(): a cancel is seen during set-up and inside a long iteration, not only between iterations."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from impasto.worker.engine import GramCache, StyleParams, stylize
from impasto.worker.engine.imaging import open_image
from tests.engine.conftest import Recorder


class InterruptAt(Recorder):
    """Records callbacks; should_interrupt() turns True at its `at`-th call, or once `after` iterations are done."""

    def __init__(self, at: int | None = None, after: int | None = None) -> None:
        super().__init__()
        self.at = at
        self.after = after
        self.interrupt_checks = 0

    def should_interrupt(self) -> bool:
        self.interrupt_checks += 1
        if self.at is not None:
            return self.interrupt_checks >= self.at
        return self.after is not None and bool(self.progress) and self.progress[-1][0] >= self.after


def run(images: dict[str, Path], callbacks: Recorder, cache: GramCache | None = None, **params: object) -> object:
    """stylize() the generated content and swirl style at 32 px."""
    values: dict[str, object] = {"iterations": 5, "size": 32, **params}
    return stylize(images["content"], [images["style"]], StyleParams(**values), callbacks, gram_cache=cache)  # type: ignore[arg-type]


@pytest.mark.parametrize("at", [1, 2, 3, 8, 20], ids=lambda at: f"check {at}")
def test_an_interrupt_in_set_up_ends_the_run_before_any_iteration(images: dict[str, Path], at: int) -> None:
    """Before the network loads, after it, while the content targets or a style's Grams are made: stopped at 0."""
    callbacks = InterruptAt(at=at)
    cache = GramCache()
    result = run(images, callbacks, cache)
    assert result.stopped and result.iterations == 0 and result.losses is None  # type: ignore[attr-defined]
    assert callbacks.progress == [] and callbacks.stop_checks == 0, "no iteration was begun"
    assert callbacks.interrupt_checks == at, "it stopped at the first check that said so"
    assert result.image.tobytes() == open_image(images["content"]).tobytes()  # type: ignore[attr-defined]
    assert cache.misses <= 1 and len(cache._entries) == 0, "a Gram left half-made is not cached"


def test_set_up_is_checked_between_the_networks_layers(images: dict[str, Path]) -> None:
    """One check per conv layer of each target pass (conv4_2 for content: 10; conv5_1 for a style: 13), plus 3."""
    callbacks = InterruptAt()
    run(images, callbacks, iterations=1)
    # 2 in stylize, 1 before the targets, 10 + 13 in the passes, then one before each new evaluation.
    assert callbacks.interrupt_checks >= 3 + 10 + 13 + 1


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_an_interrupt_inside_an_iteration_returns_the_last_completed_one(
    images: dict[str, Path], optimizer: str
) -> None:
    """Interrupted in iteration 3's evaluations: 2 done, and the image is iteration 2's, not a line-search probe."""
    callbacks = InterruptAt(after=2)
    result = run(images, callbacks, optimizer=optimizer, snapshot_every=1, iterations=6)
    assert result.stopped and result.iterations == 2  # type: ignore[attr-defined]
    assert callbacks.iterations == [1, 2] and result.losses == callbacks.progress[-1][1]  # type: ignore[attr-defined]
    snapshot: Image.Image = dict(callbacks.snapshots)[2]
    assert result.image.tobytes() == snapshot.tobytes()  # type: ignore[attr-defined]


def test_without_interrupts_a_run_is_unchanged(images: dict[str, Path]) -> None:
    """The default should_interrupt() never fires: the same run, bit for bit, as one that is checked."""
    plain = run(images, Recorder(), iterations=3)
    checked = run(images, InterruptAt(), iterations=3)
    assert plain.image.tobytes() == checked.image.tobytes()  # type: ignore[attr-defined]
    assert plain.iterations == checked.iterations == 3  # type: ignore[attr-defined]
