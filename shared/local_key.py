"""The embedded set-up's own API key: `impasto up` keeps it in a 0600 file in the data folder,
where `impasto submit`, `status` and `cancel` find it, so one machine needs no manual step."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from shared.api_keys import KeyCheck, check_key, create_key
from shared.database import make_engine, make_sessionmaker
from shared.settings import Settings

LOCAL_KEY_NAME = "local"


def read_local_key(path: Path) -> str | None:
    """The key in `path`, or None when there is no such file."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def write_local_key(path: Path, key: str) -> None:
    """Write the key readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file 0600, so the key is never, even briefly, readable by others.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        os.chmod(tmp, 0o600)  # mkstemp's mode already; said again because the file is a secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_local_key(settings: Settings) -> str:
    """The data folder's key if the database still accepts it, else a new one written there.

    Reusing the key keeps earlier jobs visible after a restart, since every job belongs to a key.
    """
    path = settings.local_api_key_path()
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            return _valid_or_new(session, path)
    finally:
        engine.dispose()


def _valid_or_new(session: Session, path: Path) -> str:
    """The key in `path` when it is valid, else a freshly created one saved to `path`."""
    key = read_local_key(path)
    if key is not None and check_key(session, key).check == KeyCheck.VALID:
        return key
    _record, key = create_key(session, LOCAL_KEY_NAME)
    write_local_key(path, key)
    return key


def client_api_key(settings: Settings) -> str | None:
    """The key a client command sends: IMPASTO_API_KEY, else the local key file, else none."""
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    return read_local_key(settings.local_api_key_path())
