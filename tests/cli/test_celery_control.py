"""`celery -A impasto.cli.celery_control`: the operators' app loads without torch and reaches real workers;
two workers started alike on one machine get distinct node names."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")


def test_the_control_app_loads_lazily_and_without_torch(redis_url: str) -> None:
    """Importing builds nothing; `app` is the configured broker's app; torch and the worker stay unloaded."""
    code = (
        "import sys, impasto.cli.celery_control as control; "
        "assert 'app' not in vars(control), 'built at import'; "
        "app = control.app; "
        "assert app is control.app and app.conf.broker_url == sys.argv[1], app.conf.broker_url; "
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'worker')]; "
        "assert not loaded, loaded"
    )
    env = {**os.environ, "IMPASTO_BROKER_URL": redis_url}
    subprocess.run([sys.executable, "-c", code, redis_url], cwd=ROOT, env=env, check=True)


def test_celery_inspect_ping_tells_two_alike_workers_apart(tmp_path: Path, redis_url: str) -> None:
    """`impasto worker --gpus cpu` twice: `celery -A impasto.cli.celery_control inspect ping` answers from two
    distinct nodes, cpu-<supervisor pid>@<host>, and `status` counts both."""
    env = {
        **os.environ,
        "IMPASTO_DATA_DIR": str(tmp_path / "data"),
        "IMPASTO_BROKER_URL": redis_url,
        "IMPASTO_SHUTDOWN_TIMEOUT_S": "20",
        "OMP_NUM_THREADS": "1",
    }
    supervisors = []
    for number in (1, 2):
        with open(tmp_path / f"worker{number}.log", "wb") as log:
            supervisors.append(
                subprocess.Popen(
                    [sys.executable, "-m", "impasto.cli", "worker", "--gpus", "cpu"],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            )
    host = socket.gethostname()
    expected = {f"cpu-{p.pid}@{host}" for p in supervisors}
    try:
        deadline = time.monotonic() + 120
        while True:
            done = subprocess.run(
                [CELERY, "-A", "impasto.cli.celery_control", "inspect", "ping", "--json", "--timeout", "2"],
                env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            answered = set(json.loads(done.stdout)) if done.returncode == 0 else set()
            if answered >= expected or time.monotonic() > deadline:
                break
            time.sleep(1)
        logs = [(tmp_path / f"worker{n}.log").read_text()[-2000:] for n in (1, 2)]
        assert answered == expected, (done.stdout, done.stderr, logs)
        status = subprocess.run(
            [CELERY, "-A", "impasto.cli.celery_control", "status", "--timeout", "2"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "2 nodes online" in status.stdout, status.stdout + status.stderr
        assert "DuplicateNodenameWarning" not in "".join(logs)
    finally:
        for process in supervisors:
            process.send_signal(signal.SIGTERM)
        for process in supervisors:
            process.wait(60)
