"""One fixed definition that scores any delivered image: the seed notebook's own loss.

Content: mean((F - P)²) at conv4_2. Style: Σ w_l · mean((G - A)²) / (d·h·w) over conv1_1 ..
conv5_1 (w = 1, .75, .2, .2, .2), unnormalised Grams. Total: content + 1e6 · style. Computed
with bench.reference_gatys (full torchvision vgg19().features, the original weights), the
style squashed to the content's shape as the seed does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from bench.reference_gatys import (
    SEED_CONTENT_LAYER,
    SEED_STYLE_LAYERS,
    SEED_STYLE_WEIGHT,
    caffe,
    seed_features,
    seed_gram,
    seed_inputs,
    seed_terms,
    seed_vgg,
)
from impasto.worker.engine import imaging

CONTENT, STYLE = "shared/samples/chelsea.jpg", "shared/samples/starry_night.jpg"


@dataclass(frozen=True)
class SeedScore:
    """The seed definition's terms for one delivered image."""

    content: float
    style: float  # unweighted, as the notebook's style_loss

    @property
    def total(self) -> float:
        """The notebook's total_loss (content weight 1, style weight 1e6)."""
        return self.content + SEED_STYLE_WEIGHT * self.style

    def reaches(self, target: SeedScore, content_slack: float = 1.3) -> bool:
        """Style at most the target's, content at most content_slack × the target's."""
        return self.style <= target.style and self.content <= content_slack * target.content


class SeedScorer:
    """Scores 8-bit RGB images against the content and the squashed style at one size."""

    def __init__(self, size: int, content: str = CONTENT, style: str = STYLE, device: str = "cpu") -> None:
        self.model = seed_vgg(device)
        self.device = device
        content_rgb, style_rgb = seed_inputs(content, style, size, device)
        self.dims = (content_rgb.shape[-1], content_rgb.shape[-2])
        with torch.no_grad():
            self.content_target = seed_features(caffe(content_rgb), self.model)[SEED_CONTENT_LAYER]
            features = seed_features(caffe(style_rgb), self.model)
            self.grams = {layer: seed_gram(features[layer]) for layer in SEED_STYLE_LAYERS}

    def __call__(self, image: Image.Image) -> SeedScore:
        """Content and style loss of an 8-bit image (resized to the scoring size if it differs)."""
        with torch.no_grad():
            features = seed_features(
                caffe(imaging.to_tensor(image.convert("RGB"), self.dims).to(self.device)), self.model
            )
            content, style = seed_terms(features, self.content_target, self.grams)
        return SeedScore(float(content), float(style))
