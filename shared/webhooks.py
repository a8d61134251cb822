"""Webhooks: URL checks and payloads (the enqueue: shared/enqueue.py; signatures: shared/webhook_signing.py).

A URL is parsed once, with urllib3's parser, into the parts the delivery uses (impasto/background/webhook_http.py
connects to an address checked here, never to the string), and forms that parsers read
differently are refused, so what is checked is what is called.

The signing key is one server secret (IMPASTO_WEBHOOK_SECRET), not one per API key: it needs no
new key storage (a per-key secret would have to be stored recoverably, i.e. in plain text or
under yet another key), and an operator rotates it in one place. Receivers get it from the operator.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from impasto.shared.models import Job

WEBHOOK_EVENTS: tuple[str, ...] = ("start", "snapshot", "completed")
MAX_URL_LENGTH = 2000  # longer URLs are refused: no receiver needs one, and the column is for humans too

# RFC 3986's characters and nothing else: no whitespace, control characters, backslashes or
# non-ASCII, which URL parsers disagree about (urlsplit and urllib3 split "a:1\@b" differently).
URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
# What the API schema publishes of the checks below: an http(s) scheme, in any case as parsers
# take it, then URL characters (a JSON Schema pattern: the syntax Python and ECMA-262 share, no flags).
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://{URL_CHARACTERS.pattern}$"
# One webhook_events_filter value: events, comma-separated, nothing else (no spaces, no empty parts).
EVENTS_FILTER_PATTERN = "^({0})(,({0}))*$".format("|".join(WEBHOOK_EVENTS))
# A DNS name in letters, digits and hyphens (internationalised names in their xn-- form).
HOSTNAME = re.compile(r"(?=.{1,253}\.?$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?")
# A last label that is a number: getaddrinfo reads "2130706433", "127.1" or "0x7f.1" as IPv4.
NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 prefixes whose last 32 bits are an IPv4 address a gateway may forward to: IPv4-compatible
# (deprecated, ::a.b.c.d) and the NAT64 well-known prefix (RFC 6052).
IPV4_IN_LAST_32_BITS = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("64:ff9b::/96"))
# NAT64 local-use prefix (RFC 8215): the operator decides where the IPv4 sits and where it leads.
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


class WebhookRefused(ValueError):
    """A webhook URL that may not be called."""


@dataclass(frozen=True)
class WebhookTarget:
    """Where a job's events go and which ones."""

    url: str
    events: frozenset[str]


@dataclass(frozen=True)
class WebhookUrl:
    """A webhook URL parsed once: the check and the delivery both use these parts, never the string."""

    scheme: str  # http or https
    host: str  # lower-case DNS name or IP address, without brackets: what is resolved, SNI and the certificate
    port: int
    host_header: str  # the Host header: host as written (IPv6 in brackets), with the port if the URL has one
    target: str  # the request target: path and query


@dataclass(frozen=True)
class WebhookAddress:
    """One checked address of a webhook's host, as getaddrinfo gave it: what the delivery connects to."""

    family: socket.AddressFamily
    sockaddr: tuple[Any, ...]

    @property
    def ip(self) -> IPAddress:
        """The address without any IPv6 scope."""
        return ipaddress.ip_address(str(self.sockaddr[0]).split("%")[0])


def parse_webhook_url(url: str) -> WebhookUrl:
    """Parse a webhook URL with urllib3's parser, refusing every form that parsers read differently."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"longer than {MAX_URL_LENGTH} characters")
    if not URL_CHARACTERS.fullmatch(url):
        raise WebhookRefused("has characters a URL may not have (spaces, backslashes, control or non-ASCII characters)")
    try:
        parts = parse_url(url)
        other = urlsplit(url)
        other_port = other.port
    except (LocationParseError, ValueError) as exc:
        raise WebhookRefused("is not a valid URL (or its port is out of range)") from exc
    if parts.scheme not in ("http", "https") or not parts.host:
        raise WebhookRefused("must be an http:// or https:// URL with a host")
    if parts.auth is not None or "@" in (other.netloc or ""):
        raise WebhookRefused("must not carry a user name or password (user@host)")
    host = parts.host.lower()
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    # Belt and braces: the standard library's parser must see the same host and port.
    if (other.hostname or "") != bare or other_port != parts.port:
        raise WebhookRefused("is read differently by different URL parsers")
    if parts.port == 0:
        raise WebhookRefused("has an invalid port")
    if host != bare:
        try:
            ipaddress.IPv6Address(bare)  # no zone (%eth0): that names an interface of this machine
        except ValueError as exc:
            raise WebhookRefused("has an invalid IPv6 address") from exc
    elif not HOSTNAME.fullmatch(bare):
        raise WebhookRefused("has an invalid host name")
    elif NUMERIC_LABEL.fullmatch(bare.rstrip(".").rsplit(".", 1)[-1]):
        try:
            ipaddress.IPv4Address(bare)
        except ValueError as exc:
            raise WebhookRefused("has an IPv4 address not written as four decimal numbers") from exc
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host_header = f"{host}:{parts.port}" if parts.port is not None else host
    return WebhookUrl(scheme=parts.scheme, host=bare, port=port, host_header=host_header, target=parts.request_uri)


def is_public_address(address: IPAddress) -> bool:
    """True for a global unicast address, and for an IPv6 one only if every IPv4 it embeds is public too."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address in NAT64_LOCAL_USE:
            return False
        embedded = [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)] if _in_any(address, IPV4_IN_LAST_32_BITS) else []
        embedded += [address.sixtofour] if address.sixtofour is not None else []  # 6to4, 2002::/16
        embedded += list(address.teredo) if address.teredo is not None else []  # Teredo server and client
        if not all(is_public_address(v4) for v4 in embedded):
            return False
    return address.is_global and not address.is_multicast


def _in_any(address: ipaddress.IPv6Address, networks: tuple[ipaddress.IPv6Network, ...]) -> bool:
    return any(address in network for network in networks)


def resolve_webhook_url(url: WebhookUrl, allow_private: bool) -> tuple[WebhookAddress, ...]:
    """Resolve the host once and check every address; the delivery connects to these and no others."""
    try:
        infos = socket.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookRefused(f"host {url.host!r} does not resolve") from exc
    addresses = tuple(dict.fromkeys(WebhookAddress(info[0], info[4]) for info in infos))
    if not allow_private:
        # Every address: a name with one public and one private address could be sent to either.
        for address in addresses:
            if not is_public_address(address.ip):
                raise WebhookRefused(f"host {url.host!r} resolves to a non-public address ({address.ip})")
    return addresses


def check_webhook_url(url: str, allow_private: bool) -> WebhookUrl:
    """Refuse a URL that is ambiguous, not http(s), or resolves to a private, loopback or link-local address."""
    parsed = parse_webhook_url(url)
    if not allow_private:
        resolve_webhook_url(parsed, allow_private)
    return parsed


def parse_events_filter(values: list[str] | None) -> frozenset[str]:
    """The events asked for (default: all); ValueError names an unknown one."""
    if not values:
        return frozenset(WEBHOOK_EVENTS)
    unknown = sorted(set(values) - set(WEBHOOK_EVENTS))
    if unknown:
        raise ValueError(f"unknown event(s) {', '.join(unknown)}; choose from {', '.join(WEBHOOK_EVENTS)}")
    return frozenset(values)


def webhook_id(job_id: str, event: str, iteration: int) -> str:
    """The delivery's id, the same on every retry, so a receiver can drop duplicates."""
    return f"{job_id}:{event}:{iteration}"


def event_sequence(job: Job, event: str, iteration: int) -> int:
    """Where the event stands in its job's order: start 0, a snapshot its iteration, completed last.

    Derived from the event alone, not counted at send time: a retry, a copy sent again after a
    worker takeover, and events from different worker processes all get the number of their place
    in the job's life, which is what a receiver that gets them out of order needs to sort them.
    """
    if event == "start":
        return 0
    if event == "snapshot":
        return iteration  # 1..job.iterations
    return job.iterations + 1  # completed, whatever the iteration it stopped at (-1 for a failure)


def payload(job: Job, event: str, iteration: int, base_url: str) -> str:
    """The JSON body: the event type, its sequence number and a compact job (id, status, progress, error, urls)."""
    self_url = f"{base_url.rstrip('/')}/v1/jobs/{job.id}"
    urls = {"self": self_url, "events": f"{self_url}/events"}
    if job.output_key:
        urls["output"] = f"{self_url}/output"
    body: dict[str, Any] = {
        "type": event,
        "sequence": event_sequence(job, event, iteration),
        "job": {
            "id": job.id,
            "status": job.status,
            "progress": {"iteration": job.iteration, "iterations": job.iterations},
            "error": job_error(job),
            "urls": urls,
        },
    }
    if event == "snapshot":
        body["iteration"] = iteration
        body["url"] = f"{self_url}/intermediates/{iteration}"
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def job_error(job: Job) -> dict[str, str] | None:
    """The job JSON's `error` object, or None; webhooks and the event stream carry it alike."""
    return {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None


def webhook_target(job: Job) -> WebhookTarget | None:
    """The job's webhook, if it has one."""
    if not job.webhook_url:
        return None
    return WebhookTarget(job.webhook_url, parse_events_filter(job.webhook_events))
