"""GPU benchmark of the engine's real code path (stylize + StyleParams + callbacks), for one H200.

    bash bench/gpu.sh                      # on the GPU machine; writes $OUT (default bench/out)
    python -m bench.gpu --quick --device cpu   # smoke test of the script itself, a minute on CPU
    python -m bench.gpu --record OUT/gpu.json  # append a finished run's tables to bench/RESULTS.md

Sections, in priority order, each written to OUT/gpu.json and OUT/gpu.md as soon as it is measured
(so a run cut short by a timeout still leaves everything measured until then):

1. environment: torch / CUDA / cuDNN versions, GPU, TF32 and cudnn.benchmark flags;
2. matmul ceiling: an n×n×n torch.matmul in bf16, tf32 and strict fp32;
3. the 512 px × 500 iteration job with default parameters (fp32 and bf16): wall time, jobs/hour;
4. per size (512, 1024, 2048) and precision: ms per iteration in stylize (warm-up run first,
   a fixed window of iterations timed between two on_progress callbacks, synchronised), forward
   +backward evaluations in that window, ms per evaluation of the objective alone, peak memory,
   and conv TFLOP/s against the matmul ceiling;
5. style-Gram cache: a job's setup time (stylize call to the first should_stop) with no cache,
   a cold GramCache and a warm one;
6. largest size that runs (3 iterations), growing until CUDA runs out of memory or of time, up
   to the engine's 8192 px bound: the engine tiles (exact, worker/engine/tiling.py) and shortens
   L-BFGS's history to the device's free memory (memory.py), so each row gives the tile and
   history the engine chose, ms per iteration, and the full history's projected memory on top;
and, from bench.gpu_variants (issue 17), after section 4: the seed race at 512 px (the seed's
faithful 1000-step loop against the engine on the seed's objective), and the objective's ms per
evaluation in fp32/bf16 × channels_last × torch.compile at 512 and 1024 px.

FLOPs: only the VGG convolutions are counted, from the layer shapes: 2·Cin·Cout·kh·kw·Hout·Wout
for each conv layer up to the deepest one the objective uses (conv5_1 by default). One evaluation
= forward + backward for the input gradient only (the weights are frozen, so no weight gradient
is computed) = 2 × forward. The common "backward = 2 × forward" convention (weights trained)
would give 1.5× these TFLOP/s. Gram matrices, ReLU, pooling and the losses are not counted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from bench import gpu_variants
from bench.results import append_result, machine_line
from bench.seed_race import EvalCounter
from impasto.worker.engine import Callbacks, EngineError, GramCache, Losses, StyleParams, imaging, stylize
from impasto.worker.engine.objective import Objective
from impasto.worker.engine.vgg import CONV_NAMES, VGG19Features, deepest_layer, load_vgg

CONTENT, STYLE = "shared/samples/chelsea.jpg", "shared/samples/starry_night.jpg"
GIB = 1024**3
TARGET_SECONDS = 5.0  # "512 px × 500 iterations in under 5 s"
_EDGE = 0.5 / 255  # as worker/engine/optimize.py


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes and counts of one run: the full H200 plan or the --quick smoke test."""

    sizes: tuple[int, ...]
    fit_sizes: tuple[int, ...]
    job_size: int
    job_iterations: int
    warmup_iterations: int
    skip_iterations: int  # iterations of the timed run before the timed window
    timed_iterations: dict[int, int]  # size -> iterations in the timed window
    objective_evals: int
    matmul_n: int
    matmul_reps: int
    gram_reps: int
    fit_iterations: int
    budget_s: float


FULL = Plan(
    sizes=(512, 1024, 2048),
    fit_sizes=(3072, 4096, 6144, 8192),
    job_size=512,
    job_iterations=StyleParams().iterations,
    warmup_iterations=3,
    skip_iterations=5,
    timed_iterations={512: 100, 1024: 50, 2048: 30},
    objective_evals=20,
    matmul_n=8192,
    matmul_reps=10,
    gram_reps=3,
    fit_iterations=3,
    budget_s=390.0,
)
QUICK = Plan(
    sizes=(64, 96),
    fit_sizes=(128,),
    job_size=64,
    job_iterations=3,
    warmup_iterations=1,
    skip_iterations=1,
    timed_iterations={},
    objective_evals=2,
    matmul_n=256,
    matmul_reps=2,
    gram_reps=1,
    fit_iterations=2,
    budget_s=150.0,
)


# ----------------------------------------------------------------------------- output


class Report:
    """Everything measured so far, rewritten to OUT/gpu.json and OUT/gpu.md after each step."""

    def __init__(self, out: Path, data: dict[str, Any]) -> None:
        self.out = out
        self.data = data
        out.mkdir(parents=True, exist_ok=True)

    def save(self) -> None:
        """Write both files atomically (a kill mid-write leaves the previous version)."""
        self.data["elapsed_s"] = round(time.perf_counter() - self.data["_t0"], 1)
        public = {k: v for k, v in self.data.items() if not k.startswith("_")}
        _write(self.out / "gpu.json", json.dumps(public, indent=2, default=str) + "\n")
        _write(self.out / "gpu.md", "\n".join(render(public)) + "\n")

    def add(self, section: str, row: dict[str, Any]) -> None:
        """Append a row to a section's list and save."""
        self.data.setdefault(section, []).append(row)
        self.save()


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render(d: dict[str, Any]) -> list[str]:
    """The markdown tables of a run (also what --record appends to RESULTS.md)."""
    env = d.get("env", {})
    lines = [
        f"Status: **{d.get('status')}** after {d.get('elapsed_s')} s; device {d.get('device')}"
        f"{' (--quick)' if d.get('quick') else ''}; started {d.get('started_utc')}.",
        "",
    ]
    if env:
        lines += [
            f"- GPU: {env.get('gpu')} ({env.get('gpu_memory_gib')} GiB, {env.get('sm_count')} SMs, "
            f"capability {env.get('capability')}, driver {env.get('driver')})",
            f"- torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, "
            f"Python {env.get('python')}, commit {env.get('commit')}",
            f"- TF32: matmul {env.get('tf32_matmul')} (float32_matmul_precision {env.get('float32_matmul_precision')}),"
            f" cuDNN conv {env.get('tf32_cudnn')}; cudnn.benchmark {env.get('cudnn_benchmark_at_start')} at start,"
            f" {env.get('cudnn_benchmark_in_engine')} once stylize ran (the engine sets it on CUDA)",
            f"- bf16: {env.get('bf16')}",
            "",
        ]
    lines += [f"FLOPs: {d.get('flop_convention')}", ""]
    if d.get("matmul_ceiling"):
        lines += ["Matmul ceiling (torch.matmul n×n×n, mean of timed reps):", ""]
        lines += ["| dtype | n | ms | TFLOP/s |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['dtype']} | {r['n']} | {_f(r['ms'], 3)} | {_f(r['tflops'], 1)} |" for r in d["matmul_ceiling"]]
        lines.append("")
    if d.get("job"):
        lines += ["Full job, default params (L-BFGS), one at a time; wall = the stylize call, synchronised:", ""]
        lines += [
            "| precision | px | iterations | evaluations | wall s | setup s | jobs/hour | < 5 s | final loss |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in d["job"]:
            if "error" in r:
                lines.append(f"| {r['precision']} | {r.get('px', '–')} | error: {r['error']} |||||||")
                continue
            lines.append(
                f"| {r['precision']} | {r['px']} | {r['iterations']} | {r['evaluations']} | {_f(r['wall_s'])} | "
                f"{_f(r['setup_s'], 3)} | {_f(r['jobs_per_hour'], 0)} | {r['target']} | {_f(r['final_loss'], 4)} |"
            )
        lines.append("")
    if d.get("per_size"):
        lines += [
            "Per iteration in stylize (L-BFGS, default params; window of iterations after a warm-up run), and the "
            "objective alone (forward+backward, no optimiser); TFLOP/s = conv FLOPs / time per evaluation:",
            "",
            "| size | px | precision | ms/iter | evals/iter | ms/eval loop | ms/eval objective | conv GFLOP/eval "
            "| TFLOP/s loop | TFLOP/s objective | % ceiling | peak alloc GiB | peak reserved GiB |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in d["per_size"]:
            if "error" in r:
                lines.append(f"| {r['size']} | {r.get('px', '–')} | {r['precision']} | error: {r['error']} ||||||||||")
                continue
            lines.append(
                f"| {r['size']} | {r['px']} | {r['precision']} | {_f(r['ms_per_iter'])} | {_f(r['evals_per_iter'])} | "
                f"{_f(r['ms_per_eval_loop'])} | {_f(r.get('ms_per_eval_objective'))} | {_f(r['gflop_per_eval'], 1)} | "
                f"{_f(r['tflops_loop'], 1)} | {_f(r.get('tflops_objective'), 1)} | {_f(r.get('pct_of_ceiling'), 0)} | "
                f"{_f(r.get('peak_alloc_gib'))} | {_f(r.get('peak_reserved_gib'))} |"
            )
        lines.append("")
    lines += gpu_variants.render(d)
    if d.get("gram_cache"):
        lines += [
            "Style-Gram cache: setup = stylize call to the first should_stop (images, content targets, style Grams), "
            "median of reps; saved = cold − warm, as a share of the full job's wall time at that size:",
            "",
            "| size | no cache ms | cold cache ms | warm cache ms | saved ms | saved % of job | hits/misses |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in d["gram_cache"]:
            if "error" in r:
                lines.append(f"| {r['size']} | error: {r['error']} ||||||")
                continue
            lines.append(
                f"| {r['size']} | {_f(r['none_ms'], 1)} | {_f(r['cold_ms'], 1)} | {_f(r['warm_ms'], 1)} | "
                f"{_f(r['saved_ms'], 1)} | {_f(r.get('saved_pct_of_job'), 2)} | {r['hits']}/{r['misses']} |"
            )
        lines.append("")
    if d.get("max_fit"):
        lines += [
            "Largest size: stylize with default params for a few iterations (tile and L-BFGS history as the "
            "engine's memory plan chose them; ms/iter between the first and last iteration); projected = peak + "
            "that history (2 × history × pixels × 12 bytes) a long job fills:",
            "",
            "| size | px | precision | result | tile | history | ms/iter | seconds | peak alloc GiB "
            "| peak reserved GiB | projected GiB | full job fits |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in d["max_fit"]:
            lines.append(
                f"| {r['size']} | {r.get('px', '–')} | {r['precision']} | {r['result']} | {r.get('tile', '–')} | "
                f"{r.get('lbfgs_history', '–')} | {_f(r.get('ms_per_iter'), 1)} | {_f(r.get('seconds'), 1)} | "
                f"{_f(r.get('peak_alloc_gib'))} | {_f(r.get('peak_reserved_gib'))} | "
                f"{_f(r.get('projected_full_lbfgs_gib'))} | {r.get('full_job_fits', '–')} |"
            )
        lines.append("")
    for precision, summary in d.get("max_fit_summary", {}).items():
        lines.append(
            f"- {precision}: largest size that ran: {summary.get('largest_ran')}; largest whose projected full L-BFGS "
            f"job fits: {summary.get('largest_full_job')}; first failure: {summary.get('first_failure')}"
        )
    if d.get("max_fit_summary"):
        lines.append("")
    if d.get("sections"):
        lines += ["| section | seconds | note |", "| --- | --- | --- |"]
        lines += [f"| {name} | {_f(s['seconds'], 1)} | {s['note']} |" for name, s in d["sections"].items()]
        lines.append("")
    for error in d.get("errors", []):
        lines.append(f"- error: {error}")
    return lines


# ----------------------------------------------------------------------------- timing helpers


class Clock:
    """The run's time budget."""

    def __init__(self, budget_s: float) -> None:
        self.deadline = time.perf_counter() + budget_s

    def left(self) -> float:
        return self.deadline - time.perf_counter()


class Probe(Callbacks):
    """Timestamps (synchronised) of the end of setup and of every iteration; stops at the deadline."""

    def __init__(
        self, sync: Callable[[], None], counter: EvalCounter, deadline: float, stop_after_setup: bool = False
    ) -> None:
        self.sync = sync
        self.counter = counter
        self.deadline = deadline
        self.stop_after_setup = stop_after_setup
        self.started = time.perf_counter()  # reset by Bench.run just before stylize
        self.setup_done: float | None = None
        self.times: dict[int, float] = {}
        self.evals: dict[int, int] = {}
        self.deadline_hit = False

    def should_stop(self) -> bool:
        if self.setup_done is None:
            self.sync()
            self.setup_done = time.perf_counter()
        if self.stop_after_setup:
            return True
        if time.perf_counter() > self.deadline:
            self.deadline_hit = True
            return True
        return False

    def on_progress(self, iteration: int, losses: Losses) -> None:
        self.sync()
        self.times[iteration] = time.perf_counter()
        self.evals[iteration] = self.counter.count


@contextmanager
def counting(model: VGG19Features) -> Iterator[EvalCounter]:
    counter = EvalCounter()
    handle = model.convs["conv1_1"].register_forward_pre_hook(counter)
    try:
        yield counter
    finally:
        handle.remove()


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "ALLOC_FAILED" in text)


def short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


# ----------------------------------------------------------------------------- the benchmark


class Bench:
    """One run: the device, the plan, the report, and the engine calls."""

    def __init__(self, device: torch.device, plan: Plan, report: Report, clock: Clock) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.plan = plan
        self.report = report
        self.clock = clock
        self.quick = bool(report.data.get("quick"))
        self.model = load_vgg("original", device)  # the object stylize gets from load_vgg's cache
        self.content_size = imaging.open_image(CONTENT).size
        self.has_precision = "precision" in {f.name for f in dataclasses.fields(StyleParams)}
        self.bf16_note = self._bf16_note()
        self.precisions = ["fp32"] + (["bf16"] if self.bf16_note == "available" else [])
        self.ceiling: dict[str, float] = {}

    # --- helpers

    def _bf16_note(self) -> str:
        if not self.has_precision:
            return "not available in this engine build (StyleParams has no 'precision')"
        if self.cuda and not torch.cuda.is_bf16_supported():
            return "not available: this GPU has no bf16"
        try:
            StyleParams(precision="bf16").validate()  # type: ignore[call-arg]
        except EngineError as exc:
            return f"not available in this engine build ({exc})"
        return "available"

    def params(self, precision: str, **fields: Any) -> StyleParams:
        if self.has_precision:
            fields["precision"] = precision
        return StyleParams(**fields)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def fresh_memory(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peaks(self) -> dict[str, float | None]:
        if not self.cuda:
            return {"peak_alloc_gib": None, "peak_reserved_gib": None}
        return {
            "peak_alloc_gib": round(torch.cuda.max_memory_allocated() / GIB, 3),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 3),
        }

    def px(self, size: int) -> tuple[int, int]:
        return imaging.fit_long_side(*self.content_size, size)

    def run(self, params: StyleParams, *, stop_after_setup: bool = False, gram_cache: GramCache | None = None):
        """stylize on the engine's path; returns (result, probe, wall seconds), synchronised."""
        with counting(self.model) as counter:
            probe = Probe(self.sync, counter, self.clock.deadline, stop_after_setup)
            self.sync()
            probe.started = time.perf_counter()
            result = stylize(CONTENT, [STYLE], params, probe, device=self.device, gram_cache=gram_cache)
            self.sync()
            wall = time.perf_counter() - probe.started
        return result, probe, wall

    def conv_flops(self, size: int, params: StyleParams) -> float:
        """Forward FLOPs of the convs one evaluation runs: 2·Cin·Cout·kh·kw·Hout·Wout, to the deepest layer."""
        width, height = self.px(size)
        deepest = CONV_NAMES.index(deepest_layer(params.content_layers + params.style_layers))
        total = 0.0
        for index, name in enumerate(CONV_NAMES[: deepest + 1]):
            if index > 0 and name.endswith("_1"):  # max/avg pool 2×2, stride 2, ceil_mode
                height, width = math.ceil(height / 2), math.ceil(width / 2)
            conv = self.model.convs[name]
            assert isinstance(conv, torch.nn.Conv2d)
            assert not isinstance(conv.padding, str)  # VGG's padding is numbers, not "same"
            (kh, kw), (ph, pw), (sh, sw) = conv.kernel_size, conv.padding, conv.stride
            height, width = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
            total += 2 * conv.in_channels * conv.out_channels * kh * kw * height * width
        return total

    def gram_flops(self, size: int, params: StyleParams) -> float:
        """Forward FLOPs of the style Grams (2·C²·H·W per style layer), reported, not counted."""
        width, height = self.px(size)
        total, level = 0.0, 0
        for name in params.style_layers:
            level = int(name[4]) - 1
            h, w = height, width
            for _ in range(level):
                h, w = math.ceil(h / 2), math.ceil(w / 2)
            channels = self.model.convs[name].out_channels  # type: ignore[union-attr]
            total += 2 * channels * channels * h * w
        return total

    # --- sections

    def matmul_ceiling(self) -> None:
        n, reps = self.plan.matmul_n, self.plan.matmul_reps
        previous = torch.get_float32_matmul_precision()
        try:
            for label, dtype, precision in (
                ("bf16", torch.bfloat16, previous),
                ("tf32", torch.float32, "high"),
                ("fp32", torch.float32, "highest"),
            ):
                if label == "tf32" and not self.cuda:
                    continue
                torch.set_float32_matmul_precision(precision)
                a = torch.randn(n, n, device=self.device, dtype=dtype)
                b = torch.randn(n, n, device=self.device, dtype=dtype)
                for _ in range(3):
                    torch.matmul(a, b)
                self.sync()
                started = time.perf_counter()
                for _ in range(reps):
                    torch.matmul(a, b)
                self.sync()
                seconds = (time.perf_counter() - started) / reps
                tflops = 2 * n**3 / seconds / 1e12
                self.ceiling[label] = tflops
                self.report.add("matmul_ceiling", {"dtype": label, "n": n, "ms": seconds * 1e3, "tflops": tflops})
                print(f"matmul {label} n={n}: {seconds * 1e3:.3f} ms, {tflops:.1f} TFLOP/s", flush=True)
                del a, b
        finally:
            torch.set_float32_matmul_precision(previous)
            self.fresh_memory()

    def conv_ceiling(self, precision: str) -> tuple[str, float | None]:
        """The matmul ceiling to compare a precision's convs with (fp32 convs run TF32 if cuDNN allows)."""
        if precision == "bf16":
            return "bf16", self.ceiling.get("bf16")
        label = "tf32" if self.cuda and torch.backends.cudnn.allow_tf32 else "fp32"
        return label, self.ceiling.get(label)

    def job(self) -> None:
        plan = self.plan
        for precision in self.precisions:
            if self.clock.left() < 30 and not self.quick:
                self.report.add("job", {"precision": precision, "error": "skipped: out of time budget"})
                continue
            row: dict[str, Any] = {"precision": precision, "size": plan.job_size}
            try:
                w, h = self.px(plan.job_size)
                row["px"] = f"{w}x{h}"
                self.run(self.params(precision, size=plan.job_size, iterations=plan.warmup_iterations))  # warm-up
                self.fresh_memory()
                params = self.params(precision, size=plan.job_size, iterations=plan.job_iterations)
                result, probe, wall = self.run(params)
                target = (
                    "n/a (quick)"
                    if self.quick or plan.job_size != 512
                    else ("yes" if wall < TARGET_SECONDS and result.iterations == 500 else "no")
                )
                row.update(
                    iterations=result.iterations,
                    evaluations=result.evaluations,
                    wall_s=wall,
                    engine_seconds=result.seconds,
                    setup_s=probe.setup_done - probe.started if probe.setup_done else None,
                    jobs_per_hour=3600 / wall,
                    target=target,
                    final_loss=result.losses.total if result.losses else None,
                    stopped_by_deadline=probe.deadline_hit,
                    **self.peaks(),
                )
                print(
                    f"JOB {plan.job_size} px x {result.iterations} it, {precision}: {wall:.2f} s wall "
                    f"({3600 / wall:.0f} jobs/hour; target < {TARGET_SECONDS:.0f} s at 512 px x 500: {target})",
                    flush=True,
                )
            except Exception as exc:  # keep going: one failure must not cost the other sections
                row["error"] = short(exc)
                print(f"job {precision}: {row['error']}", flush=True)
            self.report.add("job", row)

    def per_size(self) -> None:
        plan = self.plan
        for size in plan.sizes:
            for precision in self.precisions:
                if self.clock.left() < (20 if self.quick else 120):
                    self.report.add("per_size", {"size": size, "precision": precision, "error": "skipped: budget"})
                    continue
                self.report.add("per_size", self.one_size(size, precision))
                self.fresh_memory()

    def one_size(self, size: int, precision: str) -> dict[str, Any]:
        plan = self.plan
        w, h = self.px(size)
        row: dict[str, Any] = {"size": size, "px": f"{w}x{h}", "precision": precision}
        try:
            self.run(self.params(precision, size=size, iterations=plan.warmup_iterations))  # warm-up: cuDNN autotune
            self.fresh_memory()
            window = plan.timed_iterations.get(size, 3 if self.quick else 30)
            params = self.params(precision, size=size, iterations=plan.skip_iterations + window)
            result, probe, _ = self.run(params)
            row.update(self.peaks())
            first, last = plan.skip_iterations, max(probe.times)
            iterations = last - first
            if iterations < 1:
                raise RuntimeError(f"only {last} iterations ran")
            seconds = probe.times[last] - probe.times[first]
            evals = probe.evals[last] - probe.evals[first]
            flops = 2 * self.conv_flops(size, params)  # forward + input-gradient backward
            ceiling_label, ceiling = self.conv_ceiling(precision)
            row.update(
                iterations_timed=iterations,
                evals_timed=evals,
                ms_per_iter=seconds / iterations * 1e3,
                evals_per_iter=evals / iterations,
                ms_per_eval_loop=seconds / evals * 1e3,
                gflop_per_eval=flops / 1e9,
                gram_gflop_forward=self.gram_flops(size, params) / 1e9,
                tflops_loop=flops / (seconds / evals) / 1e12,
                ceiling=ceiling_label,
            )
            ms_objective = self.objective_only(size, precision)
            row["ms_per_eval_objective"] = ms_objective
            row["tflops_objective"] = flops / (ms_objective / 1e3) / 1e12
            if ceiling:
                row["pct_of_ceiling"] = 100 * row["tflops_objective"] / ceiling
            print(
                f"{size} px {precision}: {row['ms_per_iter']:.2f} ms/iter ({row['evals_per_iter']:.2f} evals/iter), "
                f"objective {ms_objective:.2f} ms/eval = {row['tflops_objective']:.1f} TFLOP/s, "
                f"peak {row['peak_alloc_gib']} GiB",
                flush=True,
            )
        except Exception as exc:
            row["error"] = ("OOM " if is_oom(exc) else "") + short(exc)
            print(f"{size} px {precision}: {row['error']}", flush=True)
        return row

    def objective_only(self, size: int, precision: str) -> float:
        """ms per forward+backward of the engine's Objective alone, as CachedEvaluation runs it."""
        params = self.params(precision, size=size).validate()
        width, height = self.px(size)
        content = imaging.to_tensor(imaging.open_image(CONTENT), (width, height)).to(self.device)
        style_image = imaging.open_image(STYLE)
        style_long = max(8, round(max(width, height) * params.style_scale))
        style = imaging.to_tensor(style_image, imaging.fit_long_side(*style_image.size, style_long)).to(self.device)
        objective = Objective(self.model, params, content, [style])
        z = torch.logit((content / 255).clamp(_EDGE, 1 - _EDGE)).contiguous().requires_grad_(True)

        def step() -> None:
            total, _ = objective(255 * torch.sigmoid(z))
            total.backward()
            z.grad = None

        for _ in range(2):
            step()
        self.sync()
        started = time.perf_counter()
        for _ in range(self.plan.objective_evals):
            step()
        self.sync()
        return (time.perf_counter() - started) / self.plan.objective_evals * 1e3

    def gram_cache(self) -> None:
        plan = self.plan
        jobs = {r["size"]: r["wall_s"] for r in self.report.data.get("job", []) if "wall_s" in r}
        for size in dict.fromkeys((plan.job_size, plan.sizes[-1])):
            if self.clock.left() < (10 if self.quick else 60):
                self.report.add("gram_cache", {"size": size, "error": "skipped: budget"})
                continue
            row: dict[str, Any] = {"size": size, "precision": "fp32"}
            try:
                params = self.params("fp32", size=size, iterations=plan.job_iterations)

                self.setup_ms(params, GramCache())  # warm-up: cuDNN autotune for the style's shape
                none, cold, warm, hits, misses = [], [], [], 0, 0
                for _ in range(plan.gram_reps):
                    none.append(self.setup_ms(params, None))
                    cache = GramCache()
                    cold.append(self.setup_ms(params, cache))
                    warm.append(self.setup_ms(params, cache))
                    hits, misses = hits + cache.hits, misses + cache.misses
                row.update(
                    none_ms=statistics.median(none),
                    cold_ms=statistics.median(cold),
                    warm_ms=statistics.median(warm),
                    hits=hits,
                    misses=misses,
                )
                row["saved_ms"] = row["cold_ms"] - row["warm_ms"]
                job_s = jobs.get(size)
                if job_s is None:  # estimate a full job from the per-size ms/iter
                    per = [r for r in self.report.data.get("per_size", []) if r["size"] == size and "ms_per_iter" in r]
                    if per and per[0]["precision"] == "fp32":
                        job_s = per[0]["ms_per_iter"] * plan.job_iterations / 1e3 + row["cold_ms"] / 1e3
                        row["job_s_estimated"] = job_s
                if job_s:
                    row["job_s"] = job_s
                    row["saved_pct_of_job"] = 100 * row["saved_ms"] / 1e3 / job_s
                print(
                    f"gram cache {size} px: setup no cache {row['none_ms']:.1f} ms, cold {row['cold_ms']:.1f} ms, "
                    f"warm {row['warm_ms']:.1f} ms, saved {row['saved_ms']:.1f} ms "
                    f"({_f(row.get('saved_pct_of_job'))} % of a {plan.job_iterations}-iteration job)",
                    flush=True,
                )
            except Exception as exc:
                row["error"] = short(exc)
                print(f"gram cache {size}: {row['error']}", flush=True)
            self.report.add("gram_cache", row)
            self.fresh_memory()

    def setup_ms(self, params: StyleParams, cache: GramCache | None) -> float:
        """ms from the stylize call to its first should_stop: images, content targets, style Grams."""
        _, probe, _ = self.run(params, stop_after_setup=True, gram_cache=cache)
        assert probe.setup_done is not None
        return (probe.setup_done - probe.started) * 1e3

    def max_fit(self) -> None:
        plan = self.plan
        total = torch.cuda.mem_get_info()[1] if self.cuda else None
        summary: dict[str, dict[str, Any]] = {
            p: {"largest_ran": None, "largest_full_job": None, "first_failure": None} for p in self.precisions
        }
        self.report.data["max_fit_summary"] = summary
        # start from the per-size runs: the largest size measured there already fits
        last_seconds: dict[str, tuple[int, float]] = {}
        for r in self.report.data.get("per_size", []):
            if "ms_per_iter" in r and r["precision"] in summary:
                summary[r["precision"]]["largest_ran"] = r["size"]
                last_seconds[r["precision"]] = (r["size"], 3 * r["ms_per_iter"] / 1e3)
        stopped: set[str] = set()
        for size in plan.fit_sizes:
            for precision in self.precisions:
                if precision in stopped:
                    continue
                w, h = self.px(size)
                row: dict[str, Any] = {"size": size, "px": f"{w}x{h}", "precision": precision}
                previous = last_seconds.get(precision)
                # a new size costs the previous size's time scaled by area, plus cuDNN autotuning
                estimate = 10.0 + (2.0 * previous[1] * (size / previous[0]) ** 2 if previous else 0.0)
                if self.clock.left() < estimate:
                    row["result"] = f"skipped: {self.clock.left():.0f} s left, needs ~{estimate:.0f} s"
                    self.report.add("max_fit", row)
                    stopped.add(precision)
                    continue
                self.fresh_memory()
                started = time.perf_counter()
                try:
                    params = self.params(precision, size=size, iterations=plan.fit_iterations)
                    result, probe, wall = self.run(params)
                    row.update(seconds=wall, iterations=result.iterations, **self.peaks())
                    row["result"] = "ok" if result.iterations == plan.fit_iterations else "stopped (time budget)"
                    history = result.memory.history if result.memory is not None else params.lbfgs_history
                    row.update(tile=result.memory.tile if result.memory is not None else None, lbfgs_history=history)
                    done = sorted(probe.times)
                    if len(done) >= 2:
                        span = probe.times[done[-1]] - probe.times[done[0]]
                        row["ms_per_iter"] = span / (len(done) - 1) * 1e3
                    pixels_bytes = 3 * w * h * 4
                    if self.cuda and total:
                        projected = torch.cuda.max_memory_allocated() + 2 * history * pixels_bytes
                        row["projected_full_lbfgs_gib"] = round(projected / GIB, 3)
                        row["full_job_fits"] = "yes" if projected < total else "no"
                        if projected < total:
                            summary[precision]["largest_full_job"] = size
                    summary[precision]["largest_ran"] = size
                    last_seconds[precision] = (size, wall)
                except Exception as exc:
                    row["seconds"] = time.perf_counter() - started
                    row["result"] = ("OOM: " if is_oom(exc) else "error: ") + short(exc)[:120]
                    summary[precision]["first_failure"] = size
                    stopped.add(precision)
                self.fresh_memory()
                print(f"fit {size} px {precision}: {row['result']} {self.peaks()}", flush=True)
                self.report.add("max_fit", row)
        # sizes measured in per_size count for the full-job projection too
        for r in self.report.data.get("per_size", []):
            if "peak_alloc_gib" in r and r.get("peak_alloc_gib") is not None and total and r["precision"] in summary:
                w, h = (int(v) for v in r["px"].split("x"))
                projected = r["peak_alloc_gib"] * GIB + 2 * StyleParams().lbfgs_history * 3 * w * h * 4
                best = summary[r["precision"]]["largest_full_job"]
                if projected < total and (best is None or r["size"] > best):
                    summary[r["precision"]]["largest_full_job"] = r["size"]
        self.report.save()


def environment(device: torch.device) -> dict[str, Any]:
    """What the figures depend on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env: dict[str, Any] = {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn_benchmark_at_start": torch.backends.cudnn.benchmark,
        }
        for label, obj in (
            ("fp32_precision_matmul", getattr(torch.backends.cuda, "matmul", None)),
            ("fp32_precision_cudnn_conv", getattr(torch.backends.cudnn, "conv", None)),
        ):
            if obj is not None and hasattr(obj, "fp32_precision"):
                env[label] = obj.fp32_precision
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / GIB, 1),
            sm_count=props.multi_processor_count,
            capability=f"{props.major}.{props.minor}",
        )
        env["driver"] = _command(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    else:
        env.update(gpu="none (CPU run)", driver=None)
    env["commit"] = _command(["git", "rev-parse", "--short", "HEAD"])
    return env


def _command(argv: list[str]) -> str | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


FLOP_CONVENTION = (
    "VGG convolutions only, 2·Cin·Cout·kh·kw·Hout·Wout per conv layer up to the deepest used layer (conv5_1), "
    "from the layer shapes; one evaluation = forward + input-gradient backward = 2 × forward (weights are frozen, "
    "so no weight gradient is computed; counting backward as 2 × forward would give 1.5× the TFLOP/s shown). "
    "Grams, ReLU, pooling and losses are not counted."
)


def record(path: Path) -> None:
    """Append a finished run's tables (its gpu.json) to bench/RESULTS.md."""
    data = json.loads(path.read_text())
    title = f"GPU benchmark: engine on {data.get('env', {}).get('gpu', data.get('device'))}"
    machine = f"Machine: {data.get('env', {}).get('gpu')}, torch {data.get('env', {}).get('torch')}"
    append_result(title, data.get("command", "python -m bench.gpu"), [machine, "", *render(data)])
    print(f"appended {path} to bench/RESULTS.md")


SECTIONS = ("matmul ceiling", "job", "per size", "seed race", "variants", "gram cache", "max fit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few iterations: a smoke test")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--out", default=os.environ.get("OUT") or "bench/out", help="folder for gpu.json/gpu.md")
    parser.add_argument("--budget", type=float, help="seconds for all measurements (default 390; quick 150)")
    parser.add_argument("--record", type=Path, help="append this gpu.json to bench/RESULTS.md and exit")
    parser.add_argument(
        "--sections", help=f"comma-separated, of: {', '.join(SECTIONS)} (default all; 'seed race' as seed_race)"
    )
    args = parser.parse_args()
    if args.record:
        record(args.record)
        return
    chosen = set(SECTIONS) if not args.sections else {name.replace("_", " ") for name in args.sections.split(",")}
    if unknown := chosen - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    plan = QUICK if args.quick else FULL
    if args.budget:
        plan = dataclasses.replace(plan, budget_s=args.budget)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device here; use --device cpu (with --quick) to smoke-test the script")
    command = "python -m bench.gpu " + " ".join(sys.argv[1:])
    report = Report(
        Path(args.out),
        {
            "_t0": time.perf_counter(),
            "status": "running",
            "command": command.strip(),
            "device": str(device),
            "quick": args.quick,
            "started_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "plan": dataclasses.asdict(plan),
            "flop_convention": FLOP_CONVENTION,
            "sections": {},
            "errors": [],
        },
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # timeout(1): still mark the files as cut short
    clock = Clock(plan.budget_s)
    try:
        report.data["env"] = environment(device)
        report.save()
        print(json.dumps(report.data["env"]), flush=True)
        bench = Bench(device, plan, report, clock)
        report.data["env"]["bf16"] = bench.bf16_note
        report.data["env"]["engine_has_precision"] = bench.has_precision
        for name, section in (
            ("matmul ceiling", bench.matmul_ceiling),
            ("job", bench.job),
            ("per size", bench.per_size),
            ("seed race", lambda: gpu_variants.seed_race(bench)),
            ("variants", lambda: gpu_variants.variants(bench)),
            ("gram cache", bench.gram_cache),
            ("max fit", bench.max_fit),
        ):
            if name not in chosen:
                continue
            started = time.perf_counter()
            note = "done"
            try:
                section()
            except Exception as exc:
                note = f"failed: {short(exc)}"
                report.data["errors"].append(f"{name}: {short(exc)}")
                print(f"section {name} {note}", flush=True)
            if name == "job":
                report.data["env"]["cudnn_benchmark_in_engine"] = torch.backends.cudnn.benchmark
            report.data["sections"][name] = {"seconds": time.perf_counter() - started, "note": note}
            report.save()
        report.data["status"] = "complete"
    except BaseException as exc:  # SystemExit from SIGTERM, KeyboardInterrupt, a crash: keep what we have
        report.data["status"] = f"interrupted ({short(exc)})"
        raise
    finally:
        report.save()
        print("\n".join(render({k: v for k, v in report.data.items() if not k.startswith("_")})), flush=True)
    print(f"wrote {report.out / 'gpu.json'} and {report.out / 'gpu.md'}", flush=True)
    if device.type == "cuda" and not args.quick:
        append_result(
            f"GPU benchmark: engine on {report.data['env'].get('gpu')}",
            command.strip(),
            [machine_line(), "", *render({k: v for k, v in report.data.items() if not k.startswith("_")})],
        )
        print("appended the tables to bench/RESULTS.md (on the GPU machine's copy: use --record locally)", flush=True)


if __name__ == "__main__":
    main()
