"""One webhook POST to an address checked beforehand, within one deadline for the whole exchange.

Why not requests: it resolves the name again when it connects (a second answer may point
inside the network: DNS rebinding), and its timeout restarts with every byte received, so a
receiver that drips a header line every few seconds holds a delivery thread forever. Here the
socket is connected to a checked address (shared/webhooks.resolve_webhook_url), TLS is verified
against the URL's host name (SNI and certificate), the Host header is the URL's, and a timer
shuts the socket down at the deadline, which ends whatever read, write or TLS handshake is
waiting. The standard library's ssl and http.client do the protocol work.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence

import certifi

from impasto.shared.webhooks import WebhookAddress, WebhookUrl


class WebhookPostFailed(Exception):
    """The POST got no answer: no connection, a TLS or protocol error, or the deadline passed."""


@functools.cache
def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificate and host name checks on, trusting `ca_file` (default: certifi's bundle, as requests)."""
    return ssl.create_default_context(cafile=ca_file or certifi.where())


def post_webhook(
    url: WebhookUrl,
    addresses: Sequence[WebhookAddress],
    body: bytes,
    headers: Mapping[str, str],
    deadline_s: float,
    ca_file: str | None = None,
) -> int:
    """POST `body` to `url` at one of `addresses`; the answer's status code, or WebhookPostFailed."""
    deadline = time.monotonic() + deadline_s
    sock = _connect(addresses, deadline)
    # A second descriptor of the same socket: shutting it down ends the connection even after
    # the TLS wrapper has taken the first one over.
    guard = sock.dup()
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, args=(guard,))
    timer.daemon = True
    timer.start()
    connection = http.client.HTTPConnection(url.host, url.port)
    try:
        if url.scheme == "https":
            sock = tls_context(ca_file).wrap_socket(sock, server_hostname=url.host)
        connection.sock = sock  # http.client sends on it as is, and never connects by itself
        connection.request("POST", url.target, body=body, headers={"Host": url.host_header, **headers})
        with connection.getresponse() as response:
            return response.status  # the body is not read: only the status counts
    except (OSError, http.client.HTTPException) as exc:  # ssl.SSLError is an OSError
        if time.monotonic() >= deadline:
            raise WebhookPostFailed(f"no answer within the {deadline_s:g} s deadline") from exc
        raise WebhookPostFailed(f"{type(exc).__name__}: {exc}") from exc
    finally:
        timer.cancel()
        connection.close()
        sock.close()
        guard.close()


def _connect(addresses: Sequence[WebhookAddress], deadline: float) -> socket.socket:
    """A socket connected to the first address that answers, each try bounded by the deadline."""
    failure: OSError | None = None
    for address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(address.family, socket.SOCK_STREAM)
        sock.settimeout(left)  # also bounds each later read and write; the timer bounds their sum
        try:
            sock.connect(address.sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            failure = exc
    raise WebhookPostFailed(f"could not connect: {failure or 'deadline passed'}")


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: the delivery ended first
        sock.shutdown(socket.SHUT_RDWR)
