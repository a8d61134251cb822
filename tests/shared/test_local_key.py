"""The embedded set-up's local key: made by `impasto up`, kept 0600 in the data folder, found by
the client commands (after IMPASTO_API_KEY); the data folder made owner-only; one-time web tokens."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from flask import Flask

from impasto.cli.client_commands import client_for
from impasto.shared.api_keys import revoke_key
from impasto.shared.local_key import (
    client_api_key,
    ensure_local_key,
    issue_web_token,
    make_private,
    read_local_key,
    redeem_web_token,
    web_token_path,
)
from impasto.shared.settings import Settings
from tests.api.conftest import impasto_of, keyed_client


@pytest.fixture
def settings(app: Flask) -> Settings:
    """The test app's settings (its database and data folder)."""
    return impasto_of(app).settings


def test_up_makes_a_private_key_file_that_works(app: Flask, settings: Settings) -> None:
    """The file is owner-only and its key authenticates."""
    key = ensure_local_key(settings)
    path = settings.local_api_key_path()
    assert path == (settings.data_dir / "local-api-key").resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_local_key(path) == key
    assert keyed_client(app, key).get("/v1/jobs").status_code == 200
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".local-api-key")]  # no temp file left


def test_restarts_reuse_the_key(settings: Settings) -> None:
    """The same key across restarts, so earlier jobs stay visible."""
    assert ensure_local_key(settings) == ensure_local_key(settings)


@pytest.mark.parametrize("damage", ["revoked", "garbage", "foreign"])
def test_an_unusable_key_file_is_replaced(app: Flask, settings: Settings, damage: str) -> None:
    """A revoked key, a garbled file or another database's key gives way to a new, working key."""
    path = settings.local_api_key_path()
    old = ensure_local_key(settings)
    if damage == "revoked":
        with impasto_of(app).sessions() as session:
            revoke_key(session, old)
    elif damage == "garbage":
        path.write_text("not a key\n")
    else:
        path.write_text("imp_0123456789ab_" + "A" * 43 + "\n")
    new = ensure_local_key(settings)
    assert new != old and read_local_key(path) == new
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keyed_client(app, new).get("/v1/jobs").status_code == 200


def test_client_commands_find_the_key(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """IMPASTO_API_KEY first, then the local key file of IMPASTO_DATA_DIR, else none."""
    monkeypatch.delenv("IMPASTO_API_KEY", raising=False)
    monkeypatch.setenv("IMPASTO_DATA_DIR", str(settings.data_dir))
    assert client_api_key(Settings(data_dir=settings.data_dir)) is None
    local = ensure_local_key(settings)
    assert client_api_key(Settings(data_dir=settings.data_dir)) == local
    assert client_for(None).api_key == local
    monkeypatch.setenv("IMPASTO_API_KEY", "imp_from_the_environment")
    assert client_for(None).api_key == "imp_from_the_environment"
    assert client_for(None, "imp_explicit").api_key == "imp_explicit"


def test_settings_never_show_the_key(tmp_path: Path) -> None:
    """IMPASTO_API_KEY is a secret: repr and dumps mask it."""
    settings = Settings(data_dir=tmp_path, api_key="imp_secret_value")  # type: ignore[arg-type]
    assert "imp_secret_value" not in repr(settings)
    assert "imp_secret_value" not in settings.model_dump_json()


def test_make_private_tightens_what_up_keeps_and_nothing_else(tmp_path: Path) -> None:
    """A data folder left world-readable (an older version, a 022 umask) becomes 0700, its files 0600;
    a file `impasto up` does not keep there is left alone."""
    data = tmp_path / "data"
    (data / "storage" / "jobs" / "j").mkdir(parents=True, mode=0o755)
    for path in (data / "impasto.sqlite3", data / "storage" / "jobs" / "j" / "final.png", data / "notes.txt"):
        path.write_bytes(b"x")
        path.chmod(0o644)
    data.chmod(0o755)
    make_private(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "impasto.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "storage" / "jobs" / "j").stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "storage" / "jobs" / "j" / "final.png").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "notes.txt").stat().st_mode) == 0o644


def test_a_web_token_works_once(settings: Settings) -> None:
    """Only the newest token is good, once; the file holds its hash, never the token, owner-only."""
    older = issue_web_token(settings)
    token = issue_web_token(settings)
    assert token not in web_token_path(settings).read_text()
    assert stat.S_IMODE(web_token_path(settings).stat().st_mode) == 0o600
    assert not redeem_web_token(settings, older)
    assert not redeem_web_token(settings, token + "x")
    assert redeem_web_token(settings, token)
    assert not redeem_web_token(settings, token)
