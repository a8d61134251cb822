"""Appending a benchmark's table to bench/RESULTS.md with date, machine and command."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "RESULTS.md"


def machine_line() -> str:
    """One line naming the machine the figures came from."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), {device}"
    )


def append_result(title: str, command: str, lines: list[str]) -> None:
    """Append a dated section to RESULTS.md."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with RESULTS.open("a") as handle:
        handle.write(f"\n## {title} ({stamp})\n\n`{command}`\n\n" + "\n".join(lines) + "\n")
