"""nginx stands in front of the API in compose and Kubernetes, gunicorn is published nowhere, and the
shipped nginx config agrees with the app's settings and routes (nginx -t checks its syntax)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from impasto.shared.settings import get_settings
from tests.deploy.proxy_config import (
    SHIPPED_CONFIG,
    SHIPPED_LISTEN,
    SHIPPED_UPSTREAM,
    local_proxy_config,
    nginx_binary,
    nginx_command,
    seconds,
    shipped_directives,
)
from tests.deploy.test_manifests import K8S, PROXY_IMAGE, compose, containers, named_container, objects

# The location that streams Server-Sent Events, as the shipped config writes it.
EVENTS_LOCATION = re.compile(r"location ~ (\S+) \{(.*?)\n        \}", re.S)


def listen_port() -> int:
    """The port nginx listens on in the shipped config."""
    match = re.fullmatch(r"listen (\d+) ", SHIPPED_LISTEN)
    assert match is not None and SHIPPED_CONFIG.read_text().count(SHIPPED_LISTEN) == 1
    return int(match.group(1))


def upstream_port() -> int:
    """The gunicorn port nginx proxies to (127.0.0.1: the same network namespace)."""
    match = re.search(r"server 127\.0\.0\.1:(\d+);", SHIPPED_UPSTREAM)
    assert match is not None and SHIPPED_CONFIG.read_text().count(SHIPPED_UPSTREAM) == 1
    return int(match.group(1))


def test_compose_publishes_the_proxy_not_gunicorn() -> None:
    """nginx (the shipped file) shares the api's network; the only published API port is nginx's."""
    services = compose()["services"]
    proxy = services["proxy"]
    assert proxy["image"].startswith(PROXY_IMAGE) and proxy["network_mode"] == "service:api"
    assert "./nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    api = services["api"]
    command = api["command"]
    assert int(command[command.index("--port") + 1]) == upstream_port()
    assert api["ports"] == [f"{upstream_port()}:{listen_port()}"]  # host 8000 -> nginx, never -> gunicorn
    for name, service in services.items():
        for published in service.get("ports", []):
            assert not str(published).endswith(f":{upstream_port()}"), (name, published)
    assert api["environment"]["IMPASTO_TRUSTED_PROXIES"] == "1"


def test_k8s_service_reaches_the_api_only_through_its_proxy() -> None:
    """A proxy container in the API pod, mounting the shipped file; the Service targets it, not gunicorn."""
    deployment = objects("Deployment")["impasto-api"]
    proxy = named_container(deployment, "proxy")
    api = named_container(deployment, "api")
    assert proxy["image"].startswith(PROXY_IMAGE)
    (proxy_port,) = proxy["ports"]
    (api_port,) = api["ports"]
    assert proxy_port["containerPort"] == listen_port() and api_port["containerPort"] == upstream_port()
    (mount,) = proxy["volumeMounts"]
    assert mount["mountPath"] == "/etc/nginx/nginx.conf" and mount["subPath"] == "nginx.conf"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    config_map = objects("ConfigMap")[volumes[mount["name"]]["configMap"]["name"]]
    assert config_map["data"]["nginx.conf"] == SHIPPED_CONFIG.read_text(), "deploy/k8s/proxy.yaml differs"
    for service in objects("Service").values():
        for port in service["spec"]["ports"]:
            assert port["targetPort"] not in {api_port["name"], api_port["containerPort"]}, service["metadata"]
    (service_port,) = objects("Service")["impasto-api"]["spec"]["ports"]
    assert service_port["targetPort"] == proxy_port["name"]
    assert {"name": "IMPASTO_TRUSTED_PROXIES", "value": "1"} in api["env"]
    # Prometheus scrapes gunicorn's port directly (nginx refuses /metrics).
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == upstream_port()
    # Only the API pod has a proxy.
    assert [d for d in objects("Deployment").values() if any(c["name"] == "proxy" for c in containers(d))] == [
        deployment
    ]


def test_proxy_limits_match_the_settings() -> None:
    """Body limit = max_upload_bytes; read timeouts outlast Prefer: wait and the SSE heartbeat."""
    settings = get_settings()
    (body_limit,) = shipped_directives("client_max_body_size")
    assert body_limit.endswith("m") and int(body_limit[:-1]) * 1024 * 1024 == settings.max_upload_bytes
    config = SHIPPED_CONFIG.read_text()
    server_part = config[: config.index("location /")]
    (read_timeout,) = shipped_directives("proxy_read_timeout", server_part)
    assert seconds(read_timeout) > settings.prefer_wait_max_s
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout", "keepalive_timeout"):
        (value,) = shipped_directives(name)
        assert 0 < seconds(value) <= 60, (name, value)
    (limit,) = shipped_directives("limit_conn")
    assert limit.startswith("per_address ")
    assert shipped_directives("proxy_request_buffering") == ["on"] and shipped_directives("proxy_buffering")[0] == "on"


def test_proxy_streams_the_apps_event_route_unbuffered(tmp_path: Path) -> None:
    """The unbuffered location's pattern matches the app's events route, and only it."""
    from impasto.api import create_app

    app = create_app(get_settings(data_dir=tmp_path))
    try:
        rules = [rule.rule for rule in app.url_map.iter_rules()]
    finally:
        app.extensions["impasto"].close()
    (events_location,) = EVENTS_LOCATION.findall(SHIPPED_CONFIG.read_text())
    pattern, body = events_location
    as_paths = [re.sub(r"<[^>]+>", "0f3c9a", rule) for rule in rules]
    assert [path for path in as_paths if re.search(pattern, path)] == ["/v1/jobs/0f3c9a/events"]
    assert "proxy_buffering off;" in body
    (read_timeout,) = shipped_directives("proxy_read_timeout", body)
    assert seconds(read_timeout) > 4 * get_settings().sse_heartbeat_s


def test_nginx_accepts_the_shipped_config(tmp_path: Path) -> None:
    """`nginx -t` on the shipped file (as tests/e2e/test_proxy.py runs it)."""
    nginx = nginx_binary()
    config_path = tmp_path / "nginx.conf"
    config_path.write_text(local_proxy_config(18080, 18000, tmp_path))
    command = [*nginx_command(nginx, config_path, tmp_path), "-t"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_proxy_manifest_is_one_config_map() -> None:
    """deploy/k8s/proxy.yaml holds the ConfigMap the API pod mounts, nothing else."""
    docs = [d for d in yaml.safe_load_all((K8S / "proxy.yaml").read_text()) if d]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [("ConfigMap", "impasto-proxy")]
