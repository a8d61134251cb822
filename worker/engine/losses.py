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
