"""Webhook receivers for tests, on loopback: a threaded http.server that records each POST (and,
given the secret, verifies it with the Standard Webhooks reference library, as a user's receiver
would), optionally over TLS; and a raw socket server that drips its answer one header line at a time."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    """One request the receiver got, with its raw body."""

    headers: dict[str, str]
    body: bytes
    verified: bool | None = None  # None: the receiver has no secret to verify with

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records POSTs; answers 500 to the first `fail_first` of them, 204 after (400 if verification fails)."""

    fail_first: int = 0
    secret: str | None = None  # whsec_…: verify each request with standardwebhooks.Webhook
    host: str = "127.0.0.1"
    port: int = 0
    tls: ssl.SSLContext | None = None
    url_host: str | None = None  # the host name the URL names (default: `host`)
    requests: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = None
                if receiver.secret is not None:
                    # Exactly the README's receiver: the raw body bytes and the request's headers.
                    try:
                        Webhook(receiver.secret).verify(body, headers)
                        verified = True
                    except WebhookVerificationError:
                        verified = False
                with receiver.arrived:
                    receiver.requests.append(Received(headers, body, verified))
                    failing = len(receiver.requests) <= receiver.fail_first
                    receiver.arrived.notify_all()
                self.send_response(400 if verified is False else 500 if failing else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass  # quiet test output

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if self.tls is not None else "http"
        self.url = f"{scheme}://{self.url_host or self.host}:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        """The requests once `count` have arrived; AssertionError after `timeout`."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= count, timeout), self.requests
            return list(self.requests)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@dataclass
class Held:
    """One connection to the dripping receiver: when it came and when the client let go."""

    opened: float
    closed: float | None = None


class DrippingReceiver:
    """Reads a request, then answers one header line every `drip_s` for up to `max_s`: a slow receiver."""

    def __init__(self, drip_s: float = 0.5, max_s: float = 90.0) -> None:
        self.drip_s, self.max_s = drip_s, max_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)  # accept() wakes to see `stopping` (closing does not wake it)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.held: list[Held] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            held = Held(time.monotonic())
            self.held.append(held)
            threading.Thread(target=self._drip, args=(conn, held), daemon=True).start()

    def _drip(self, conn: socket.socket, held: Held) -> None:
        with conn:
            conn.recv(65536)  # the request (small: headers and a JSON body)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                for line in range(int(self.max_s / self.drip_s)):
                    if self.stopping.wait(self.drip_s):
                        break
                    conn.sendall(f"x-drip-{line}: 1\r\n".encode())
            except OSError:
                pass  # the client hung up: what the test waits for
            held.closed = time.monotonic()

    def __enter__(self) -> DrippingReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stopping.set()
        self.thread.join()
        self.listener.close()


def self_signed_certificate(directory: Path, dns_name: str) -> tuple[Path, Path]:
    """A certificate for `dns_name` only (no IP address in it), signed by its own key; (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{dns_name}.crt", directory / f"{dns_name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def server_tls(cert: Path, key: Path, seen_names: list[str | None]) -> ssl.SSLContext:
    """A server TLS context that records the SNI name each client sends."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, server_name, _ctx: seen_names.append(server_name)  # type: ignore[assignment]
    return context
