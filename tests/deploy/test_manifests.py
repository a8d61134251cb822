"""The deploy files parse, the compose file validates, the manifests name only images, ports,
queues and settings that exist in the code, and the processes that need the webhook key get it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from impasto.shared.settings import Settings, get_settings
from impasto.shared.task_names import TRANSFER_QUEUES, WEBHOOK_QUEUE

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
MANIFEST_FILES = sorted(K8S.glob("*.yaml"))
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# The subcommands that read IMPASTO_WEBHOOK_SECRET: the API refuses webhooks (422) without it, the
# webhook worker signs with it.
NEEDS_WEBHOOK_SECRET = {"api", "webhook-worker"}
# The reverse proxy in front of the API (deploy/nginx/nginx.conf): the official image.
PROXY_IMAGE = "nginx:"


def documents() -> list[dict[str, Any]]:
    """Every Kubernetes object in deploy/k8s."""
    return [doc for path in MANIFEST_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    """The objects of one kind, by name."""
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a Deployment or Job."""
    return list(workload["spec"]["template"]["spec"]["containers"])


def impasto_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers that run impasto (not the API pod's nginx)."""
    return [c for c in containers(workload) if not c["image"].startswith(PROXY_IMAGE)]


def named_container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    """One container of a workload, by name."""
    (found,) = [c for c in containers(workload) if c["name"] == name]
    return found


def compose() -> dict[str, Any]:
    """deploy/compose.yaml, parsed."""
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def strings(value: Any) -> list[str]:
    """Every string inside a parsed YAML value, keys included."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [*strings(k), *strings(v)]]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("path", [*MANIFEST_FILES, DEPLOY / "compose.yaml"], ids=lambda p: p.name)
def test_yaml_parses(path: Path) -> None:
    """Each file is YAML; each Kubernetes object has a kind, a name and the impasto namespace."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    if path.parent == K8S:
        for doc in docs:
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
            assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "impasto"


def docker_compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config -q` on the compose file, with `env` in place of any IMPASTO_* variables."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed and apt could not install it (ensure-services.sh)")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IMPASTO_")} | env
    command = ["docker-compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"]
    return subprocess.run(command, capture_output=True, text=True, env=environ)


def test_compose_file_validates() -> None:
    """`docker-compose config -q` accepts the compose file (deploy/local/ensure-services.sh installs it)."""
    done = docker_compose_config(IMPASTO_WEBHOOK_SECRET="a-test-key")
    assert done.returncode == 0, done.stderr


def test_compose_refuses_to_run_without_the_webhook_secret() -> None:
    """No default key (an empty one would sign): compose stops and says which variable to set."""
    done = docker_compose_config()
    assert done.returncode != 0 and "set IMPASTO_WEBHOOK_SECRET" in done.stderr, done.stderr


def test_compose_has_the_services_and_safe_settings() -> None:
    """api, worker (GPU), redis (AOF), postgres, flower and a one-off migrate, wired in order."""
    services = compose()["services"]
    assert {"api", "worker", "redis", "postgres", "flower", "migrate", "reconciler", "webhook-worker"} <= set(services)
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert services["migrate"]["command"] == ["impasto", "db", "upgrade"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    (device,) = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    grace = int(services["worker"]["stop_grace_period"].removesuffix("s"))
    assert grace > get_settings().shutdown_timeout_s
    assert services["worker"]["build"]["dockerfile"] == "deploy/Dockerfile.worker"
    assert {s["build"]["dockerfile"] for n, s in services.items() if s.get("image") == "impasto-api"} == {
        "deploy/Dockerfile.api"
    }


def settings_names(env: dict[str, Any]) -> set[str]:
    """IMPASTO_* names in an environment mapping."""
    return {name for name in env if name.startswith("IMPASTO_")}


def test_every_impasto_variable_is_a_setting() -> None:
    """Each IMPASTO_* name in the manifests and the compose file is a field of Settings."""
    fields = {f"IMPASTO_{name.upper()}" for name in Settings.model_fields}
    named = set(objects("ConfigMap")["impasto-config"]["data"])
    for workload in [*objects("Deployment").values(), *objects("Job").values()]:
        named |= {e["name"] for c in containers(workload) for e in c.get("env", [])}
    named |= settings_names(compose()["x-impasto-env"])
    named |= {
        n for s in compose()["services"].values() if isinstance(s.get("environment"), dict) for n in s["environment"]
    }
    impasto_names = {n for n in named if n.startswith("IMPASTO_")}
    assert impasto_names and impasto_names <= fields, impasto_names - fields
    for path in [*MANIFEST_FILES, DEPLOY / "compose.yaml", DEPLOY / "Dockerfile.api", DEPLOY / "Dockerfile.worker"]:
        mentioned = set(re.findall(r"IMPASTO_[A-Z0-9_]+", path.read_text()))
        assert mentioned <= fields, (path.name, mentioned - fields)


def test_images_are_the_ones_the_dockerfiles_build() -> None:
    """impasto-api and impasto-worker at the project's version; the worker is the only torch image."""
    version = PROJECT["version"]
    for workload in [*objects("Deployment").values(), *objects("Job").values()]:
        for one in impasto_containers(workload):
            name, _, tag = one["image"].partition(":")
            assert name in {"impasto-api", "impasto-worker"} and tag == version, one["image"]
            wants_gpu = "nvidia.com/gpu" in one.get("resources", {}).get("limits", {})
            assert (name == "impasto-worker") == wants_gpu == (one["command"][:2] == ["impasto", "worker"])
    api_dockerfile = (DEPLOY / "Dockerfile.api").read_text()
    assert "'.[api]'" in api_dockerfile and "COPY worker" not in api_dockerfile
    assert not any(d.startswith("torch") for d in [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["api"]])
    assert "'.[worker]'" in (DEPLOY / "Dockerfile.worker").read_text()


def test_worker_base_image_matches_the_torch_pin() -> None:
    """The CUDA PyTorch base carries the torch version pyproject.toml pins (else pip fetches another)."""
    pin = next(d for d in PROJECT["optional-dependencies"]["worker"] if d.startswith("torch=="))
    base = re.search(r"ARG PYTORCH_IMAGE=pytorch/pytorch:(\S+)", (DEPLOY / "Dockerfile.worker").read_text())
    assert base is not None and base.group(1).startswith(pin.removeprefix("torch==") + "-cuda")


def test_api_ports_and_probes_match_the_app(tmp_path: Path) -> None:
    """Container port = the port `impasto api` is told and the image exposes; probes hit real routes."""
    from impasto.api import create_app

    app = create_app(get_settings(data_dir=tmp_path))
    try:
        routes = {rule.rule for rule in app.url_map.iter_rules()}
    finally:
        app.extensions["impasto"].close()
    api = named_container(objects("Deployment")["impasto-api"], "api")
    (port,) = api["ports"]
    command = api["command"]
    assert command[:2] == ["impasto", "api"] and int(command[command.index("--port") + 1]) == port["containerPort"]
    assert f"EXPOSE {port['containerPort']}" in (DEPLOY / "Dockerfile.api").read_text()
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert {"/readyz", "/healthz"} <= routes


@pytest.mark.parametrize("name", ["impasto-worker", "impasto-worker-large"])
def test_workers_outlast_their_shutdown_and_have_one_gpu(name: str) -> None:
    """terminationGracePeriodSeconds above shutdown_timeout_s (default and configured); one GPU a pod."""
    worker = objects("Deployment")[name]
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    configured = float(objects("ConfigMap")["impasto-config"]["data"]["IMPASTO_SHUTDOWN_TIMEOUT_S"])
    assert grace > get_settings().shutdown_timeout_s and grace > configured
    (container,) = containers(worker)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["command"][:4] == ["impasto", "worker", "--gpus", "all"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["IMPASTO_WORKER_METRICS_PORT"]) == port


def test_keda_scales_each_pool_on_its_own_queue() -> None:
    """One ScaledObject per size class: its redis list and SQL count name the queue its pods consume."""
    deployments = objects("Deployment")
    scaled = objects("ScaledObject")
    broker = objects("ConfigMap")["impasto-config"]["data"]["IMPASTO_BROKER_URL"]
    host_port, _, database = broker.removeprefix("redis://").partition("/")
    lists = set()
    for scaled_object in scaled.values():
        target = deployments[scaled_object["spec"]["scaleTargetRef"]["name"]]
        (container,) = containers(target)
        consumed = container["command"][container["command"].index("--queues") + 1].split(",")
        triggers = {t["type"]: t for t in scaled_object["spec"]["triggers"]}
        redis_trigger = triggers["redis"]["metadata"]
        assert redis_trigger["address"] == host_port and redis_trigger["databaseIndex"] == database
        assert consumed == [redis_trigger["listName"]] and int(redis_trigger["listLength"]) >= 1
        assert f"queue = '{redis_trigger['listName']}'" in triggers["postgresql"]["metadata"]["query"]
        assert triggers["postgresql"]["authenticationRef"]["name"] in objects("TriggerAuthentication")
        lists.add(redis_trigger["listName"])
    assert lists == set(TRANSFER_QUEUES)


def test_migration_job_and_reconciler() -> None:
    """A Job that runs `impasto db upgrade`, and a reconciler Deployment."""
    (job,) = objects("Job").values()
    assert containers(job)[0]["command"] == ["impasto", "db", "upgrade"]
    (reconciler,) = containers(objects("Deployment")["impasto-reconciler"])
    assert reconciler["command"] == ["impasto", "reconcile"]


def test_every_command_is_an_impasto_subcommand() -> None:
    """The commands the deploy files run exist in the CLI."""
    from impasto.cli.main import LAZY_COMMANDS, main

    known = set(LAZY_COMMANDS) | set(main.commands)
    commands = [
        c["command"] for w in [*objects("Deployment").values(), *objects("Job").values()] for c in impasto_containers(w)
    ]
    commands += [s["command"] for s in compose()["services"].values() if s.get("image", "").startswith("impasto-")]
    for command in commands:
        assert command[0] == "impasto" and command[1] in known, command


def impasto_subcommand(command: list[str]) -> str | None:
    """The `impasto` subcommand a container or service runs, if it runs one."""
    return command[1] if len(command) > 1 and command[0] == "impasto" else None


def test_compose_gives_the_webhook_secret_to_api_and_webhook_worker_only() -> None:
    """The API and the webhook worker read the key from the environment, required; no other service has it."""
    services = compose()["services"]
    holders = {name for name, s in services.items() if "IMPASTO_WEBHOOK_SECRET" in (s.get("environment") or {})}
    needing = {name for name, s in services.items() if impasto_subcommand(s.get("command", [])) in NEEDS_WEBHOOK_SECRET}
    assert needing == {"api", "webhook-worker"} and holders == needing
    for name in holders:
        assert services[name]["environment"]["IMPASTO_WEBHOOK_SECRET"].startswith("${IMPASTO_WEBHOOK_SECRET:?")


def test_compose_runs_a_webhook_worker() -> None:
    """On the API image, after the migration, with the API's database, broker and storage settings."""
    services = compose()["services"]
    worker = services["webhook-worker"]
    assert worker["command"] == ["impasto", "webhook-worker"]
    assert worker["image"] == "impasto-api" and worker["build"]["dockerfile"] == "deploy/Dockerfile.api"
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    shared = {"IMPASTO_DATABASE_URL", "IMPASTO_BROKER_URL", "IMPASTO_STORAGE_URL", "IMPASTO_S3_ENDPOINT_URL"}
    for name in shared:
        assert worker["environment"][name] == services["api"]["environment"][name], name
    # Enough for Celery's warm shutdown to finish the attempts in flight.
    assert int(worker["stop_grace_period"].removesuffix("s")) > get_settings().webhook_timeout_s


def test_compose_services_that_touch_images_share_the_storage_volume() -> None:
    """api, worker and reconciler (retention deletes images) mount the volume the file:// store is in."""
    services = compose()["services"]
    storage_url = compose()["x-impasto-env"]["IMPASTO_STORAGE_URL"]
    path = re.search(r"file://(/[^}]+)", storage_url)
    assert path is not None, storage_url
    for name in ["api", "worker", "reconciler"]:
        assert f"storage:{path.group(1)}" in services[name].get("volumes", []), name


def test_k8s_gives_the_webhook_secret_to_api_and_webhook_worker() -> None:
    """Each container that needs the key names it in the Secret its envFrom reads, so it does not start without it."""
    needing = []
    for name, workload in [*objects("Deployment").items(), *objects("Job").items()]:
        for one in impasto_containers(workload):
            if impasto_subcommand(one["command"]) not in NEEDS_WEBHOOK_SECRET:
                continue
            needing.append(name)
            assert one["image"].startswith("impasto-api:"), name
            secrets = {s["secretRef"]["name"] for s in one["envFrom"] if "secretRef" in s}
            env = {e["name"]: e for e in one.get("env", [])}
            ref = env["IMPASTO_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] in secrets and ref["key"] == "IMPASTO_WEBHOOK_SECRET", name
            assert not ref.get("optional", False), name
    assert sorted(needing) == ["impasto-api", "impasto-webhook-worker"]


def test_k8s_runs_a_webhook_worker() -> None:
    """A Deployment on the API image with the shared config, that outlasts a delivery attempt on SIGTERM."""
    deployment = objects("Deployment")["impasto-webhook-worker"]
    (container,) = containers(deployment)
    assert container["command"] == ["impasto", "webhook-worker"]
    assert container["image"].startswith("impasto-api:")
    assert {s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s} == {"impasto-config"}
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > get_settings().webhook_timeout_s
    # The webhooks queue is the webhook worker's alone: no GPU worker consumes it.
    for workload in objects("Deployment").values():
        for other in impasto_containers(workload):
            if "--queues" in other["command"]:
                assert WEBHOOK_QUEUE not in other["command"][other["command"].index("--queues") + 1].split(",")


def test_readme_creates_every_secret_key_the_manifests_read() -> None:
    """The `kubectl create secret` in deploy/README.md makes each key a secretKeyRef or KEDA names."""
    refs: set[str] = set()
    for workload in [*objects("Deployment").values(), *objects("Job").values()]:
        for one in containers(workload):
            refs |= {e["valueFrom"]["secretKeyRef"]["key"] for e in one.get("env", []) if "valueFrom" in e}
    for auth in objects("TriggerAuthentication").values():
        refs |= {ref["key"] for ref in auth["spec"]["secretTargetRef"]}
    assert refs
    readme = (DEPLOY / "README.md").read_text()
    command = re.search(r"kubectl -n impasto create secret generic impasto-secrets(.*?)\n```", readme, re.S)
    assert command is not None
    created = set(re.findall(r"--from-literal=([A-Z0-9_]+)=", command.group(1)))
    assert refs <= created, refs - created
