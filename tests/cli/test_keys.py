"""`impasto keys create | list | revoke` against each database, and the key it prints at work."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from impasto.cli.main import main
from impasto.shared.api_keys import KEY_PATTERN, issue_key
from impasto.shared.settings import Settings
from tests.api.conftest import keyed_client


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose IMPASTO_DATABASE_URL is the test database."""
    monkeypatch.setenv("IMPASTO_DATABASE_URL", database_url)
    monkeypatch.setenv("IMPASTO_DATA_DIR", str(tmp_path / "cli-data"))
    return CliRunner()


def run(cli: CliRunner, *args: str) -> Result:
    """`impasto ARGS`."""
    return cli.invoke(main, list(args), catch_exceptions=False)


def test_create_prints_the_key_once_and_it_works(cli: CliRunner, app: Flask) -> None:
    """stdout is the key alone; it authenticates; `list` shows its id and name, never the key."""
    created = run(cli, "keys", "create", "--name", "ci runner")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    match = KEY_PATTERN.fullmatch(key)
    assert match is not None
    assert "not shown again" in created.stderr
    assert keyed_client(app, key).get("/v1/jobs").status_code == 200

    listed = run(cli, "keys", "list")
    assert f"imp_{match['id']}" in listed.stdout and "ci runner" in listed.stdout and "active" in listed.stdout
    assert match["secret"] not in listed.stdout


def test_revoke_by_prefix(cli: CliRunner, app: Flask) -> None:
    """Revoking by imp_<id prefix> locks the key out; a second revoke says it already was."""
    key = run(cli, "keys", "create", "--name", "temp").stdout.strip()
    client = keyed_client(app, key)
    assert client.get("/v1/jobs").status_code == 200
    revoked = run(cli, "keys", "revoke", key[:10])
    assert revoked.exit_code == 0 and "revoked key" in revoked.stdout
    assert client.get("/v1/jobs").status_code == 401
    assert "already revoked" in run(cli, "keys", "revoke", key[:10]).stdout
    assert "revoked 2" in run(cli, "keys", "list").stdout  # "revoked <date>"


@pytest.mark.parametrize("reference", ["nope", "ffffffffffff"])
def test_revoke_unknown_fails(cli: CliRunner, reference: str) -> None:
    """An id that names no key is an error exit, not a silent success."""
    result = run(cli, "keys", "revoke", reference)
    assert result.exit_code != 0
    assert "key" in result.output


def test_unmigrated_database_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No api_keys table: say to run `impasto db upgrade`."""
    monkeypatch.setenv("IMPASTO_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    monkeypatch.setenv("IMPASTO_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["keys", "list"])
    assert result.exit_code != 0 and "impasto db upgrade" in result.output


def test_issue_key_for_scripts_and_tests(database_url: str, app: Flask, tmp_path: Path) -> None:
    """impasto.shared.api_keys.issue_key(settings, name) returns a working key (what e2e tests use)."""
    key = issue_key(Settings(data_dir=tmp_path, database_url=database_url), "e2e")
    assert keyed_client(app, key).get("/v1/jobs").status_code == 200
