"""The shipped nginx config (deploy/nginx/nginx.conf) as the tests run it: the real binary, the file
with only what an unprivileged run on loopback needs changed, and nginx running it."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import free_port

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


@contextlib.contextmanager
def running_nginx(upstream_port: int, run_dir: Path) -> Iterator[str]:
    """nginx from the shipped config in front of 127.0.0.1:upstream_port; yields its URL."""
    nginx = nginx_binary()
    run_dir.mkdir()
    listen_port = free_port()
    config_path = run_dir / "nginx.conf"
    config_path.write_text(local_proxy_config(listen_port, upstream_port, run_dir))
    with open(run_dir / "stdout.log", "wb") as log:
        process = subprocess.Popen(nginx_command(nginx, config_path, run_dir), stdout=log, stderr=subprocess.STDOUT)
    proxy_url = f"http://127.0.0.1:{listen_port}"
    try:
        wait_for(proxy_url, process, run_dir)
        yield proxy_url
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(proxy_url: str, process: subprocess.Popen[bytes], run_dir: Path) -> None:
    """Wait until /healthz answers through nginx; fail with nginx's log if it exited."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited {process.returncode}: {(run_dir / 'error.log').read_text(errors='replace')}")
        try:
            if requests.get(f"{proxy_url}/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail("nginx did not answer /healthz within 20 s")
