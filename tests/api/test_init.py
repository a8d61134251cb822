"""The app factory and the WSGI entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import inspect

from impasto.api import create_app
from impasto.api.context import EXTENSION_KEY, Impasto
from impasto.shared.settings import Settings
from tests.api.conftest import impasto_of

REPO = Path(__file__).resolve().parents[2]


def test_factory_builds_once_from_settings(make_app: Callable[..., Flask]) -> None:
    """Settings reach the app; SQL, storage and Celery are built once and kept."""
    app = make_app(max_upload_bytes=12345)
    impasto = impasto_of(app)
    assert isinstance(impasto, Impasto)
    assert app.config["MAX_CONTENT_LENGTH"] == 12345
    assert impasto.settings.max_upload_bytes == 12345
    client = app.test_client()
    client.get("/healthz")
    client.get("/v1/jobs")
    assert app.extensions[EXTENSION_KEY] is impasto


def test_factory_does_not_migrate(tmp_path: Path) -> None:
    """Schema changes are the CLI's job: a new database stays empty."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    app = create_app(settings)
    try:
        assert inspect(impasto_of(app).engine).get_table_names() == []
    finally:
        impasto_of(app).close()


def test_api_never_imports_torch_or_worker(tmp_path: Path) -> None:
    """The WSGI module builds an app from IMPASTO_* without torch, torchvision or worker."""
    code = (
        "import sys, impasto.api.wsgi\n"
        "assert impasto.api.wsgi.app.extensions['impasto'].settings.data_dir.name == 'data'\n"
        "impasto.api.wsgi.app.test_client().get('/openapi.json')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'worker'))\n"
        "print(bad)\n"
    )
    env = {**os.environ, "IMPASTO_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
