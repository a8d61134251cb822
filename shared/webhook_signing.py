"""The webhook secret in Standard Webhooks form (`whsec_<base64>`) and the signature it makes
(`impasto webhook-secret`, in impasto/cli/webhooks.py, prints a new one). Standard library only: settings
imports this to refuse a malformed secret when a process starts.

The spec's receivers (e.g. the `standardwebhooks` package's `Webhook(secret)`) base64-decode what
follows `whsec_` and use those bytes as the HMAC key, so the sender must do the same. A secret
without the prefix is refused rather than guessed at: signing with its raw bytes (as impasto
did before) fails the reference libraries, and decoding it as base64 would silently change the
key under receivers that verify the old way. `impasto webhook-secret --from-legacy` turns an old
secret into the `whsec_` form of the very same key, so both kinds of receiver verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 24  # the spec's lower bound (192 bits)
NEW_KEY_BYTES = 32  # what `impasto webhook-secret` makes


def webhook_signing_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret; ValueError says what is wrong (never the secret)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(
            f"IMPASTO_WEBHOOK_SECRET must have the Standard Webhooks form {SECRET_PREFIX}<base64>: make one with "
            "`impasto webhook-secret`, or keep an older secret's key (receivers that verify with it go on "
            'working) with `printf %s "$OLD_SECRET" | impasto webhook-secret --from-legacy`'
        )
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        # Strict (validate=True): the reference libraries skip characters outside the alphabet, so a
        # lenient decode here could sign with another key than theirs. Padding may be left out.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            f"IMPASTO_WEBHOOK_SECRET: what follows {SECRET_PREFIX} is not standard base64 (A-Z a-z 0-9 + / =)"
        ) from exc
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"IMPASTO_WEBHOOK_SECRET is {len(key)} bytes after base64 decoding; at least {MIN_KEY_BYTES} are needed"
        )
    return key


def secret_for_key(key: bytes) -> str:
    """The `whsec_<base64>` secret of an HMAC key."""
    return SECRET_PREFIX + base64.b64encode(key).decode()


def sign(key: bytes, webhook_id: str, timestamp: int, body: str) -> str:
    """The Standard Webhooks signature header value: v1,base64(HMAC-SHA256(key, id.timestamp.body))."""
    message = f"{webhook_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
