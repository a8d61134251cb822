"""The client package: importable as `from impasto import Client` with requests only, and packaged."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.e2e.conftest import ROOT

SERVER_SIDE = ("flask", "torch", "torchvision", "sqlalchemy", "pydantic", "celery")
SERVICE_PARTS = ("impasto.api", "impasto.worker", "impasto.shared", "impasto.cli", "impasto.background")


def test_import_needs_no_server_side_package() -> None:
    """Importing the client loads none of the API's or the worker's packages."""
    code = "import sys; from impasto import Client, ImpastoError; print(' '.join(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    modules = run.stdout.split()
    loaded = {name.split(".")[0] for name in modules}
    assert "requests" in loaded and not loaded & set(SERVER_SIDE), sorted(loaded & set(SERVER_SIDE))
    inside = tuple(part + "." for part in SERVICE_PARTS)
    parts = sorted(name for name in modules if name in SERVICE_PARTS or name.startswith(inside))
    assert not parts, parts


def test_the_wheel_installs_one_top_level_name(tmp_path: Path) -> None:
    """The built wheel holds everything under `impasto`, data files included, and nothing else at the top."""
    source = tmp_path / "source"  # setuptools writes build/ beside the sources: build from a copy
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    run = subprocess.run([*build, str(source)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    (wheel,) = tmp_path.glob("impasto-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"impasto"}, top
    for expected in (
        "impasto/__init__.py",
        "impasto/client.py",
        "impasto/cli/main.py",
        "impasto/background/reconcile.py",
        "impasto/api/__init__.py",
        "impasto/api/static/index.html",
        "impasto/worker/engine/vgg.py",
        "impasto/shared/jobs.py",
        "impasto/shared/migrations/env.py",
        "impasto/shared/samples/chelsea.jpg",
    ):
        assert expected in names, expected
    assert any(n.startswith("impasto/shared/migrations/versions/0001_") for n in names)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "impasto = impasto.cli.main:main" in entry_points
