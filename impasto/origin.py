"""Origins (scheme, host, port): the client sends its key to the API's origin and nowhere else."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL, the port filled in; ValueError otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    # urlsplit and urllib3 (which connects) agree on these forms; a backslash is where parsers
    # part ways (one sees it as a path, another as part of the host), so such a URL is refused.
    if scheme not in DEFAULT_PORTS or not parts.hostname or "\\" in url:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    return scheme, parts.hostname.lower(), parts.port or DEFAULT_PORTS[scheme]
