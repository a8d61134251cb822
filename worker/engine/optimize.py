"""The optimisation loop: coarse-to-fine stages, L-BFGS or Adam, callbacks, stop and resume."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from impasto.worker.engine import imaging
from impasto.worker.engine.callbacks import Callbacks, Interrupted, Losses
from impasto.worker.engine.color import match_colours
from impasto.worker.engine.errors import EngineError
from impasto.worker.engine.evaluation import CachedEvaluation, first_lbfgs_step, pixels_of
from impasto.worker.engine.gram_cache import GramCache
from impasto.worker.engine.lbfgs import LBFGS
from impasto.worker.engine.masks import Labels, read_labels
from impasto.worker.engine.memory import MemoryPlan, device_budget, plan
from impasto.worker.engine.objective import Objective
from impasto.worker.engine.params import StyleParams
from impasto.worker.engine.vgg import deepest_layer, load_vgg

# Pixels are optimised through a sigmoid, x = 255·σ(z), so they never leave 0..255 and the
# 8-bit PNG holds what the optimiser reached. Content pixels at exactly 0 or 255 start here.
_EDGE = 0.5 / 255


@dataclass(frozen=True)
class Resume:
    """Continue a run from a snapshot: its image and the iterations already done."""

    image: Image.Image
    iteration: int


@dataclass(frozen=True)
class Result:
    """What a run produced."""

    image: Image.Image  # interrupted in set-up: the starting point as given (resume image or content)
    iterations: int  # the last iteration completed (counting those before a resume)
    losses: Losses | None  # at the last iteration; None if no iteration ran
    stopped: bool  # should_stop() or should_interrupt() ended it early
    seconds: float  # wall time of the loop, targets included
    evaluations: int  # forward+backward passes; L-BFGS's line search may add some
    device: str
    memory: MemoryPlan | None = None  # the last stage's tile and L-BFGS history, and the budget they fit


def stylize(
    content: str | Path | Image.Image,
    styles: Sequence[str | Path | Image.Image],
    params: StyleParams | None = None,
    callbacks: Callbacks | None = None,
    *,
    device: str | torch.device = "cpu",
    weights: str = "original",
    init_image: str | Path | Image.Image | None = None,
    resume: Resume | None = None,
    gram_cache: GramCache | None = None,
    memory_budget: int | None = None,
    mask: str | Path | Image.Image | None = None,
    style_masks: Sequence[str | Path | Image.Image | None] | None = None,
) -> Result:
    """Paint `content` in the style of `styles` and return the image (see StyleParams).

    `memory_budget` (bytes) is what a CPU run may use (default memory.DEFAULT_CPU_BUDGET); on
    CUDA the budget is the device's free memory. It sets the tile (unless params.tile does) and
    the L-BFGS history (memory.py).
    `mask` is the content's label image for params.regions (spatial control), and `style_masks`
    optionally one label image per style (None: the whole style serves each region that takes it).
    """
    params = (params or StyleParams()).validate(style_count=len(styles))
    callbacks = callbacks or Callbacks()
    if params.init == "image" and init_image is None:
        raise EngineError("init 'image' needs an init image")
    labels = read_labels(params, len(styles), mask, style_masks)
    if resume is not None and not 0 <= resume.iteration < params.iterations:
        raise EngineError(f"resume iteration must be in [0, {params.iterations}), got {resume.iteration}")
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes per stage: autotuning pays off
    content_image = imaging.open_image(content)
    style_images = [imaging.open_image(s) for s in styles]
    started = time.perf_counter()
    start_iteration = resume.iteration + 1 if resume else 1
    run: _Run | None = None
    pixels: torch.Tensor | None = None
    done, losses, stopped = resume.iteration if resume else 0, None, False
    try:
        callbacks.check_interrupt()  # a cancel that came while the images were read
        model = load_vgg(weights, device, deepest_layer(params.content_layers + params.style_layers))
        started = time.perf_counter()  # the loop's time, targets included; not the network's loading
        callbacks.check_interrupt()
        run = _Run(params, callbacks, model, device, content_image, style_images, gram_cache, labels)
        run.budget = device_budget(device, memory_budget)
        if resume is not None:
            pixels = imaging.to_tensor(imaging.open_image(resume.image)).to(device)
        elif params.init == "image":
            pixels = imaging.to_tensor(imaging.open_image(init_image)).to(device)  # type: ignore[arg-type]
        for scale, first, last in params.stage_plan():
            if last < start_iteration:
                continue
            pixels, done, losses, stopped = run.stage(scale, max(first, start_iteration), last, pixels, done, losses)
            if stopped:
                break
    except Interrupted:  # before the first stage began: nothing of this run is in `pixels` yet
        stopped = True
    if pixels is None or run is None:  # interrupted in set-up: the run's starting point, unchanged
        image = imaging.open_image(resume.image) if resume is not None else content_image
    else:
        image = imaging.to_image(run.delivered(pixels))
    return Result(
        image=image,
        iterations=done,
        losses=losses,
        stopped=stopped,
        seconds=time.perf_counter() - started,
        evaluations=run.evaluations if run is not None else 0,
        device=str(device),
        memory=run.memory if run is not None else None,
    )


class _Run:
    """State shared by the stages of one run."""

    def __init__(
        self,
        params: StyleParams,
        callbacks: Callbacks,
        model: torch.nn.Module,
        device: torch.device,
        content: Image.Image,
        styles: list[Image.Image],
        gram_cache: GramCache | None,
        labels: Labels | None = None,
    ) -> None:
        self.params = params
        self.labels = labels
        self.gram_cache = gram_cache
        self.callbacks = callbacks
        self.model = model
        self.device = device
        self.content = content
        self.styles = styles
        self.evaluations = 0
        self.content_rgb: torch.Tensor | None = None  # this stage's content in colour
        self.budget = device_budget(device)
        self.memory: MemoryPlan | None = None  # this stage's tile and L-BFGS history

    def stage(
        self,
        scale: float,
        first: int,
        last: int,
        pixels: torch.Tensor | None,
        done: int,
        losses: Losses | None,
    ) -> tuple[torch.Tensor | None, int, Losses | None, bool]:
        """Run iterations first..last at one scale; returns (pixels, done, losses, stopped).

        Interrupted while the targets are computed, it returns the pixels it was given (None on a
        first stage: nothing optimised yet); inside an iteration, the pixels before that iteration.
        """
        p = self.params
        width, height = imaging.fit_long_side(*self.content.size, max(8, round(p.size * scale)))
        content = imaging.to_tensor(self.content, (width, height)).to(self.device)  # (1, 3, H, W)
        self.content_rgb = content
        style_sizes = [
            imaging.fit_long_side(*s.size, max(8, round(max(width, height) * p.scale_of_style(i))))
            for i, s in enumerate(self.styles)
        ]
        styles = [imaging.to_tensor(s, size).to(self.device) for s, size in zip(self.styles, style_sizes, strict=True)]
        if p.color_transfer == "before":
            styles = [match_colours(s, content, p.color_transfer_method) for s in styles]
        guides = None
        if self.labels is not None:
            guides = self.labels.guides((width, height), style_sizes, self.device)
        if p.preserve_color:
            content = imaging.luminance_image(content)
            styles = [imaging.match_luminance(imaging.luminance_image(s), content) for s in styles]
        check = self.callbacks.check_interrupt
        memory = plan(height, width, self.budget, p.tile, p.lbfgs_history, p.content_layers)
        self.memory = memory
        try:
            check()  # resizing a large style image takes a while too
            model = self.model
            objective = Objective(model, p, content, styles, self.gram_cache, check, guides, memory.tile)  # type: ignore[arg-type]
        except Interrupted:
            return pixels, done, losses, True
        del styles  # the Gram targets hold what the optimisation needs of them
        if pixels is None:
            pixels = self._initial_pixels(content)
        else:
            pixels = imaging.resize(pixels, height, width)
            if p.preserve_color:
                pixels = imaging.luminance_image(pixels)
        z = torch.logit((pixels / 255).clamp(_EDGE, 1 - _EDGE)).detach().contiguous().requires_grad_(True)
        evaluate = CachedEvaluation(z, objective, check, memory.tile)
        optimizer = self._optimizer(z, memory.history)

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            return evaluate()

        stopped = False
        for iteration in range(first, last + 1):
            if self.callbacks.should_stop():
                stopped = True
                break
            before = z.detach().clone()  # the line search moves z in place; an interrupt restores it
            try:
                if iteration == first and isinstance(optimizer, torch.optim.LBFGS) and p.lbfgs_first_step is not None:
                    first_lbfgs_step(optimizer, closure, evaluate, z, p.lbfgs_first_step, p.lr())
                else:
                    optimizer.step(closure)  # type: ignore[arg-type]  # torch's stub says float; a tensor is fine
                evaluate()  # losses at the accepted point (Adam's is new); the next step reuses this evaluation
            except Interrupted:
                with torch.no_grad():
                    z.copy_(before)
                stopped = True
                break
            content_term, style_term, tv_term = evaluate.terms.tolist()
            total = content_term + style_term + tv_term
            if not math.isfinite(total):
                raise EngineError(
                    f"the optimisation diverged at iteration {iteration} (loss {total}); lower the learning rate"
                )
            losses = Losses(content=content_term, style=style_term, tv=tv_term, total=total)
            done = iteration
            self.callbacks.on_progress(iteration, losses)
            if p.snapshot_every and iteration % p.snapshot_every == 0:
                self.callbacks.on_snapshot(iteration, imaging.to_image(self.delivered(pixels_of(z))))
        self.evaluations += evaluate.count
        return pixels_of(z).detach(), done, losses, stopped

    def delivered(self, pixels: torch.Tensor) -> torch.Tensor:
        """The image the user gets: with preserve_color, the result's luminance on the content's colours;
        with color_transfer "after", the result's colours matched to the content's."""
        if self.params.preserve_color and self.content_rgb is not None:
            return imaging.with_chroma_of(pixels.detach(), imaging.resize(self.content_rgb, *pixels.shape[-2:]))
        if self.params.color_transfer == "after" and self.content_rgb is not None:
            return match_colours(pixels.detach(), self.content_rgb, self.params.color_transfer_method)
        return pixels.detach()

    def _initial_pixels(self, content: torch.Tensor) -> torch.Tensor:
        if self.params.init == "noise":
            generator = torch.Generator().manual_seed(self.params.seed)  # CPU: same noise on any device
            z = torch.randn(content.shape, generator=generator)
            return (255 * torch.sigmoid(z)).to(self.device)
        return content.clone()

    def _optimizer(self, z: torch.Tensor, history: int) -> torch.optim.Optimizer:
        p = self.params
        if p.optimizer == "adam":
            return torch.optim.Adam([z], lr=p.lr())
        return LBFGS(
            [z],
            lr=p.lr(),
            # torch's default max_eval is 1.25·max_iter, which with one iteration per step() call
            # leaves the line search no evaluation at all (and L-BFGS stalls); allow 25 as torch's search does.
            max_eval=26,
            history_size=history,  # p.lbfgs_history, or fewer where the memory budget says so
        )  # one iteration per step(), so callbacks run between iterations; tolerances 0: never stop early
