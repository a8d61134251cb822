"""ARCHITECTURE.md's import rules, read from every module's import statements (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ("impasto.api", "impasto.worker", "impasto.shared", "impasto.cli", "impasto.background")
OLD_TOP_LEVEL = ("api", "worker", "shared")  # before the namespace; an import of these finds nothing installed
ENGINE_MAY_IMPORT = ("torch", "torchvision", "PIL", "impasto.worker.engine")

# folder -> parts of the service it must not import
FORBIDDEN = {
    "api": ("impasto.worker", "impasto.cli", "impasto.background", "torch", "torchvision"),
    "shared": ("impasto.api", "impasto.worker", "impasto.cli", "impasto.background"),
    "impasto/background": ("impasto.api", "impasto.worker", "impasto.cli"),
    "worker": ("impasto.api", "impasto.cli", "impasto.background"),
    "impasto/cli": ("impasto.api",),  # it starts the API by module name (gunicorn's app string)
}


def imported_modules(path: Path) -> list[str]:
    """Every module an `import` or `from ... import` in the file names (relative imports resolved)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def within(module: str, parts: tuple[str, ...]) -> bool:
    """Whether module is one of parts or inside one of them."""
    return any(module == part or module.startswith(part + ".") for part in parts)


def python_files(folder: str) -> list[Path]:
    """The folder's modules, migrations included."""
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_each_part_imports_only_what_it_may(folder: str) -> None:
    """api, shared, background, worker and cli keep ARCHITECTURE.md's arrows."""
    breaches = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in python_files(folder)
        for module in imported_modules(path)
        if within(module, FORBIDDEN[folder])
    ]
    assert not breaches, breaches


def test_the_engine_is_pure_pytorch() -> None:
    """worker/engine imports torch, torchvision, Pillow, itself and the standard library, nothing else."""
    breaches = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in python_files("worker/engine")
        for module in imported_modules(path)
        if not within(module, ENGINE_MAY_IMPORT) and module.split(".")[0] not in sys.stdlib_module_names
    ]
    assert not breaches, breaches


def test_the_client_imports_no_part_of_the_service() -> None:
    """impasto/*.py (the public client) stands alone: requests and the standard library."""
    breaches = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "impasto").glob("*.py"))
        for module in imported_modules(path)
        if within(module, SERVICE)
    ]
    assert not breaches, breaches


@pytest.mark.parametrize("folder", ["api", "worker", "shared", "impasto", "tests", "bench"])
def test_nothing_imports_the_old_top_level_names(folder: str) -> None:
    """`import api` would find nothing in an installed wheel: every import goes through impasto."""
    breaches = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in python_files(folder)
        for module in imported_modules(path)
        if within(module, OLD_TOP_LEVEL)
    ]
    assert not breaches, breaches


# What bench/gpu.sh runs on a lent GPU machine, whose image has torch, Pillow, numpy and requests but
# none of the service's own dependencies (and no network to install them).
GPU_BENCHMARKS = ("bench.gpu", "bench.multiscale", "bench.gpu_profile", "bench.lbfgs_direction")
NOT_ON_THE_GPU_IMAGE = (
    "sqlalchemy", "alembic", "celery", "kombu", "redis", "pydantic", "pydantic_settings", "flask", "psycopg",
)  # fmt: skip
_BLOCKING_IMPORT = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("not on the GPU image: " + name)
sys.meta_path.insert(0, Absent())
for module in {modules!r}:
    __import__(module)
"""


def test_the_gpu_benchmarks_need_only_the_gpu_images_packages() -> None:
    """bench/gpu.sh's scripts import (transitively) none of the service's database, queue or settings
    packages (png_bytes once lived beside the worker's SQL callbacks, and bench.multiscale pulled in
    SQLAlchemy through it)."""
    code = _BLOCKING_IMPORT.format(blocked=set(NOT_ON_THE_GPU_IMAGE), modules=GPU_BENCHMARKS)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
