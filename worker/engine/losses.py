"""The paper's losses: content (feature error), style (Gram error) and total variation.

Normalisation. Gatys et al. write, for a layer with N channels and M = H·W positions,
    content  L = ½ Σ (F − P)²                    style  E = 1/(4N²M²) Σ (G − A)²,   G = F Fᵀ.
Here the Gram matrix is taken per position, Ĝ = F Fᵀ / M, so 1/(4N²M²) Σ (G − A)² equals
¼ · mean((Ĝ − Â)²): the paper's style term exactly, and independent of image size. Each
layer's term is then divided by the same term of its target against zero (¼·mean(Â²) for
style, ½·mean(P²) for content), so that every layer's loss is a relative error: 1.0 means
"as far off as a blank image". That is the paper's loss with per-layer weights w_l / E_l(0, A),
and it makes a weight mean the same thing at every size, every layer and for either set of
VGG weights (caffe's 0..255 inputs and torchvision's 0..1 differ by 1e5 in Gram scale).
"""

from __future__ import annotations

import torch

from impasto.worker.engine.statistics import Moments


def gram(features: torch.Tensor) -> torch.Tensor:
    """Per-position Gram matrix Ĝ = F Fᵀ / M of (B, C, H, W) features -> (B, C, C), in fp32."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).float()
    return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor, target_energy: torch.Tensor) -> torch.Tensor:
    """½·mean((F − P)²), relative to ½·mean(P²)."""
    return (features.float() - target).pow(2).mean() / target_energy


def style_loss(features: torch.Tensor, target_gram: torch.Tensor, target_energy: torch.Tensor) -> torch.Tensor:
    """¼·mean((Ĝ − Â)²) (the paper's E_l), relative to ¼·mean(Â²)."""
    return (gram(features) - target_gram).pow(2).mean() / target_energy


def energy(target: torch.Tensor) -> torch.Tensor:
    """mean(target²), the normaliser of a relative loss; never zero."""
    return target.float().pow(2).mean().clamp_min(1e-12)


def tv_loss(pixels: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of neighbouring pixels, on a 0..1 scale."""
    x = pixels / 255.0
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    return dx + dy


class GramTarget:
    """The Gram loss of statistics against a target's: ¼·mean((Ĝ − Â)²) relative to ¼·mean(Â²)."""

    def __init__(self, target: Moments) -> None:
        self.gram = target.second
        self.energy = energy(target.second)

    def __call__(self, moments: Moments) -> torch.Tensor:
        """The relative Gram error of `moments` (1.0: as far off as a blank image)."""
        return (moments.second - self.gram).pow(2).mean() / self.energy


class W2Target:
    """Squared 2-Wasserstein distance between Gaussian fits, relative to the target's distance from zero.

    W2²(x, t) = |μx − μt|² + tr Σx + tr Σt − 2·tr (Σt^½ Σx Σt^½)^½. The last trace is the sum of the
    square roots of the eigenvalues of Σt^½ Σx Σt^½ (torch.linalg.eigvalsh): only eigenvalues are
    differentiated, whose gradient V·diag(g)·Vᵀ has no 1/(λi − λj) terms, so repeated eigenvalues
    do no harm. They are clamped at a small floor, where √ would have an infinite slope.
    A blank image (μ = 0, Σ = 0) is |μt|² + tr Σt = tr E[f fᵀ] away: that is the normaliser, as
    the Gram loss is normalised by the blank image's error, so that style weights mean the same.
    """

    def __init__(self, target: Moments) -> None:
        self.mean = target.mean
        cov = _symmetric(target.covariance())
        values, vectors = torch.linalg.eigh(cov)
        floor = _eigen_floor(cov)
        self.cov_sqrt = (vectors * values.clamp_min(0).sqrt()) @ vectors.T  # Σt^½
        self.cov_trace = torch.diagonal(cov).sum()
        self.floor = floor
        self.energy = torch.diagonal(target.second).sum().clamp_min(1e-12)

    def __call__(self, moments: Moments) -> torch.Tensor:
        """The relative W2² of `moments` (1.0: as far off as a blank image)."""
        cov = _symmetric(moments.covariance())
        product = _symmetric(self.cov_sqrt @ cov @ self.cov_sqrt)
        values = torch.linalg.eigvalsh(product)
        # Σx from a few positions (a small image's deep layer, a small region) is rank-deficient: its
        # zero eigenvalues come out as rounding noise, where √'s slope is huge and the gradient would be
        # noise too. Eigenvalues under a floor a few ulps of the largest up count as the zeros they are
        # (no value, no gradient). Clamping them up to the floor instead added √floor for each of
        # hundreds of them, which outgrew the true trace and drove W2² below zero (a 48 px job's
        # conv5_1 has 6 positions for 512 channels).
        floor = torch.maximum(self.floor, 100 * torch.finfo(values.dtype).eps * values.max().detach())
        cross = torch.where(values > floor, values.clamp_min(floor).sqrt(), torch.zeros_like(values)).sum()
        mean_term = (moments.mean - self.mean).pow(2).sum()
        return (mean_term + torch.diagonal(cov).sum() + self.cov_trace - 2 * cross) / self.energy


StyleTarget = GramTarget | W2Target
STYLE_LOSSES = ("gram", "w2")


def style_target(kind: str, target: Moments) -> StyleTarget:
    """The style loss `kind` ('gram' or 'w2') against `target`."""
    return W2Target(target) if kind == "w2" else GramTarget(target)


def _symmetric(matrix: torch.Tensor) -> torch.Tensor:
    return (matrix + matrix.T) / 2


def _eigen_floor(cov: torch.Tensor) -> torch.Tensor:
    """A floor for eigenvalues of Σt^½ Σx Σt^½: 10⁻¹² of the target's scale (tr Σt / C)², never zero."""
    scale = torch.diagonal(cov).sum().detach() / cov.shape[0]
    return (1e-12 * scale * scale).clamp_min(torch.finfo(cov.dtype).tiny)
