"""`impasto stylize`: run the engine on local files, no queue, with a progress bar."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from PIL import Image
from tqdm import tqdm

from impasto.cli.region_options import parse_regions
from impasto.worker.context import resolve_device
from impasto.worker.engine import Callbacks, EngineError, Losses, StyleParams
from impasto.worker.engine import stylize as run_engine
from impasto.worker.engine.memory import cpu_budget_from_environment
from impasto.worker.engine.params import engine_regions

DEFAULTS = StyleParams()


def _floats(text: str | None) -> tuple[float, ...] | None:
    return None if text is None else tuple(float(v) for v in text.split(","))


def _rows(text: str | None) -> tuple[tuple[float, ...], ...] | None:
    """'a,b;c,d' -> ((a, b), (c, d))."""
    return None if text is None else tuple(_floats(row) or () for row in text.split(";"))


def _names(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    return default if text is None else tuple(v.strip() for v in text.split(",") if v.strip())


class BarCallbacks(Callbacks):
    """A tqdm bar with losses and ETA, and snapshots written to a folder."""

    def __init__(self, bar: tqdm | None, snapshot_dir: Path | None) -> None:
        self.bar = bar
        self.snapshot_dir = snapshot_dir

    def on_progress(self, iteration: int, losses: Losses) -> None:
        """Advance the bar to `iteration` and show the losses."""
        if self.bar is not None:
            self.bar.update(iteration - self.bar.n)
            self.bar.set_postfix(
                content=f"{losses.content:.3g}", style=f"{losses.style:.3g}", total=f"{losses.total:.3g}"
            )

    def on_snapshot(self, iteration: int, image: Image.Image) -> None:
        """Write the snapshot as DIR/NNNNNN.png."""
        if self.snapshot_dir is not None:
            image.save(self.snapshot_dir / f"{iteration:06d}.png")


@click.command()
@click.argument("content", type=click.Path(dir_okay=False))
@click.argument("styles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="output PNG")
@click.option("--iterations", type=int, default=DEFAULTS.iterations, show_default=True)
@click.option("--size", type=int, default=DEFAULTS.size, show_default=True, help="long side of the output, px")
@click.option("--style-scale", type=float, default=DEFAULTS.style_scale, show_default=True)
@click.option("--content-weight", type=float, default=DEFAULTS.content_weight, show_default=True)
@click.option("--style-weight", type=float, default=DEFAULTS.style_weight, show_default=True)
@click.option("--tv-weight", type=float, default=DEFAULTS.tv_weight, show_default=True)
@click.option("--content-layers", default=None, help="comma-separated, default conv4_2")
@click.option("--style-layers", default=None, help="comma-separated, default conv1_1,...,conv5_1")
@click.option("--style-layer-weights", default=None, help="comma-separated, one per style layer")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default=DEFAULTS.optimizer, show_default=True)
@click.option("--learning-rate", type=float, default=None)
@click.option("--init", "init", default="content", show_default=True, help="content, noise, or an image path")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--pooling", type=click.Choice(["max", "avg"]), default=DEFAULTS.pooling, show_default=True)
@click.option("--style-blend", default=None, help="comma-separated blend weights, one per style")
@click.option("--preserve-color", is_flag=True, help="luminance-only transfer: keep the content's colours")
@click.option("--scales", default=None, help="coarse-to-fine fractions of --size, e.g. 0.5,1")
@click.option("--snapshot-every", default=None, metavar="DIR/N", help="write a PNG to DIR every N iterations")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default=DEFAULTS.precision,
    show_default=True,
    help="bf16: the network's convolutions under bf16 autocast (for GPUs with bf16 tensor cores)",
)
@click.option(
    "--tile", type=int, default=None, help="exact tiled evaluation in N-px tiles; 0 = off; default: when memory needs"
)
@click.option(
    "--pyramid-above", type=int, default=DEFAULTS.pyramid_above, show_default=True,
    help="above this size (px), coarse to fine in √2 steps from 256 px; 0 = never",
)  # fmt: skip
@click.option("--style-loss", type=click.Choice(["gram", "w2"]), default=DEFAULTS.style_loss, show_default=True)
@click.option(
    "--color-transfer", type=click.Choice(["none", "before", "after"]), default=DEFAULTS.color_transfer,
    show_default=True, help="match the styles' colours to the content's before, or the result's after",
)  # fmt: skip
@click.option(
    "--color-method", "color_transfer_method", type=click.Choice(["pca", "cholesky", "sym"]),
    default=DEFAULTS.color_transfer_method, show_default=True,
)  # fmt: skip
@click.option("--style-scales", default=None, help="comma-separated, one style scale per style")
@click.option(
    "--style-layer-weights-per-style", "per_style", default=None,
    help="one row per style, rows separated by ';', e.g. '0,0,0,1,1;1,1,0,0,0'",
)  # fmt: skip
@click.option("--mask", default=None, type=click.Path(dir_okay=False), help="the content's label image (PNG)")
@click.option(
    "--style-mask", "style_masks", multiple=True, help="a style's label image, one per style in order ('-': none)"
)
@click.option("--region", "regions", multiple=True, help="'#rrggbb=STYLE[:W],...' or '#rrggbb=' (content only)")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")
@click.option("--weights", default="original", show_default=True, help="original, torchvision, or a state-dict path")
@click.option("--json", "as_json", is_flag=True, help="print final losses and timings as one JSON object")
def stylize(
    content: str, styles: tuple[str, ...], output: str, init: str, snapshot_every: str | None,
    device: str, weights: str, as_json: bool, content_layers: str | None, style_layers: str | None,
    style_layer_weights: str | None, style_blend: str | None, scales: str | None, style_scales: str | None,
    per_style: str | None, mask: str | None, style_masks: tuple[str, ...], regions: tuple[str, ...],
    **numbers: object,
) -> None:  # fmt: skip
    """Paint CONTENT in the style of STYLE(s) and write the result to -o OUT.png."""
    snapshot_dir, every = None, 0
    if snapshot_every:
        folder, _, count = snapshot_every.rpartition("/")
        if not folder or not count.isdigit():
            raise click.BadParameter("expected DIR/N, e.g. snaps/50", param_hint="--snapshot-every")
        snapshot_dir, every = Path(folder), int(count)
        snapshot_dir.mkdir(parents=True, exist_ok=True)
    init_image = None
    if init not in ("content", "noise"):
        init_image, init = init, "image"
    try:
        params = StyleParams(
            content_layers=_names(content_layers, DEFAULTS.content_layers),
            style_layers=_names(style_layers, DEFAULTS.style_layers),
            style_layer_weights=_floats(style_layer_weights),
            style_blend_weights=_floats(style_blend),
            scales=_floats(scales) or DEFAULTS.scales,
            style_scales=_floats(style_scales),
            style_layer_weights_per_style=_rows(per_style),
            regions=engine_regions(parse_regions(regions)),
            init=init,
            snapshot_every=every,
            **numbers,  # type: ignore[arg-type]
        )
        resolved = resolve_device(device)
        started = time.perf_counter()
        with tqdm(total=params.iterations, unit="it", disable=as_json, file=sys.stderr) as bar:
            result = run_engine(
                content, list(styles), params, BarCallbacks(bar, snapshot_dir),
                device=resolved, weights=weights, init_image=init_image, mask=mask,
                memory_budget=cpu_budget_from_environment(),
                style_masks=[None if m == "-" else m for m in style_masks] or None,
            )  # fmt: skip
        result.image.save(output)
    except (EngineError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    summary = {
        "output": output,
        "iterations": result.iterations,
        "losses": result.losses.as_dict() if result.losses else None,
        "loop_seconds": round(result.seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "seconds_per_iteration": round(result.seconds / max(1, result.iterations), 4),
        "evaluations": result.evaluations,
        "device": result.device,
        "size": list(result.image.size),
        "tile": result.memory.tile if result.memory else None,
        "lbfgs_history": result.memory.history if result.memory else None,
    }
    click.echo(
        json.dumps(summary)
        if as_json
        else f"wrote {output} ({result.image.width}x{result.image.height}) in {summary['total_seconds']} s"
    )
