"""One evaluation of the objective at the optimised logits, cached for L-BFGS, and L-BFGS's sized first step."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from impasto.worker.engine.objective import Objective
from impasto.worker.engine.tiling import TiledEvaluation

# Above this many pixels, the first step shrinks as 1/√pixels. Measured on the chelsea sample along −g from
# the content (the objective, default weights, at RMS logit steps): at 1024x681 0.3 lowers it from 21.02
# to 15.36; at 2048x1362 0.3 raises it to 21.1, and the best of the steps tried is 0.2 (20.15); at
# 4096x2724 0.3 raised it from 20.62 to 22.57, and torch's line search then zoomed for 4+ evaluations
# of ~6 min each. Too short a step costs one extrapolating evaluation (it grows up to 10x); too long
# costs several, so the rule errs short.
FIRST_STEP_FULL_PIXELS = 1024 * 1024


def first_step_rms(rms_step: float, pixels: int) -> float:
    """The RMS logit step of L-BFGS's first iteration on an image of `pixels` pixels."""
    return rms_step * min(1.0, math.sqrt(FIRST_STEP_FULL_PIXELS / pixels))


def first_lbfgs_step(
    optimizer: torch.optim.LBFGS,
    closure: Callable[[], torch.Tensor],
    evaluate: CachedEvaluation,
    z: torch.Tensor,
    rms_step: float,
    lr: float,
) -> None:
    """L-BFGS's first iteration with a step that moves the logits by `rms_step` (RMS) along −g
    (less above FIRST_STEP_FULL_PIXELS: first_step_rms).

    torch starts with t = min(1, 1/|g|₁)·lr, a step of about 1/(number of pixels) of a
    sensible one, and its line search then extrapolates for several evaluations. Here the
    gradient (evaluated anyway: the step reuses it) sets lr for this one call so that the
    first trial step has the wanted size; later iterations use lr as usual.
    """
    evaluate()
    assert z.grad is not None
    grad = z.grad.detach()
    rms = float(grad.pow(2).mean().sqrt())
    if rms > 0 and math.isfinite(rms):
        wanted = first_step_rms(rms_step, z[0, 0].numel()) / rms  # t such that t·rms(g) is the step
        optimizer.param_groups[0]["lr"] = wanted / min(1.0, 1.0 / float(grad.abs().sum()))
    try:
        optimizer.step(closure)  # type: ignore[arg-type]
    finally:
        optimizer.param_groups[0]["lr"] = lr


def pixels_of(z: torch.Tensor) -> torch.Tensor:
    """The image a parameter tensor stands for: 255·σ(z), always within 0..255."""
    return 255 * torch.sigmoid(z)


class CachedEvaluation:
    """Forward and backward at the current z, reusing the last result when z has not moved.

    torch's L-BFGS evaluates the closure at the start of every step() call, at the point the
    previous call's line search already evaluated; with max_iter=1 that would double the cost.
    """

    def __init__(
        self, z: torch.Tensor, objective: Objective, check_interrupt: Callable[[], None], tile: int = 0
    ) -> None:
        self.z = z
        self.objective = objective
        self.check_interrupt = check_interrupt  # before each new evaluation (a line search makes many), and per tile
        self.tiled = TiledEvaluation(objective, tile, check_interrupt=check_interrupt) if tile else None
        self.count = 0
        self._at: torch.Tensor | None = None
        self._grad: torch.Tensor | None = None
        self._total: torch.Tensor | None = None
        self.terms = torch.zeros(3)

    def __call__(self) -> torch.Tensor:
        z = self.z
        if self._at is not None and torch.equal(z.detach(), self._at):
            assert self._grad is not None and self._total is not None
            z.grad = self._grad.clone()
            return self._total
        self.check_interrupt()
        with torch.enable_grad():
            if z.grad is not None:
                z.grad = None
            if self.tiled is None:
                total, terms = self.objective(pixels_of(z))
                total.backward()
            else:
                pixels = pixels_of(z)
                total, terms, grad = self.tiled(pixels.detach())
                pixels.backward(grad)  # through the sigmoid to z
        self.count += 1
        assert z.grad is not None
        self._at = z.detach().clone()
        self._grad = z.grad.detach().clone()
        self._total = total.detach()
        self.terms = terms.detach()
        return self._total
