"""Two sections of bench.gpu (issue 17, item 6): convolution variants, and the seed race on the device.

variants: ms per forward+backward of the engine's Objective at 512 and 1024 px (quick: 64, 96)
in fp32 and bf16, each plain, with the network and the image in channels_last, and with the
network under torch.compile; the compile (first two calls) is timed apart. stylize() offers
neither channels_last nor compile, so these are the objective alone; "ms/iteration" multiplies
by the evaluations per iteration that section "per size" measured at that size (when it did).

seed race: bench.seed_race on the device at 512 px (quick: 64): the seed's loop (bench.reference_gatys,
faithful; its network built beforehand) for 1000 steps (quick: 5), timed whole (targets included) and
synchronised, its delivered image the
target; then the engine on the race's objective, every iteration's image scored with the seed's
definition; the engine's time to the first iteration that reaches the target, against the seed's.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

import torch

from bench.reference_gatys import SeedRun, seed_vgg, squashed_style_image
from bench.seed_race import race_params, run_engine
from bench.seed_score import CONTENT, STYLE, SeedScorer
from impasto.worker.engine import imaging
from impasto.worker.engine.objective import Objective

if TYPE_CHECKING:
    from bench.gpu import Bench

_EDGE = 0.5 / 255  # as worker/engine/optimize.py
VARIANTS = (
    ("fp32", False, False),
    ("bf16", False, False),
    ("fp32", True, False),
    ("bf16", True, False),
    ("fp32", False, True),
    ("bf16", False, True),
)


def objective_ms(bench: Bench, size: int, precision: str, channels_last: bool, compiled: bool) -> tuple[float, float]:
    """(ms per evaluation, seconds of the first two calls) of the Objective in one variant."""
    params = bench.params(precision, size=size).validate()
    model: Any = bench.model
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    if compiled:
        model = torch.compile(model)
    width, height = bench.px(size)
    content = imaging.to_tensor(imaging.open_image(CONTENT), (width, height)).to(bench.device)
    style_image = imaging.open_image(STYLE)
    style = imaging.to_tensor(style_image, imaging.fit_long_side(*style_image.size, max(width, height)))
    objective = Objective(model, params, content, [style.to(bench.device)])
    z = torch.logit((content / 255).clamp(_EDGE, 1 - _EDGE)).contiguous(memory_format=memory_format)
    z.requires_grad_(True)

    def step() -> None:
        total, _ = objective((255 * torch.sigmoid(z)).contiguous(memory_format=memory_format))
        total.backward()
        z.grad = None

    bench.sync()
    started = time.perf_counter()
    for _ in range(2):
        step()
    bench.sync()
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(bench.plan.objective_evals):
        step()
    bench.sync()
    return (time.perf_counter() - started) / bench.plan.objective_evals * 1e3, first


def variants(bench: Bench) -> None:
    """Section: Objective ms/evaluation per precision × channels_last × compile at two sizes."""
    sizes = (64, 96) if bench.quick else (512, 1024)
    evals = {(r["size"], r["precision"]): r.get("evals_per_iter") for r in bench.report.data.get("per_size", [])}
    for size in sizes:
        plain: dict[str, float] = {}
        for precision, channels_last, compiled in VARIANTS:
            row: dict[str, Any] = {
                "size": size,
                "precision": precision,
                "channels_last": channels_last,
                "compile": compiled,
            }
            if precision not in bench.precisions:
                row["error"] = f"skipped: {bench.bf16_note}"
            elif bench.clock.left() < (10 if bench.quick else 45):
                row["error"] = "skipped: budget"
            else:
                try:
                    ms, first = objective_ms(bench, size, precision, channels_last, compiled)
                    row.update(ms_per_eval=ms, first_two_calls_s=first)
                    if not channels_last and not compiled:
                        plain[precision] = ms
                    if "fp32" in plain:
                        row["vs_fp32_plain"] = ms / plain["fp32"]
                    per_iteration = evals.get((size, precision))
                    if per_iteration:
                        row["ms_per_iter_estimate"] = ms * per_iteration
                    print(
                        f"variant {size} px {precision} cl={channels_last} compile={compiled}: {ms:.2f} ms", flush=True
                    )
                except Exception as exc:  # one variant failing (e.g. no compiler) must not cost the rest
                    row["error"] = short(exc)
                    print(f"variant {size} px {precision} cl={channels_last} compile={compiled}: {row['error']}")
            bench.report.add("variants", row)
            bench.fresh_memory()


def seed_race(bench: Bench) -> None:
    """Section: the seed's 1000-step quality at 512 px and the engine's time to it, on the device."""
    size, steps, iterations = (64, 5, 4) if bench.quick else (512, 1000, 60)
    device = str(bench.device)
    row: dict[str, Any] = {"size": size, "seed_steps": steps}
    try:
        scorer = SeedScorer(size, device=device)
        model = seed_vgg(device)  # built outside the timing, as the engine's network is
        SeedRun(CONTENT, STYLE, size, model, device).step()  # warm-up: cuDNN autotune for the seed's shapes
        bench.sync()
        started = time.perf_counter()
        run = SeedRun(CONTENT, STYLE, size, model, device)
        for _ in range(steps):
            run.step()
        bench.sync()
        row["seed_s"] = time.perf_counter() - started
        target = scorer(run.image())
        row.update(seed_content=target.content, seed_style=target.style)
        params = race_params(size, iterations, device=device)
        style = squashed_style_image(CONTENT, STYLE, size)
        run_engine(race_params(size, 2, device=device), style, device)  # warm-up
        trajectory = run_engine(params, style, device)
        for iteration, seconds, evaluations, image in trajectory.points:
            if scorer(image).reaches(target):
                row.update(engine_iteration=iteration, engine_s=seconds, engine_evaluations=evaluations)
                row["ratio"] = seconds / row["seed_s"]
                break
        else:
            row["engine_iteration"] = f"not in {iterations}"
        print(f"seed race {size} px: {row}", flush=True)
    except Exception as exc:
        row["error"] = short(exc)
        print(f"seed race: {row['error']}", flush=True)
    bench.report.add("seed_race", row)
    bench.fresh_memory()


def render(d: dict[str, Any]) -> list[str]:
    """Markdown tables of the two sections."""
    lines: list[str] = []
    if d.get("variants"):
        lines += [
            "Objective alone (forward + backward), per variant; ms/iteration = ms/eval × evals/iteration of "
            "'per size' (stylize offers neither channels_last nor compile):",
            "",
            "| size | precision | channels_last | compile | ms/eval | vs fp32 plain | ms/iteration (est.) "
            "| first two calls s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in d["variants"]:
            head = f"| {r['size']} | {r['precision']} | {r['channels_last']} | {r['compile']} |"
            if "error" in r:
                lines.append(f"{head} {r['error']} ||||")
                continue
            lines.append(
                f"{head} {r['ms_per_eval']:.2f} | {_x(r.get('vs_fp32_plain'))} | {_n(r.get('ms_per_iter_estimate'))} "
                f"| {r['first_two_calls_s']:.1f} |"
            )
        lines.append("")
    for r in d.get("seed_race", []):
        if "error" in r:
            lines += [f"Seed race {r['size']} px: error: {r['error']}", ""]
            continue
        lines += [
            f"Seed race at {r['size']} px on the device: the seed's {r['seed_steps']} steps took {r['seed_s']:.2f} s "
            f"(content {r['seed_content']:.4g}, style {r['seed_style']:.4g}); the engine reaches it (style <= the "
            f"seed's, content <= 1.3 × the seed's) at iteration {r['engine_iteration']}"
            + (
                f" after {r['engine_evaluations']} evaluations, {r['engine_s']:.2f} s: {r['ratio']:.3f} × the "
                "seed's time."
                if "engine_s" in r
                else "."
            ),
            "",
        ]
    return lines


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def short(exc: BaseException) -> str:
    """An exception in one line."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
