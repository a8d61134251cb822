"""shared/jobs.py and shared/job_records.py are the only writers of job rows: no other module
builds an UPDATE, INSERT or DELETE of jobs, or a new Job row (migrations aside)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRITERS = {ROOT / "shared" / "jobs.py", ROOT / "shared" / "job_records.py"}
STATEMENTS = {"update", "insert", "delete"}


def row_writes(path: Path) -> list[str]:
    """`update(Job)`, `insert(Job)`, `delete(Job)` and `Job(...)` (the SQL model's) in one module."""
    tree = ast.parse(path.read_text(), str(path))
    sql_job = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "impasto.shared.models"
        and any(a.name == "Job" for a in node.names)
        for node in ast.walk(tree)
    )
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not sql_job:
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        first = node.args[0] if node.args else None
        if name in STATEMENTS and isinstance(first, ast.Name) and first.id == "Job":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}(Job)")
        elif isinstance(node.func, ast.Name) and name == "Job":  # not schemas.Job, the API's JSON model
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} Job(...)")
    return found


def test_only_the_jobs_modules_write_job_rows() -> None:
    """Every job-row write outside the two modules is a breach."""
    modules = [
        path
        for folder in ("api", "worker", "shared", "impasto", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in WRITERS and "migrations" not in path.parts
    ]
    breaches = [write for path in modules for write in row_writes(path)]
    assert not breaches, breaches


def test_the_check_sees_a_write() -> None:
    """The scan finds the writes the jobs module itself makes (so an empty result above means something)."""
    assert any("update(Job)" in write for write in row_writes(ROOT / "shared" / "jobs.py"))
    assert any("Job(...)" in write for write in row_writes(ROOT / "shared" / "jobs.py"))
