"""Where images live: a small interface, the local-filesystem backend, and key naming."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import urlparse


class Storage(Protocol):
    """A flat key -> bytes store; keys are '/'-separated and never come from a client."""

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, atomically: readers see the old value or the new one."""

    def get(self, key: str) -> bytes:
        """The bytes under `key`; KeyError if absent."""

    def open(self, key: str) -> tuple[IO[bytes], int]:
        """A readable stream of the bytes under `key` and their length; KeyError if absent.

        For serving large images without holding them in memory; the caller closes the stream.
        """

    def exists(self, key: str) -> bool:
        """True if `key` holds a value."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under `prefix`; returns how many."""


class LocalStorage:
    """Files under one root folder; writes go to a temp file, then rename."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise KeyError(f"bad storage key {key!r}")
        return path

    def put(self, key: str, data: bytes) -> None:
        """Write to a temp file in the same folder, fsync, then rename over the key."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        """Read the file for `key`."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    def open(self, key: str) -> tuple[IO[bytes], int]:
        """The file for `key`, open for reading, and its size (an atomic rename never shows a half file)."""
        try:
            stream = self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise KeyError(key) from exc
        return stream, os.fstat(stream.fileno()).st_size

    def exists(self, key: str) -> bool:
        """True if the file for `key` exists."""
        return self._path(key).is_file()

    def delete_prefix(self, prefix: str) -> int:
        """Remove the folder or file at `prefix`."""
        path = self._path(prefix.rstrip("/"))
        if path.is_dir():
            count = sum(1 for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path)
            return count
        if path.is_file():
            path.unlink()
            return 1
        return 0


def make_storage(url: str, s3_endpoint_url: str | None = None) -> Storage:
    """The storage backend for a URL: file:///path (local folder) or s3://bucket/prefix.

    For s3:// the endpoint is `s3_endpoint_url`, else the IMPASTO_S3_ENDPOINT_URL setting (so a
    caller that passes only the URL still honours it), else AWS's own configuration.
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(Path(parsed.path))
    if parsed.scheme == "s3":
        from impasto.shared.s3_storage import make_s3_storage  # boto3 loads only where S3 is used
        from impasto.shared.settings import get_settings

        return make_s3_storage(url, s3_endpoint_url or get_settings().s3_endpoint_url)
    raise ValueError(f"unsupported storage URL {url!r}: expected file:///path or s3://bucket/prefix")


def upload_key(data: bytes, extension: str) -> str:
    """Content-addressed key for an uploaded image: the same bytes are stored once."""
    return f"uploads/{hashlib.sha256(data).hexdigest()}.{extension}"


def job_prefix(job_id: str) -> str:
    """The folder of one job's outputs."""
    return f"jobs/{job_id}/"


def output_key(job_id: str) -> str:
    """The final image of a job."""
    return f"{job_prefix(job_id)}final.png"


def snapshot_key(job_id: str, iteration: int) -> str:
    """The snapshot (and checkpoint) of a job at an iteration."""
    return f"{job_prefix(job_id)}snapshots/{iteration:06d}.png"
