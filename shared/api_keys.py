"""API keys: made once and shown once, stored only as a hash, found by their public id.

A key reads `imp_<id>_<secret>`: `id` is 12 hex characters, not secret, the row's primary key;
`secret` is 32 random bytes (secrets.token_urlsafe). The whole key is hashed with SHA-256.
A fast, unsalted hash is right here, unlike for passwords: a key carries 256 bits of
randomness, so no amount of hashing speed makes guessing it feasible, and there are no
dictionary words or reused keys for salt and key stretching to defend. A slow hash would
only add its cost to every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import BindParameter, ColumnElement, exists, select
from sqlalchemy.orm import Session

from impasto.shared.database import make_engine, make_sessionmaker
from impasto.shared.models import ApiKey, utcnow
from impasto.shared.settings import Settings

KEY_PREFIX = "imp_"
ID_HEX_LENGTH = 12  # 48 bits: ids are unique by primary key, and a clash is simply retried
SECRET_BYTES = 32
KEY_PATTERN = re.compile(rf"{KEY_PREFIX}(?P<id>[0-9a-f]{{{ID_HEX_LENGTH}}})_(?P<secret>[A-Za-z0-9_-]{{43}})")
MIN_REFERENCE_LENGTH = 4  # shortest id prefix `keys revoke` accepts


class KeyCheck(StrEnum):
    """What checking a presented key found."""

    VALID = "valid"
    INVALID = "invalid"  # malformed, unknown id, or wrong secret: the client is told no more
    REVOKED = "revoked"


@dataclass(frozen=True)
class KeyResult:
    """The outcome of checking a key, with the key's id when it names a real one."""

    check: KeyCheck
    key_id: str | None = None


def hash_key(key: str) -> str:
    """SHA-256 hex of the whole key (see the module docstring for why this is enough)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh (id, key) pair; the key is shown to its owner once and never stored."""
    key_id = secrets.token_hex(ID_HEX_LENGTH // 2)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


def create_key(session: Session, name: str) -> tuple[ApiKey, str]:
    """Insert a new key named `name` and commit; returns the row and the plaintext key."""
    while True:
        key_id, key = new_key()
        if session.get(ApiKey, key_id) is None:  # 48 random bits: a clash is rare, but cheap to avoid
            break
    record = ApiKey(id=key_id, name=name, secret_hash=hash_key(key), created_at=utcnow())
    session.add(record)
    session.commit()
    return record, key


def check_key(session: Session, presented: str, key_hash: str | None = None) -> KeyResult:
    """Look a presented key up by its id and compare hashes in constant time (`key_hash`: its hash, if known)."""
    match = KEY_PATTERN.fullmatch(presented)
    if match is None:
        return KeyResult(KeyCheck.INVALID)
    record = session.get(ApiKey, match["id"])
    if record is None or not hmac.compare_digest(record.secret_hash, key_hash or hash_key(presented)):
        return KeyResult(KeyCheck.INVALID)
    if record.revoked_at is not None:
        return KeyResult(KeyCheck.REVOKED, record.id)
    return KeyResult(KeyCheck.VALID, record.id)


def key_is_active(session: Session, key_id: str) -> bool:
    """True while the key with this id exists and is not revoked (a primary-key lookup)."""
    record = session.get(ApiKey, key_id)
    return record is not None and record.revoked_at is None


def key_is_active_clause(key_id: str | BindParameter[str]) -> ColumnElement[bool]:
    """A SQL condition true while key `key_id` exists and is not revoked, to add to a key's own query."""
    return exists().where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))


class ValidKeyCache:
    """Hashes of keys found valid in the last `ttl_s` seconds, with their ids: one lookup per key per period.

    Process-local, so a revocation reaches every process when its entries expire, at most `ttl_s`
    after the lookup that made them began. Entries are looked up by the key's SHA-256, never the key:
    the dict's non-constant-time lookup can only tell a prober about hashes of keys it sent.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> str | None:
        """The id of the key with this hash if it was valid less than ttl_s ago."""
        entry = self._entries.get(key_hash)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, key_hash: str, key_id: str, checked_at: float) -> None:
        """Remember a valid key; `checked_at` (time.monotonic) is taken before the lookup began."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:  # bounded: expired entries go first, else all
                now = time.monotonic()
                self._entries = {h: e for h, e in self._entries.items() if e[1] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries = {}
            self._entries[key_hash] = (key_id, checked_at + self.ttl_s)

    def forget(self, key_id: str) -> None:
        """Drop every entry of key `key_id` (this process found it revoked)."""
        with self._lock:
            self._entries = {h: e for h, e in self._entries.items() if e[0] != key_id}


def find_key_by_reference(session: Session, reference: str) -> ApiKey:
    """The one key an id, an id prefix, `imp_<id>` or the whole key names; LookupError otherwise."""
    text = reference.strip().removeprefix(KEY_PREFIX).split("_", 1)[0].lower()
    if len(text) < MIN_REFERENCE_LENGTH or not re.fullmatch(r"[0-9a-f]+", text):
        raise LookupError(f"{reference!r} is not a key id (at least {MIN_REFERENCE_LENGTH} hex characters)")
    matches = list(session.scalars(select(ApiKey).where(ApiKey.id.startswith(text, autoescape=True)).limit(2)))
    if not matches:
        raise LookupError(f"no API key with id {text}")
    if len(matches) > 1:
        raise LookupError(f"{text} matches more than one key; give more of the id")
    return matches[0]


def revoke_key(session: Session, reference: str) -> tuple[ApiKey, bool]:
    """Revoke the key `reference` names and commit; its requests answer 401 from now on.

    Idempotent: the bool says whether this call revoked it (False: it already was).
    """
    record = find_key_by_reference(session, reference)
    if record.revoked_at is not None:
        return record, False
    record.revoked_at = utcnow()
    session.commit()
    return record, True


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def issue_key(settings: Settings, name: str) -> str:
    """Create a key in the configured database and return it (for scripts and tests)."""
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            return create_key(session, name)[1]
    finally:
        engine.dispose()
