"""The embedded set-up's own API key: `impasto up` keeps it in a 0600 file in its 0700 data folder,
where `impasto submit`, `status` and `cancel` find it, so one machine needs no manual step.

The web page gets it through a one-time login link that `impasto up` prints (as Jupyter does):
`http://127.0.0.1:8000/#token=...`. Only the token's hash is on disk, and the first request that
presents the token consumes it; other users of the machine can read neither the key nor the hash.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from impasto.shared.api_keys import KeyCheck, check_key, create_key
from impasto.shared.database import make_engine, make_sessionmaker
from impasto.shared.settings import Settings

LOCAL_KEY_NAME = "local"
WEB_TOKEN_FILE = "web-login-token"  # in the data folder: the sha256 of the current one-time token
# What `impasto up` keeps in its data folder (SQLite and its journals, images, broker messages, logs,
# key and token); only these are made owner-only, in case the folder is one with other files in it.
DATA_ENTRIES = (
    "impasto.sqlite3", "impasto.sqlite3-journal", "impasto.sqlite3-wal", "impasto.sqlite3-shm",
    "storage", "broker", "logs", "local-api-key", WEB_TOKEN_FILE,
)  # fmt: skip


def read_local_key(path: Path) -> str | None:
    """The key in `path`, or None when there is no such file."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def write_local_key(path: Path, key: str) -> None:
    """Write the key readable by its owner only (0600), atomically."""
    write_private(path, key + "\n")


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file 0600, so the secret is never, even briefly, readable by others.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
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


def make_private(data_dir: Path) -> None:
    """The data folder 0700 and what `impasto up` keeps in it 0700 (folders) or 0600 (files)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for name in DATA_ENTRIES:
        entry = data_dir / name
        if entry.is_dir() and not entry.is_symlink():
            for folder, _folders, files in os.walk(entry):
                os.chmod(folder, 0o700)
                for file in files:
                    path = Path(folder, file)
                    if not path.is_symlink():
                        path.chmod(0o600)
        elif entry.is_file() and not entry.is_symlink():
            entry.chmod(0o600)


def web_token_path(settings: Settings) -> Path:
    """The file that holds the hash of the web page's current one-time login token."""
    return (settings.data_dir / WEB_TOKEN_FILE).resolve()


def issue_web_token(settings: Settings) -> str:
    """A new one-time login token for the web page (any earlier one stops working)."""
    token = secrets.token_urlsafe(32)
    write_private(web_token_path(settings), token_hash(token) + "\n")
    return token


def redeem_web_token(settings: Settings, token: str) -> bool:
    """True once for the current token: the request that deletes its file is the one that consumed it."""
    path = web_token_path(settings)
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        return False
    if not hmac.compare_digest(stored, token_hash(token)):
        return False
    try:
        path.unlink()  # atomic: of two requests with the same token, one unlinks, the other gets an error
    except FileNotFoundError:
        return False
    return True


def token_hash(token: str) -> str:
    """The sha256 of a token, hex (a token is 256 random bits, so no salt or slow hash is needed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
