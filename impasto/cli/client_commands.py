"""`impasto submit | status | cancel`: client commands that talk to the API over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from impasto import Client, ImpastoError, Job
from impasto.cli.region_options import parse_regions
from impasto.shared.local_key import client_api_key
from impasto.shared.settings import get_settings

url_option = click.option("--url", envvar="IMPASTO_URL", default=None, help="API base URL (IMPASTO_URL)")


def client_for(url: str | None, api_key: str | None = None) -> Client:
    """A client for --url, IMPASTO_URL or the default local address, with `api_key`, else
    IMPASTO_API_KEY, else the key `impasto up` left in IMPASTO_DATA_DIR/local-api-key."""
    settings = get_settings()
    return Client(url or settings.url, api_key=api_key or client_api_key(settings))


def explain(exc: ImpastoError) -> str:
    """The API's error, with a hint where the fix is on this side (the key)."""
    if exc.status == 401:
        return f"{exc} (send a key: set IMPASTO_API_KEY, or use the IMPASTO_DATA_DIR that `impasto up` uses)"
    return str(exc)


def parse_param(text: str) -> tuple[str, Any]:
    """k=v with v parsed as JSON when it parses (numbers, lists, booleans), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected k=v, got {text!r}", param_hint="--param")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def follow(client: Client, job: Job) -> Job:
    """Show a progress bar, fed by the job's event stream, until the job ends; returns the final job."""
    status = job["status"]
    with tqdm(total=job["params"]["iterations"], unit="it", desc=job["id"][:8]) as bar:
        for event in client.events(job["id"]):
            if event.event == "completed":
                return event.data  # type: ignore[return-value]
            status = event.data.get("status", status) if event.event == "status" else status
            # A status event carries the job when the stream opens; later ones only the status.
            progress = event.data.get("job", {}).get("progress") if event.event == "status" else event.data
            if event.event in ("status", "progress") and progress:
                bar.update(progress["iteration"] - bar.n)
                loss = progress.get("loss") or {}
                bar.set_postfix(status=status, loss=f"{(loss.get('total') or 0):.3g}")
    raise ImpastoError("bad_response", "the event stream ended without `completed`")


def download_outputs(client: Client, job: Job, out: Path) -> list[Path]:
    """Write the final image to `out` and the snapshots beside it; returns the paths."""
    written = []
    if job["outputs"]["final"]:
        written.append(client.download_output(job["id"], out))
    for snap in job["outputs"]["intermediates"]:
        path = out.parent / f"{out.stem}-{snap['iteration']:06d}.png"
        written.append(client.download_snapshot(job["id"], snap["iteration"], path))
    return written


@click.command()
@click.argument("content", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("styles", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--param", "params", multiple=True, help="job parameter k=v, repeatable (e.g. size=256)")
@click.option("--mask", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="content label image")
@click.option("--style-mask", "style_masks", multiple=True, help="a style's label image, per style ('-': none)")
@click.option("--region", "regions", multiple=True, help="'#rrggbb=STYLE[:W],...' or '#rrggbb=' (content only)")
@click.option("--wait", is_flag=True, help="follow progress and download the result")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="where --wait saves it")
@url_option
def submit(
    content: Path, styles: tuple[Path, ...], params: tuple[str, ...], mask: Path | None, style_masks: tuple[str, ...],
    regions: tuple[str, ...], wait: bool, out: Path | None, url: str | None,
) -> None:  # fmt: skip
    """Submit a job: CONTENT image, one or more STYLE images (--mask and --region: spatial control)."""
    client = client_for(url)
    values = dict(parse_param(p) for p in params)
    try:
        if (parsed := parse_regions(regions)) is not None:
            values["regions"] = parsed
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--region") from exc
    try:
        job = client.submit(
            content, list(styles), values, mask=mask,
            style_masks=[None if m == "-" else Path(m) for m in style_masks] or None,
        )  # fmt: skip
        click.echo(job["id"])
        if not wait:
            return
        job = follow(client, job)
    except ImpastoError as exc:
        raise click.ClickException(explain(exc)) from exc
    if job["status"] != "succeeded":
        raise click.ClickException(f"job {job['status']}: {job.get('error')}")
    for path in download_outputs(client, job, out or Path(f"{job['id']}.png")):
        click.echo(f"wrote {path}")


@click.command()
@click.argument("job_id")
@url_option
def status(job_id: str, url: str | None) -> None:
    """Print a job as JSON."""
    try:
        click.echo(json.dumps(client_for(url).get(job_id), indent=2))
    except ImpastoError as exc:
        raise click.ClickException(explain(exc)) from exc


@click.command()
@click.argument("job_id")
@url_option
def cancel(job_id: str, url: str | None) -> None:
    """Cancel a queued or running job."""
    try:
        job = client_for(url).cancel(job_id)
    except ImpastoError as exc:
        raise click.ClickException(explain(exc)) from exc
    click.echo(f"{job['id']}: {job['status']}{' (cancel requested)' if job.get('cancel_requested') else ''}")
