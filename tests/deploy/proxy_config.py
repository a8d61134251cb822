"""The shipped nginx config (deploy/nginx/nginx.conf) as the tests run it: the real binary, and the
file with only what an unprivileged run on loopback needs changed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "deploy" / "nginx" / "nginx.conf"
# Where deploy/local/ensure-proxy.sh puts it (Debian's nginx-light); /usr/sbin is not on every PATH.
NGINX_PATHS = ["/usr/sbin/nginx", "/usr/bin/nginx"]
# What the shipped file listens on and proxies to (the pod's or container's network namespace).
SHIPPED_LISTEN = "listen 8080 "
SHIPPED_UPSTREAM = "server 127.0.0.1:8000;"


def shipped_directives(name: str, config: str | None = None) -> list[str]:
    """The arguments of each `name ...;` in the shipped config (or in `config`), in file order."""
    text = SHIPPED_CONFIG.read_text() if config is None else config
    return re.findall(rf"^\s*{re.escape(name)}\s+([^;]*);", text, re.M)


def seconds(value: str) -> float:
    """An nginx time ("10s", "90s", "1h", "500ms") in seconds."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", value.strip())
    assert match is not None, value
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def nginx_binary() -> str:
    """The nginx binary, or a skip saying how to get it."""
    found = shutil.which("nginx") or next((p for p in NGINX_PATHS if Path(p).exists()), None)
    if found is None:
        pytest.skip("nginx is not installed and deploy/local/ensure-proxy.sh could not install it (no apt or sudo)")
    return found


def local_proxy_config(listen_port: int, api_port: int, run_dir: Path) -> str:
    """The shipped config on 127.0.0.1:listen_port in front of 127.0.0.1:api_port, its files in run_dir."""
    config = SHIPPED_CONFIG.read_text()
    temp_paths = "".join(
        f"    {kind}_temp_path {run_dir / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    replacements = {
        SHIPPED_LISTEN: f"listen 127.0.0.1:{listen_port} ",
        SHIPPED_UPSTREAM: f"server 127.0.0.1:{api_port};",
        "http {\n": f"http {{\n{temp_paths}    access_log {run_dir / 'access.log'};\n",
    }
    for old, new in replacements.items():
        assert config.count(old) == 1, f"the shipped config changed shape: {old!r} is not there once"
        config = config.replace(old, new)
    return config


def nginx_command(nginx: str, config_path: Path, run_dir: Path) -> list[str]:
    """nginx in the foreground, unprivileged: pid file and error log in run_dir."""
    directives = f"daemon off; pid {run_dir / 'nginx.pid'}; error_log {run_dir / 'error.log'} warn;"
    return [nginx, "-p", str(run_dir), "-e", str(run_dir / "error.log"), "-c", str(config_path), "-g", directives]
