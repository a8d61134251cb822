"""The S3 backend against a real S3-compatible server on loopback (moto's standalone server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from impasto.shared.s3_storage import S3Storage
from impasto.shared.storage import LocalStorage, Storage, make_storage, output_key, snapshot_key
from tests.e2e.conftest import free_port

BUCKET = "impasto-test"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's server in a thread on a free loopback port, with a bucket."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        client.close()
        yield endpoint
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3_endpoint: str) -> str:
    """Credentials as the usual AWS variables, as a deployment sets them."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


def test_make_storage_picks_s3_and_round_trips(aws_env: str) -> None:
    """put, get, exists and delete_prefix behave as LocalStorage's do."""
    storage = make_storage(f"s3://{BUCKET}/round-trip", s3_endpoint_url=aws_env)
    assert isinstance(storage, S3Storage)
    storage.put(output_key("job-a"), b"final")
    storage.put(snapshot_key("job-a", 5), b"snap 5")
    storage.put(snapshot_key("job-a", 10), b"snap 10")
    storage.put(output_key("job-ab"), b"neighbour")  # shares a prefix string, not a folder
    assert storage.get(output_key("job-a")) == b"final"
    assert storage.exists(snapshot_key("job-a", 5)) and not storage.exists(snapshot_key("job-a", 15))
    storage.put(output_key("job-a"), b"final, again")  # overwrite
    assert storage.get(output_key("job-a")) == b"final, again"
    stream, size = storage.open(output_key("job-a"))
    with stream:
        assert (stream.read(5), stream.read(), size) == (b"final", b", again", 12)
    with pytest.raises(KeyError):
        storage.open(output_key("job-c"))
    assert storage.delete_prefix("jobs/job-a/") == 3
    assert not storage.exists(output_key("job-a")) and storage.exists(output_key("job-ab"))
    assert storage.delete_prefix("jobs/job-a/") == 0
    with pytest.raises(KeyError):
        storage.get(output_key("job-a"))


def test_objects_live_under_the_prefix(aws_env: str) -> None:
    """s3://bucket/prefix keeps every key under prefix/, so deployments can share a bucket."""
    storage = make_storage(f"s3://{BUCKET}/deploy-a/", s3_endpoint_url=aws_env)
    storage.put("uploads/abc.jpg", b"jpeg")
    client = boto3.client("s3", endpoint_url=aws_env)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="deploy-a/")["Contents"]]
    client.close()
    assert keys == ["deploy-a/uploads/abc.jpg"]


def test_endpoint_comes_from_the_setting(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """make_storage(url) alone honours IMPASTO_S3_ENDPOINT_URL (the API and worker pass only the URL)."""
    monkeypatch.setenv("IMPASTO_S3_ENDPOINT_URL", aws_env)
    storage = make_storage(f"s3://{BUCKET}/from-setting")
    storage.put("a/b", b"1")
    assert storage.get("a/b") == b"1"


def test_deleting_many_objects_takes_several_batches(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """delete_prefix pages through listings and deletes in batches."""
    monkeypatch.setattr("impasto.shared.s3_storage.DELETE_BATCH", 7)
    storage = make_storage(f"s3://{BUCKET}/many", s3_endpoint_url=aws_env)
    for index in range(20):
        storage.put(snapshot_key("job-m", index), b"x")
    assert storage.delete_prefix("jobs/job-m") == 20
    assert not storage.exists(snapshot_key("job-m", 0))


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../up", "jobs/../../x", "a/."])
def test_bad_keys_are_refused(aws_env: str, key: str) -> None:
    """Keys that would climb out of the prefix or are empty raise KeyError, as LocalStorage's do."""
    storage: Storage = make_storage(f"s3://{BUCKET}/keys", s3_endpoint_url=aws_env)
    with pytest.raises(KeyError):
        storage.put(key, b"x")


@pytest.mark.parametrize("url", ["s3://", "ftp://host/x", "bucket/x"])
def test_unsupported_urls(url: str) -> None:
    """Only file:// and s3://bucket are storage URLs."""
    with pytest.raises(ValueError):
        make_storage(url)


def test_local_storage_is_unchanged(tmp_path: Path) -> None:
    """file:// still gives LocalStorage."""
    assert isinstance(make_storage(f"file://{tmp_path}"), LocalStorage)


def test_local_storage_opens_a_stream_with_its_length(tmp_path: Path) -> None:
    """LocalStorage.open: the file's bytes as a stream and its size; KeyError for a missing key or one outside."""
    storage = LocalStorage(tmp_path)
    storage.put(output_key("job-a"), b"final bytes")
    stream, size = storage.open(output_key("job-a"))
    with stream:
        assert (stream.read(), size) == (b"final bytes", 11)
    for key in (output_key("job-b"), "../outside.png"):
        with pytest.raises(KeyError):
            storage.open(key)
