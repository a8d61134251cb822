"""README's Python example runs as written, against the real API."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.client.conftest import Stack
from tests.e2e.conftest import ROOT


def readme_example() -> str:
    """The python block of README's "From Python" section."""
    section = (ROOT / "README.md").read_text().split("### From Python", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "README has no python block under From Python"
    return found.group(1)


def test_readme_example_runs_as_written(stack: Stack, samples: Path, tmp_path: Path) -> None:
    """From a folder with the samples where the repository has them, with IMPASTO_URL and IMPASTO_API_KEY set."""
    shutil.copytree(samples, tmp_path / "shared" / "samples")
    env = {**os.environ, "IMPASTO_URL": stack.url, "IMPASTO_API_KEY": stack.api_key, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", readme_example()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    assert "succeeded" in run.stdout and "404 not_found job not found" in run.stdout, run.stdout
    for name in ("painting.png", "painting-10.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
