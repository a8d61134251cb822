"""The shipped proxy config (deploy/nginx/nginx.conf), run by the real nginx in front of the real
`impasto api` (gunicorn, PostgreSQL, Redis, a worker): slow and idle clients, event streams,
long polls and /metrics. Only loopback sockets, bounded in number and time."""

from __future__ import annotations

import json
import resource
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from impasto.cli.serve import API_THREADS
from impasto.sse import parse_sse
from tests.conftest import create_postgres_database, drop_postgres_database, flushed_redis
from tests.deploy.proxy_config import nginx_binary, running_nginx, seconds, shipped_directives
from tests.e2e.conftest import API_KEYS, Processes, auth, start_production_stack
from tests.e2e.test_events import post_job

SLOW_CLIENTS = 500  # send a request header one line every DRIP_S
# Send a whole header, then the body one byte every DRIP_S. Fewer than the shipped limit_conn (32):
# with a whole header a request counts against its address's limit, and every socket here is 127.0.0.1.
SLOW_BODY_CLIENTS = 16
IDLE_CLIENTS = 484  # connect and send nothing
ATTACKERS = SLOW_CLIENTS + SLOW_BODY_CLIENTS + IDLE_CLIENTS
DRIP_S = 2.0
LATENCY_BOUND_S = 1.0  # the requirement for /healthz and polls under attack


@pytest.fixture(scope="module")
def proxied_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Processes]]:
    """(proxy URL, gunicorn URL, processes): nginx from the shipped config in front of the production stack."""
    nginx_binary()  # skip before starting anything
    # 1 000 client sockets here, and nginx inherits the limit: raise the soft limit to what the hard allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * ATTACKERS
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    tmp_path = tmp_path_factory.mktemp("proxy")
    database, postgres_url = create_postgres_database()
    redis_urls = flushed_redis(12)
    settings = {"trusted_proxies": "1"}
    try:
        with start_production_stack(tmp_path, postgres_url, next(redis_urls), **settings) as (api_url, processes):
            with running_nginx(int(api_url.rsplit(":", 1)[1]), tmp_path / "nginx") as proxy_url:
                API_KEYS[proxy_url] = API_KEYS[api_url]
                try:
                    yield proxy_url, api_url, processes
                finally:
                    API_KEYS.pop(proxy_url, None)
    finally:
        next(redis_urls, None)
        drop_postgres_database(database)


class SlowClients:
    """Loopback sockets that send a request header one line every DRIP_S, that send a whole header
    and then the body one byte every DRIP_S, and that sit idle."""

    def __init__(self, port: int, slow: int, idle: int, slow_body: int = 0) -> None:
        self.port = port
        self.slow = [self.connect(b"GET /healthz HTTP/1.1\r\nHost: attacker\r\n") for _ in range(slow)]
        upload = b"POST /v1/jobs HTTP/1.1\r\nHost: attacker\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        self.slow_body = [self.connect(upload + b"Content-Length: 100000\r\n\r\n") for _ in range(slow_body)]
        self.idle = [self.connect(b"") for _ in range(idle)]
        self.stopped = threading.Event()
        self.dripper = threading.Thread(target=self.drip, daemon=True)
        self.dripper.start()

    def connect(self, first: bytes) -> socket.socket:
        """One connected socket that has sent `first`."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(first)
        return sock

    def drip(self) -> None:
        """Every DRIP_S, one more header line to each slow socket (never the blank line that ends the
        header) and one more body byte to each slow-body socket."""
        while not self.stopped.wait(DRIP_S):
            for sock, more in [*((s, b"X-Slow: 1\r\n") for s in self.slow), *((s, b"x") for s in self.slow_body)]:
                try:
                    sock.send(more)
                except OSError:  # the server closed it: that is what a header timeout does
                    pass

    def held(self, group: list[socket.socket] | None = None) -> int:
        """How many sockets (of `group`, default all) the server still holds open (a closed one reads as EOF)."""
        poller = select.poll()  # not select.select: descriptors above 1024
        every = [*self.slow, *self.slow_body, *self.idle]
        sockets = {sock.fileno(): sock for sock in (every if group is None else group)}
        for fd in sockets:
            poller.register(fd, select.POLLIN)
        return len(sockets) - len(poller.poll(0))

    def close(self) -> None:
        """Stop dripping and close every socket."""
        self.stopped.set()
        self.dripper.join()
        for sock in [*self.slow, *self.slow_body, *self.idle]:
            sock.close()


def timed_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, float]:
    """(status, seconds) of one GET."""
    started = time.monotonic()
    response = requests.get(url, headers=headers or {}, timeout=timeout)
    return response.status_code, time.monotonic() - started


def canceled_job(url: str, samples: Path) -> str:
    """The id of a job made and canceled through `url` (something an authenticated poll can read)."""
    response = post_job(url, samples, {"size": 32, "iterations": 5})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    requests.post(f"{url}/v1/jobs/{job_id}/cancel", headers=auth(url), timeout=10).raise_for_status()
    return job_id


def test_slow_clients_stop_gunicorn_alone_but_not_behind_the_proxy(
    proxied_stack: tuple[str, str, Processes], samples: Path
) -> None:
    """A few dozen drippers take every gunicorn thread; 1 000 slow or idle clients at nginx take none.

    nginx reads headers and bodies itself (request buffering) and hands gunicorn whole requests only."""
    proxy_url, api_url, processes = proxied_stack
    job_id = canceled_job(proxy_url, samples)

    # Straight at gunicorn (how the deploy files served it before): one dripper per thread of its one
    # process, and more.
    direct = SlowClients(int(api_url.rsplit(":", 1)[1]), slow=API_THREADS + 16, idle=0)
    try:
        time.sleep(1)  # gunicorn hands each to a thread, which then waits for the rest of the header
        with pytest.raises(requests.Timeout):
            requests.get(f"{api_url}/healthz", timeout=3)
    finally:
        direct.close()
    deadline = time.monotonic() + 15
    while timed_get(f"{api_url}/healthz", timeout=15)[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)

    # Through nginx: 1 000 slow or idle connections held while health checks and polls go on.
    proxy_port = int(proxy_url.rsplit(":", 1)[1])
    uploads_seen = processes.log("api").count("POST /v1/jobs")  # gunicorn's access log
    assert uploads_seen >= 1  # canceled_job's, through nginx
    attack = SlowClients(proxy_port, slow=SLOW_CLIENTS, idle=IDLE_CLIENTS, slow_body=SLOW_BODY_CLIENTS)
    try:
        time.sleep(DRIP_S + 0.5)  # every slow client has dripped at least once more
        health = [timed_get(f"{proxy_url}/healthz") for _ in range(5)]
        polls = [timed_get(f"{proxy_url}/v1/jobs/{job_id}", auth(proxy_url)) for _ in range(5)]
        held = attack.held()
        assert held == ATTACKERS, f"nginx let go of {ATTACKERS - held} early"
        assert [status for status, _ in health + polls] == [200] * 10
        slowest = max(seconds for _, seconds in health + polls)
        assert slowest < LATENCY_BOUND_S, (health, polls)

        # The header timeout is a total: nginx closes header drippers and idlers alike once it has
        # passed. Body drippers send within client_body_timeout, so nginx still holds them; gunicorn never saw them.
        (header_timeout,) = shipped_directives("client_header_timeout")
        time.sleep(seconds(header_timeout) + DRIP_S)
        assert attack.held(attack.slow) == 0 and attack.held(attack.idle) == 0
        assert attack.held(attack.slow_body) == SLOW_BODY_CLIENTS
        assert processes.log("api").count("POST /v1/jobs") == uploads_seen
    finally:
        attack.close()


def test_events_stream_through_the_proxy(proxied_stack: tuple[str, str, Processes], samples: Path) -> None:
    """An SSE event reaches the client while the job still runs (nginx does not buffer the stream)."""
    proxy_url, _, _ = proxied_stack
    response = post_job(proxy_url, samples, {"size": 64, "iterations": 500}, {"Prefer": "wait=1"})
    # Prefer: wait is held and answered by the app through nginx (still running after 1 s: 202).
    assert response.status_code == 202 and response.headers["Preference-Applied"] == "wait=1", response.text
    job_id = response.json()["id"]
    url = f"{proxy_url}/v1/jobs/{job_id}/events"
    try:
        with requests.get(url, headers=auth(proxy_url), stream=True, timeout=(10, 120)) as stream:
            assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
            lines = (line.decode() for line in stream.iter_lines())
            first_progress = next(event.data for event in parse_sse(lines) if event.event == "progress")
            job = requests.get(f"{proxy_url}/v1/jobs/{job_id}", headers=auth(proxy_url), timeout=10).json()
        assert first_progress["iteration"] < 500
        assert job["status"] == "running", job["status"]
    finally:
        requests.post(f"{proxy_url}/v1/jobs/{job_id}/cancel", headers=auth(proxy_url), timeout=10)


@pytest.mark.parametrize("path", ["/metrics", "//metrics", "/%6Detrics", "/metrics?format=text"])
def test_metrics_are_not_served_through_the_proxy(proxied_stack: tuple[str, str, Processes], path: str) -> None:
    """/metrics is served on gunicorn's own port (Prometheus scrapes there) and is a JSON 404 at nginx."""
    proxy_url, api_url, _ = proxied_stack
    assert requests.get(f"{api_url}/metrics", timeout=10).status_code != 404  # 200, or 401 where it asks a token
    response = requests.get(f"{proxy_url}{path}", timeout=10)
    assert response.status_code == 404 and "impasto_" not in response.text
    assert json.loads(response.text)["error"]["code"] == "not_found"


def test_proxy_headers_from_a_client_are_not_passed_on(proxied_stack: tuple[str, str, Processes]) -> None:
    """A client's X-Forwarded-Ssl would contradict nginx's X-Forwarded-Proto for gunicorn (400): nginx clears it."""
    proxy_url, api_url, _ = proxied_stack
    claims = {"X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "ssl", "Forwarded": "for=6.6.6.6;proto=https"}
    direct = requests.get(f"{api_url}/healthz", headers={"X-Forwarded-Proto": "http", **claims}, timeout=10)
    assert direct.status_code == 400  # what nginx would cause by passing them on
    assert requests.get(f"{proxy_url}/healthz", headers=claims, timeout=10).status_code == 200
