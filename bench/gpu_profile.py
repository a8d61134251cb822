"""Benchmark: where an engine iteration's time goes on a GPU (torch.profiler), for bench/gpu.sh.

    python -m bench.gpu_profile [--size 512] [--iterations 40] [--device cuda] [--out DIR]

bench.gpu found, on an H200 at 512 px, 15.4 ms per L-BFGS iteration in stylize against 6.15 ms
for one forward+backward of the objective alone, at 1.00 evaluations per iteration: more than
half of an iteration is outside the network. This runs stylize() with default parameters
(after an untimed warm-up run at the same size, so cuDNN's autotune is done) under
torch.profiler for --iterations iterations and prints, per iteration:
- wall ms (synchronised, between the first and last on_progress);
- the kernels' device time, kernel launches, cudaMemcpyAsync calls and tensor-to-Python scalars
  (aten::_local_scalar_dense: .item() and the like, each a synchronisation on a GPU);
- the host's time in the ten operators with the most self CPU time, and the ten kernels with the
  most device time.
If the wall time is well above the GPU's busy time, the loop is bound by the host (launches,
synchronisations), not by the device.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench.delivered_gap import CONTENT, STYLE
from impasto.worker.engine import Callbacks, Losses, StyleParams, stylize


class Stamps(Callbacks):
    """Synchronised time of every on_progress."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times: list[float] = []

    def on_progress(self, iteration: int, losses: Losses) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to OUT/profile.txt")
    args = parser.parse_args()
    device = torch.device(args.device)
    params = StyleParams(size=args.size, iterations=args.iterations)
    stylize(CONTENT, [STYLE], params, device=str(device))  # warm-up: model load, cuDNN autotune
    stamps = Stamps(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        stylize(CONTENT, [STYLE], params, stamps, device=str(device))
    iterations = len(stamps.times) - 1
    wall_ms = (stamps.times[-1] - stamps.times[0]) * 1e3 / iterations
    events = prof.key_averages()
    runs = iterations + 1  # the profiled stylize ran iterations + 1 iterations, and its setup

    def per_run(names: tuple[str, ...]) -> float:
        return sum(e.count for e in events if e.key in names) / runs

    # As torch's own table totals it: the device time of the kernels, attributed to the host operators
    # that launched them (the device-side events include annotation ranges such as LBFGS.step's).
    busy_ms = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CPU) / 1e3
    launches = per_run(("cudaLaunchKernel", "cudaLaunchKernelExC"))
    copies = per_run(("cudaMemcpyAsync",))
    scalars = per_run(("aten::_local_scalar_dense",))  # .item(), float(t), a tensor as a Python number
    by_cpu = events.table(sort_by="self_cpu_time_total", row_limit=12)
    by_gpu = events.table(sort_by="self_device_time_total", row_limit=12) if device.type == "cuda" else ""
    lines = [
        f"gpu_profile {args.size} px, {iterations} iterations on {device}: wall {wall_ms:.2f} ms/iteration "
        f"(under the profiler); kernels' device time {busy_ms / runs:.2f} ms/iteration; per iteration "
        f"{launches:.0f} kernel launches, {copies:.0f} cudaMemcpyAsync, {scalars:.0f} tensor-to-Python scalars "
        "(each a host-device synchronisation on a GPU); all per iteration = the whole profiled run "
        "(setup included) / (iterations + 1)",
        "",
        "By self CPU time (the whole profiled run):",
        by_cpu,
        "By self device time:",
        by_gpu,
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "profile.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
