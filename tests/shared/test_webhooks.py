"""Webhook URL checks (one parser for the check and the delivery), Standard Webhooks secrets and
signatures checked with the reference library (`standardwebhooks`), and `impasto webhook-secret`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from impasto.shared.settings import Settings
from impasto.shared.webhook_signing import sign, webhook_signing_key
from impasto.shared.webhooks import WebhookRefused, WebhookUrl, check_webhook_url, is_public_address, parse_webhook_url

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_Xfepk+j3eInQI0RmvVZZgVkqaV8TXG1zGi2rngse31E="  # made by `impasto webhook-secret`


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "ftp://93.184.215.14/hook",
        "not a url",
        "http://93.184.215.14:99999/hook",
        "http://93.184.215.14:0/hook",
        # urlsplit reads the host as 8.8.8.8, urllib3 (what requests used) as 127.0.0.1
        "http://127.0.0.1:8080\\@8.8.8.8/hook",
        "http://127.0.0.1\\@8.8.8.8/hook",
        # user info, whitespace, control and non-ASCII characters: parsers disagree on them
        "http://user:password@93.184.215.14/hook",
        "http://127.0.0.1@93.184.215.14/hook",
        "http://93.184.215.14/ho ok",
        "http://93.184.215.14/hook\t",
        " http://93.184.215.14/hook",
        "http://93.184.215.14/hook\r\nX-Injected: 1",
        "http://93.184.215.14\x00.evil/hook",
        "http://exämple.com/hook",
        "http://93.184.215.14\uff0e1/hook",
        # numbers getaddrinfo reads as IPv4 (127.0.0.1) but that are not dotted quads
        "http://2130706433/hook",
        "http://127.1/hook",
        "http://0x7f.0.0.1/hook",
        "http://0177.0.0.1/hook",
        "http://[fe80::1%25eth0]/hook",
        "http://93.184.215.14%2f@127.0.0.1/hook",
    ],
)
def test_refused_urls(url: str) -> None:
    """Non-public addresses, other schemes, broken URLs and forms that parsers read differently are refused."""
    with pytest.raises(WebhookRefused):
        check_webhook_url(url, allow_private=False)


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::10.0.0.1",
        "::169.254.169.254",
        "64:ff9b::127.0.0.1",  # NAT64 well-known prefix
        "64:ff9b::10.0.0.1",
        "64:ff9b::169.254.169.254",
        "64:ff9b:1::808:808",  # NAT64 local-use prefix: wherever the operator maps it
        "64:ff9b:1:ffff::a00:1",
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "2001:0:a00:1::1",  # Teredo, server 10.0.0.1
    ],
)
def test_ipv6_forms_embedding_a_private_ipv4_are_refused(address: str) -> None:
    """Every IPv6 form that carries a private IPv4 address is refused, not only ::ffff:."""
    with pytest.raises(WebhookRefused, match="non-public"):
        check_webhook_url(f"http://[{address}]/hook", allow_private=False)


def test_public_addresses_pass() -> None:
    """Public literal addresses pass, IPv6 forms of public IPv4 ones too; loopback when the setting allows it."""
    check_webhook_url("https://93.184.215.14/hook", allow_private=False)
    check_webhook_url("http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook", allow_private=False)
    check_webhook_url("http://[64:ff9b::93.184.215.14]/hook", allow_private=False)
    check_webhook_url("http://[2002:5db8:d70e::1]/hook", allow_private=False)  # 6to4 of 93.184.215.14
    check_webhook_url("http://127.0.0.1:8080/hook", allow_private=True)
    assert not is_public_address(__import__("ipaddress").ip_address("ff0e::1"))  # multicast


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        (
            "https://Hooks.Example.com/in?a=1#frag",
            WebhookUrl("https", "hooks.example.com", 443, "hooks.example.com", "/in?a=1"),
        ),
        ("HTTP://93.184.215.14:8080", WebhookUrl("http", "93.184.215.14", 8080, "93.184.215.14:8080", "/")),
        ("http://[2606:2800::1]:81/h", WebhookUrl("http", "2606:2800::1", 81, "[2606:2800::1]:81", "/h")),
    ],
)
def test_parsed_parts_are_what_the_delivery_uses(url: str, parts: WebhookUrl) -> None:
    """The parts the delivery connects with: host (for DNS, SNI and the certificate), port, Host header, target."""
    assert parse_webhook_url(url) == parts


def signed_headers(key: bytes, body: str, webhook_id: str = "j:start:0") -> dict[str, str]:
    """The headers the webhook worker sends with `body`, signed now."""
    timestamp = int(time.time())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, webhook_id, timestamp, body),
    }


def test_signatures_verify_with_the_reference_library() -> None:
    """What we sign with a whsec_ secret verifies with standardwebhooks' Webhook(secret); a changed body,
    another secret, and the secret's raw text used as the key (the old bug) do not."""
    body = '{"a":1}'
    headers = signed_headers(webhook_signing_key(SECRET), body)
    assert Webhook(SECRET).verify(body.encode(), headers) == {"a": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b'{"a":2}', headers)
    other = "whsec_" + base64.b64encode(b"another key of thirty-two bytes!").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body.encode(), headers)
    assert webhook_signing_key(SECRET) != SECRET.encode()


def impasto(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `impasto ARGS` as a process."""
    return subprocess.run(
        [sys.executable, "-m", "impasto.cli", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=120,
    )  # fmt: skip


def test_webhook_secret_command_makes_a_secret_the_library_accepts() -> None:
    """`impasto webhook-secret` prints a fresh whsec_ secret of 32 bytes that the settings and standardwebhooks take."""
    made = [impasto("webhook-secret").stdout.strip() for _ in range(2)]
    assert made[0] != made[1]
    for secret in made:
        assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
        key = webhook_signing_key(Settings(webhook_secret=secret).webhook_secret.get_secret_value())  # type: ignore[union-attr]
        Webhook(secret).verify(b"{}", signed_headers(key, "{}"))


def test_legacy_secret_converts_to_the_same_key() -> None:
    """--from-legacy turns an old secret into the whsec_ form of the same HMAC key: old-style receivers
    (HMAC with the secret's text) and the reference library both verify what is signed with it."""
    old = "0f" * 32  # what `openssl rand -hex 32` made, as deploy/README said before
    converted = impasto("webhook-secret", "--from-legacy", stdin=old + "\n")
    assert converted.returncode == 0, converted.stderr
    secret = converted.stdout.strip()
    headers = signed_headers(webhook_signing_key(secret), '{"b":2}')
    Webhook(secret).verify(b'{"b":2}', headers)
    old_way = hmac.new(
        old.encode(), f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + b'{"b":2}', hashlib.sha256
    )
    assert headers["webhook-signature"] == "v1," + base64.b64encode(old_way.digest()).decode()
    assert impasto("webhook-secret", "--from-legacy", stdin="short\n").returncode != 0


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("0f" * 32, "impasto webhook-secret"),  # a legacy secret: refused, with the way out
        ("test-webhook-secret-that-is-long-enough", "whsec_<base64>"),
        ("whsec_Xfepk-j3eInQI0RmvVZZgVkqaV8TXG1zGi2rngse31E", "not standard base64"),  # URL-safe alphabet
        ("whsec_not base64 at all!", "not standard base64"),
        ("whsec_c2hvcnQ=", "at least 24"),
    ],
)
def test_malformed_secrets_are_refused_at_startup(secret: str, says: str) -> None:
    """The settings refuse a secret that is not whsec_<base64> of 24+ bytes, say why, and never echo it."""
    with pytest.raises(ValidationError) as refused:
        Settings(webhook_secret=secret)
    assert says in str(refused.value)
    assert secret not in str(refused.value) and secret.removeprefix("whsec_") not in str(refused.value)


def test_webhook_worker_with_a_legacy_secret_exits_with_the_reason(tmp_path: Path) -> None:
    """`impasto webhook-worker` with an old-style secret stops at once with a one-line reason, no traceback."""
    done = impasto("webhook-worker", env={"IMPASTO_WEBHOOK_SECRET": "0f" * 32, "IMPASTO_DATA_DIR": str(tmp_path)})
    assert done.returncode != 0
    assert "whsec_<base64>" in done.stderr and "impasto webhook-secret" in done.stderr
    assert "Traceback" not in done.stderr and "0f" * 32 not in done.stderr
