"""`impasto demo`: start the embedded stack, paint the bundled cat as The Starry Night, and stop."""

from __future__ import annotations

import socket
import time
from importlib.resources import files
from pathlib import Path

import click

from impasto import ImpastoError
from impasto.cli.client_commands import client_for, download_outputs, follow
from impasto.cli.stack import EmbeddedStack

# The bundled images ship inside impasto.shared (package data), wherever the package is installed.
SAMPLES = Path(str(files("impasto.shared") / "samples"))
DEMO_PARAMS = {"size": 256, "iterations": 100, "snapshot_every": 25}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@click.command()
@click.option(
    "--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-output"), show_default=True
)
@click.option(
    "--style",
    default="starry_night.jpg",
    show_default=True,
    help="a bundled style: " + ", ".join(sorted(p.name for p in SAMPLES.glob("*.jpg") if p.name != "chelsea.jpg")),
)
def demo(out_dir: Path, style: str) -> None:
    """Run one job through the embedded stack and write its result and snapshots to OUT_DIR."""
    out_dir = out_dir.resolve()
    started = time.monotonic()
    click.echo(f"starting the embedded stack (data in {out_dir / 'data'})")
    with EmbeddedStack(out_dir / "data", free_port(), quiet=True) as stack:
        client = client_for(stack.url, stack.api_key)
        try:
            job = client.submit(SAMPLES / "chelsea.jpg", [SAMPLES / style], DEMO_PARAMS)
            click.echo(f"submitted job {job['id']}: {DEMO_PARAMS}")
            job = follow(client, job)
        except ImpastoError as exc:
            raise click.ClickException(str(exc)) from exc
        if job["status"] != "succeeded":
            raise click.ClickException(f"the job ended {job['status']}: {job.get('error')}")
        written = download_outputs(client, job, out_dir / "result.png")
    metrics, iterations = job["metrics"], job["progress"]["iteration"]
    click.echo(f"job succeeded: {iterations} iterations in {metrics['run_seconds']:.1f} s on {metrics['device']}")
    for path in written:
        click.echo(f"  {path}")
    click.echo(f"done in {time.monotonic() - started:.0f} s; the result is {written[0]}")
