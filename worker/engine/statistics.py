"""Feature statistics a style loss compares: first and second moments, accumulable over positions.

A style loss is split in two so that it can be evaluated in pieces (tiles, regions):
(a) `feature_moments` sums, over the positions of a feature map (optionally weighted by a mask),
    the count, Σ f and Σ f fᵀ; sums of several pieces add up to the sums of the whole;
(b) a loss of the normalised statistics (losses.py) against a target's.
The Gram loss needs only the second moment E[f fᵀ] (Ĝ); the W2 loss needs the mean and the
covariance E[f fᵀ] − μ μᵀ. Both come from the same sums, so one target serves either loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MomentSums:
    """Σw, Σw·f (C,) and Σw·f fᵀ (C, C) over the positions of a feature map, in fp32 or wider."""

    count: torch.Tensor  # () the number of positions (or the mask's weight in all)
    total: torch.Tensor  # (C,)
    outer: torch.Tensor  # (C, C)

    def __add__(self, other: MomentSums) -> MomentSums:
        """The sums of two pieces together."""
        return MomentSums(self.count + other.count, self.total + other.total, self.outer + other.outer)

    def normalised(self) -> Moments:
        """Per-position mean and second moment; an empty piece gives zeros."""
        count = self.count.clamp_min(1e-12)
        return Moments(mean=self.total / count, second=self.outer / count)


@dataclass(frozen=True)
class Moments:
    """Per-position mean μ (C,) and second moment E[f fᵀ] (C, C) (the per-position Gram Ĝ)."""

    mean: torch.Tensor
    second: torch.Tensor

    def covariance(self) -> torch.Tensor:
        """E[f fᵀ] − μ μᵀ, the covariance of the Gaussian fit."""
        return self.second - torch.outer(self.mean, self.mean)

    def to(self, device: torch.device | str) -> Moments:
        """The same moments on another device."""
        return Moments(self.mean.to(device), self.second.to(device))


def feature_moments(features: torch.Tensor, weights: torch.Tensor | None = None) -> MomentSums:
    """Sums of (B, C, H, W) features over batch and positions, each position weighted by `weights` (B|1, 1, H, W)."""
    b, c, h, w = features.shape
    wide = features if features.dtype == torch.float64 else features.float()  # fp32 at least; float64 for gradcheck
    flat = wide.permute(1, 0, 2, 3).reshape(c, b * h * w)  # (C, B·H·W)
    if weights is None:
        count = flat.new_tensor(float(b * h * w))
        return MomentSums(count, flat.sum(dim=1), flat @ flat.T)
    mask = weights.to(flat.dtype).expand(b, 1, h, w).permute(1, 0, 2, 3).reshape(1, b * h * w)  # (1, B·H·W)
    weighted = flat * mask
    return MomentSums(mask.sum(), weighted.sum(dim=1), weighted @ flat.T)


def blend_moments(parts: Sequence[tuple[float, Moments]]) -> Moments:
    """Σ b·moments / Σ b: the moments of the mixture of the parts' distributions (jcjohnson's Gram blend)."""
    total = sum(weight for weight, _ in parts)
    if total <= 0:
        raise ValueError("blend weights must not all be 0")
    mean = sum((weight / total * m.mean for weight, m in parts), torch.zeros_like(parts[0][1].mean))
    second = sum((weight / total * m.second for weight, m in parts), torch.zeros_like(parts[0][1].second))
    return Moments(mean=mean, second=second)
