"""CPU time of one status poll inside the API process, without gunicorn or a network client.

    python -m bench.poll_cpu [--polls 2000] [--redis-url redis://127.0.0.1:6379/9] [--profile]

The app (`create_app`, production code paths) on a throwaway PostgreSQL database and a Redis
database index that must be empty (flushed at the end); one key owns one queued job with two
snapshots. After 200 warm-up polls, `--polls` GET /v1/jobs/{id} through Flask's test client:
prints process CPU ms and wall ms per poll (the test client's own cost included, the same for
any version of the API). Run it from two checkouts, interleaved, to compare versions; with
--profile, cProfile's top functions by cumulative time follow.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time

import redis
from flask.testing import FlaskClient

from bench.api_load import drop_database, setup_database
from impasto.api import create_app
from impasto.api.context import EXTENSION_KEY, Impasto
from impasto.shared.api_keys import create_key
from impasto.shared.database import upgrade_database
from impasto.shared.jobs import add_snapshot, create_job
from impasto.shared.settings import Settings

WARM_UP_POLLS = 200


def main() -> None:
    """Measure CPU per poll and print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=2000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="an empty Redis database index")
    parser.add_argument("--database", default=f"impasto_bench_poll_{os.getpid()}", help="throwaway database name")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 40 functions")
    args = parser.parse_args()
    store = redis.Redis.from_url(args.redis_url)
    if store.dbsize():
        raise SystemExit(f"{args.redis_url} is not empty; it is flushed at the end, so pick an empty index")
    url = setup_database(args.database)
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(
                data_dir=folder,
                database_url=url,
                broker_url=args.redis_url,
                storage_url=f"file://{folder}/storage",
                rate_limit="1000000 per minute",  # the load is one key's: the production 600/min would refuse it
            )
            upgrade_database(settings)
            app = create_app(settings)
            impasto: Impasto = app.extensions[EXTENSION_KEY]
            try:
                with impasto.sessions() as session:
                    record, key = create_key(session, "bench")
                    job = create_job(
                        session,
                        params={"size": 64, "iterations": 2},
                        content_key="c.jpg",
                        style_keys=["s.jpg"],
                        queue="q",
                        owner_key_id=record.id,
                    )
                    session.commit()
                    job_id = job.id
                    for iteration in (1, 2):
                        add_snapshot(session, job_id, iteration, f"jobs/{job_id}/{iteration}.jpg")
                poll(app.test_client(), job_id, key, args.polls, args.profile)
            finally:
                impasto.close()
    finally:
        drop_database(args.database)
        store.flushdb()


def poll(client: FlaskClient, job_id: str, key: str, polls: int, profile: bool) -> None:
    """Warm up, then time `polls` polls; print CPU and wall ms per poll."""
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(WARM_UP_POLLS):
        response = client.get(f"/v1/jobs/{job_id}", headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"poll answered {response.status_code}: {response.get_data(as_text=True)}")
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(polls):
        client.get(f"/v1/jobs/{job_id}", headers=headers)
    cpu_ms, wall_ms = (time.process_time() - cpu) * 1000 / polls, (time.perf_counter() - wall) * 1000 / polls
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    print(f"{polls} polls: CPU {cpu_ms:.3f} ms/poll, wall {wall_ms:.3f} ms/poll, 1-min load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
