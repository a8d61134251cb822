"""The S3-compatible storage backend: every machine of a deployment sees the same images."""

from __future__ import annotations

from typing import IO, Any, cast
from urllib.parse import urlparse

# S3's DeleteObjects takes at most this many keys per request.
DELETE_BATCH = 1000


class S3Storage:
    """Objects under `prefix` in one bucket; a PUT is atomic, so readers see old or new bytes."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _key(self, key: str) -> str:
        # The same keys LocalStorage refuses: nothing may climb out of the prefix or be empty.
        if not key or any(part in ("", ".", "..") for part in key.split("/")):
            raise KeyError(f"bad storage key {key!r}")
        return self.prefix + key

    def put(self, key: str, data: bytes) -> None:
        """Upload the bytes as one object."""
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        """Download an object; KeyError if it is absent."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise KeyError(key) from exc
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def open(self, key: str) -> tuple[IO[bytes], int]:
        """The object's body as a stream (botocore's StreamingBody) and its length; KeyError if absent."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise KeyError(key) from exc
        return cast(IO[bytes], response["Body"]), int(response["ContentLength"])

    def exists(self, key: str) -> bool:
        """HEAD the object: True if it is there."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (a folder) or the object `prefix` names."""
        stem = self._key(prefix.rstrip("/"))
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=stem):
            # `jobs/ab` must not take `jobs/abc/...` with it: only the key itself or its folder.
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"] == stem or o["Key"].startswith(stem + "/")]
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start : start + DELETE_BATCH]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)


def make_s3_storage(url: str, endpoint_url: str | None = None) -> S3Storage:
    """An S3Storage for s3://bucket/prefix; credentials and region from the usual AWS sources."""
    import boto3  # imported here: only deployments that use S3 load botocore
    from botocore.config import Config

    endpoint_url = endpoint_url or None  # an empty IMPASTO_S3_ENDPOINT_URL means AWS itself
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"unsupported storage URL {url!r}: expected s3://bucket/prefix")
    # Path-style addressing: MinIO and most self-hosted stores do not serve bucket subdomains.
    config = Config(retries={"mode": "standard"}, s3={"addressing_style": "path"} if endpoint_url else {})
    client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
    return S3Storage(client, parsed.netloc, parsed.path)
