"""The client package: importable as `from impasto import Client` with requests only, and packaged."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from setuptools import find_packages

from tests.e2e.conftest import ROOT

SERVER_SIDE = ("flask", "torch", "torchvision", "sqlalchemy", "pydantic", "celery", "api", "worker", "shared")


def test_import_needs_no_server_side_package() -> None:
    """Importing the client loads none of the API's or the worker's packages."""
    code = "import sys; from impasto import Client, ImpastoError; print(' '.join(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    loaded = {name.split(".")[0] for name in run.stdout.split()}
    assert "requests" in loaded and not loaded & set(SERVER_SIDE), sorted(loaded & set(SERVER_SIDE))


def test_the_package_is_installed_with_the_rest() -> None:
    """pyproject's package list takes impasto/ (so `pip install impasto` gives `from impasto import Client`)."""
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(str(ROOT), include=include)  # what setuptools' packages.find does with it
    assert "impasto" in packages and {"api", "shared", "worker"} <= set(packages)
