"""Measure the effect of the colour, scale and region controls on the README's pictures, and lay them out.

    python -m bench.control_effects

Reads the stylize outputs the README's commands write to docs/ (control_color_{none,before,after}.png,
control_scale.png, control_regions.png) and prints, one line each:
- colour: the distance of each result's RGB statistics from the content's (|Δmean| + ‖ΔΣ‖_F / 255);
- scale: each result's relative Gram error against Starry Night (A) and The Scream (B) at the deep
  layers A was given and the shallow ones B was given;
- regions: inside each region (eroded by 8 px from the border), the relative Gram error against its
  own style and against the other's, at conv1_1..conv3_1.
Then writes the strips the README shows: docs/control_color.png, docs/control_scale_strip.png and
docs/control_regions_strip.png (content and labels beside the results).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from bench.style_loss import side_by_side
from impasto.worker.engine import imaging, load_vgg
from impasto.worker.engine.color import colour_statistics
from impasto.worker.engine.losses import GramTarget
from impasto.worker.engine.statistics import feature_moments

DOCS = Path("docs")
SAMPLES = Path("shared/samples")


def tensor(path: Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """An image file as a (1, 3, H, W) 0..255 tensor, optionally resized."""
    return imaging.to_tensor(imaging.open_image(path), size)


def colour_distance(image: torch.Tensor, reference: torch.Tensor) -> float:
    """|Δmean| + ‖ΔΣ‖_F / 255 between two images' RGB statistics."""
    (mean_a, cov_a), (mean_b, cov_b) = colour_statistics(image), colour_statistics(reference)
    return float((mean_a - mean_b).norm() + (cov_a - cov_b).norm() / 255)


def gram_error(image: torch.Tensor, style: torch.Tensor, layer: str, mask: torch.Tensor | None = None) -> float:
    """Relative Gram error at `layer` of an image (inside a pixel mask, if any) against a style image."""
    model = load_vgg()
    with torch.no_grad():
        target = GramTarget(feature_moments(model(style, (layer,))[layer]).normalised())
        features = model(image, (layer,))[layer]
        if mask is not None:
            mask = F.interpolate(mask, size=features.shape[-2:], mode="nearest")
        return float(target(feature_moments(features, mask).normalised()))


def main() -> None:
    """Print the measured effects and write the strips."""
    results = {name: DOCS / f"control_color_{name}.png" for name in ("none", "before", "after")}
    size = imaging.open_image(results["none"]).size
    content = tensor(SAMPLES / "chelsea.jpg", size)
    distances = {name: colour_distance(tensor(path), content) for name, path in results.items()}
    print("colour distance to the content:", ", ".join(f"{k} {v:.1f}" for k, v in distances.items()))
    side_by_side([imaging.open_image(results[name]) for name in ("none", "before", "after")]).save(
        DOCS / "control_color.png"
    )

    scale = tensor(DOCS / "control_scale.png")
    long_side = max(scale.shape[-2:])
    styles = {}
    for key, name in (("A", "starry_night.jpg"), ("B", "the_scream.jpg")):
        image = imaging.open_image(SAMPLES / name)
        styles[key] = tensor(SAMPLES / name, imaging.fit_long_side(*image.size, long_side))
    for layer in ("conv1_1", "conv2_1", "conv4_1", "conv5_1"):
        a, b = gram_error(scale, styles["A"], layer), gram_error(scale, styles["B"], layer)
        print(f"scale control, {layer}: Gram error vs A (deep) {a:.3f}, vs B (shallow) {b:.3f}")
    side_by_side(
        [
            imaging.open_image(DOCS / "control_scale.png"),
            *(imaging.open_image(SAMPLES / n) for n in ("starry_night.jpg", "the_scream.jpg")),
        ]
    ).save(DOCS / "control_scale_strip.png")

    regions = tensor(DOCS / "control_regions.png")
    height, width = regions.shape[-2:]
    label = tensor(DOCS / "chelsea_labels.png", (width, height))
    red = ((label[:, 0:1] > 128) & (label[:, 2:3] < 128)).float()
    blue = ((label[:, 2:3] > 128) & (label[:, 0:1] < 128)).float()
    inside = {name: -F.max_pool2d(-m, 17, stride=1, padding=8) for name, m in (("red", red), ("blue", blue))}
    own = {"red": styles["B"], "blue": styles["A"]}  # the README's command: #ff0000=1 (Scream), #0000ff=0 (Starry)
    for layer in ("conv1_1", "conv2_1", "conv3_1"):
        for name, mask in inside.items():
            other = styles["A"] if own[name] is styles["B"] else styles["B"]
            mine, theirs = gram_error(regions, own[name], layer, mask), gram_error(regions, other, layer, mask)
            print(f"regions, {layer}, {name} region: Gram error vs its own style {mine:.3f}, vs the other {theirs:.3f}")
    labels = imaging.open_image(DOCS / "chelsea_labels.png").resize((width, height), Image.Resampling.NEAREST)
    side_by_side([labels, imaging.open_image(DOCS / "control_regions.png")]).save(DOCS / "control_regions_strip.png")


if __name__ == "__main__":
    main()
