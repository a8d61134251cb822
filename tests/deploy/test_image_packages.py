"""Each image installs from exactly what its Dockerfile copies: built here as a wheel from those
files alone, the API image has no worker (so no torch) and the worker image no API."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def copied_paths(dockerfile: Path) -> list[str]:
    """The sources of the Dockerfile's COPY lines, relative to the repo root."""
    return [name for line in re.findall(r"^COPY (.+) \S+$", dockerfile.read_text(), re.M) for name in line.split()]


@pytest.mark.parametrize(
    ("image", "has", "lacks"),
    [
        ("api", ["impasto/api/wsgi.py", "impasto/api/static/index.html", "impasto/cli/main.py"], "impasto/worker/"),
        ("worker", ["impasto/worker/engine/vgg.py", "impasto/cli/worker.py"], "impasto/api/"),
    ],
)
def test_an_image_installs_its_parts_and_no_other(image: str, has: list[str], lacks: str, tmp_path: Path) -> None:
    """The wheel built from one Dockerfile's COPY sources holds its own parts, shared, the CLI, and not the other."""
    source = tmp_path / "source"
    source.mkdir()
    for name in copied_paths(ROOT / "deploy" / f"Dockerfile.{image}"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    run = subprocess.run([*build, str(source)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    (wheel,) = tmp_path.glob("impasto-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in [*has, "impasto/shared/migrations/env.py", "impasto/background/reconcile.py"]:
        assert expected in names, expected
    assert not [name for name in names if name.startswith(lacks)]
