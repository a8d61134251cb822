"""The same job through `impasto up`'s embedded stack: SQLite, filesystem broker, local files."""

from __future__ import annotations

import stat
from pathlib import Path

from impasto.cli.stack import EmbeddedStack
from tests.e2e.conftest import API_KEYS, free_port
from tests.e2e.test_pipeline import SMALL_JOB, check_finished_job, history, poll, submit


def test_job_runs_through_the_embedded_stack(tmp_path: Path, samples: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`impasto up` needs nothing running, and goes through the same task, SQL and storage code."""
    for name in ("IMPASTO_DATABASE_URL", "IMPASTO_BROKER_URL", "IMPASTO_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMPASTO_PROGRESS_INTERVAL_S", "0.2")
    monkeypatch.setenv("IMPASTO_DEVICE", "cpu")
    with EmbeddedStack(tmp_path / "data", free_port(), quiet=True) as stack:
        assert stack.api_key, "impasto up makes a local key"
        API_KEYS[stack.url] = stack.api_key
        job = submit(stack.url, samples, SMALL_JOB)
        final, iterations = poll(stack.url, job["id"], ("succeeded", "failed", "canceled"))
        assert final["status"] == "succeeded", final
        assert iterations == sorted(iterations)
        check_finished_job(stack.url, final, samples)
    database = f"sqlite:///{tmp_path / 'data' / 'impasto.sqlite3'}"
    assert history(database, job["id"]) == ["queued", "running", "succeeded"]
    assert (tmp_path / "data" / "storage" / "jobs" / job["id"] / "final.png").is_file()
    assert_owner_only(tmp_path / "data")


def assert_owner_only(data_dir: Path) -> None:
    """Every folder `impasto up` made is 0700 and every file 0600: no other user reads the key,
    the database or the images."""
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in [data_dir, *data_dir.rglob("*")]}
    assert {"impasto.sqlite3", "local-api-key", "storage", "broker", "logs"} <= {p.name for p in modes}
    assert any(path.name == "final.png" for path in modes) and any(path.suffix == ".log" for path in modes)
    wrong = {str(path): oct(mode) for path, mode in modes.items() if mode != (0o700 if path.is_dir() else 0o600)}
    assert not wrong
