"""Jobs with the controls of Gatys et al. 2017 through run_transfer: masks stored with the job, kept on resume."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from impasto.shared.job_params import JobParams
from impasto.shared.jobs import add_snapshot, claim_job, create_job
from impasto.shared.models import Job
from impasto.shared.storage import snapshot_key, upload_key
from impasto.worker.context import WorkerContext
from impasto.worker.engine import imaging
from impasto.worker.engine.imaging import png_bytes
from impasto.worker.job_runner import run_transfer
from tests.worker.test_job_runner import expire_lease, load

SIZE = (48, 32)  # the output of a 48 px job on chelsea.jpg (451x300)


def halves(size: tuple[int, int]) -> Image.Image:
    """Left half red, right half blue."""
    label = Image.new("RGB", size, (255, 0, 0))
    ImageDraw.Draw(label).rectangle((size[0] // 2, 0, size[0], size[1]), fill=(0, 0, 255))
    return label


def put(ctx: WorkerContext, data: bytes, extension: str) -> str:
    """Store bytes content-addressed; returns the key."""
    key = upload_key(data, extension)
    ctx.storage.put(key, data)
    return key


def make_masked_job(ctx: WorkerContext, samples: Path, styles: list[str], **params: Any) -> str:
    """A queued job on chelsea.jpg with a halves label image (stored and named in mask_keys, as the API does)."""
    content = put(ctx, (samples / "chelsea.jpg").read_bytes(), "jpg")
    style_keys = [put(ctx, (samples / name).read_bytes(), "jpg") for name in styles]
    buffer = io.BytesIO()
    halves((451, 300)).save(buffer, "PNG")
    mask = put(ctx, buffer.getvalue(), "png")
    values = JobParams(**{"size": 48, "iterations": 12, "snapshot_every": 4, **params}).model_dump(mode="json")
    with ctx.sessions() as session:
        job = create_job(
            session,
            params=values,
            content_key=content,
            style_keys=style_keys,
            queue="transfer",
            mask_keys={"content": mask, "styles": None},
        )
        session.commit()
        return job.id


def output_of(ctx: WorkerContext, job: Job) -> torch.Tensor:
    """The job's final image as a (1, 3, H, W) tensor."""
    assert job.output_key is not None
    return imaging.to_tensor(Image.open(io.BytesIO(ctx.storage.get(job.output_key))).convert("RGB"))


def test_a_job_with_every_control_succeeds(ctx: WorkerContext, samples: Path) -> None:
    """Regions, W2, colour after, per-style layer weights and style scales together run to success."""
    job_id = make_masked_job(
        ctx,
        samples,
        ["starry_night.jpg", "the_scream.jpg"],
        regions={"#ff0000": {"0": 1.0}, "#0000ff": {"1": 1.0}},
        style_loss="w2",
        color_transfer="after",
        style_layer_weights_per_style=((0.0, 0.0, 1.0, 1.0, 1.0), (1.0, 1.0, 1.0, 0.0, 0.0)),
        style_scales=(1.0, 0.5),
    )
    assert run_transfer(ctx, job_id, "w1", "w1/a") == "succeeded"
    job = load(ctx, job_id)
    assert job.iteration == 12 and job.losses is not None and job.losses["style"] > 0
    assert output_of(ctx, job).shape[-2:] == (SIZE[1], SIZE[0])


def test_a_resumed_job_keeps_its_mask(ctx: WorkerContext, samples: Path) -> None:
    """Taken over after a checkpoint, the job still paints only its styled region: the content-only half
    stays nearer the checkpoint than the styled half."""
    job_id = make_masked_job(
        ctx, samples, ["starry_night.jpg"], regions={"#ff0000": {"0": 1.0}, "#0000ff": {}}, style_weight=1e4
    )
    with ctx.sessions() as session:
        assert claim_job(session, job_id, "dead/a", 30)
    checkpoint = Image.open(samples / "chelsea.jpg").convert("RGB").resize(SIZE)
    ctx.storage.put(snapshot_key(job_id, 4), png_bytes(checkpoint))
    with ctx.sessions() as session:
        add_snapshot(session, job_id, 4, snapshot_key(job_id, 4))
    expire_lease(ctx, job_id)
    assert run_transfer(ctx, job_id, "w2", "w2/b") == "succeeded"
    job = load(ctx, job_id)
    assert job.attempts == 2 and job.iteration == 12
    change = (output_of(ctx, job) - imaging.to_tensor(checkpoint)).abs()
    styled, kept = change[..., : SIZE[0] // 2 - 4].mean(), change[..., SIZE[0] // 2 + 4 :].mean()
    assert kept < 0.5 * styled, (float(kept), float(styled))
