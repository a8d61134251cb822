"""Colour control (Gatys et al. 2017, §5): a linear map of RGB that gives one image another's colour statistics.

With x's pixels of mean μx and covariance Σx, and the reference's μr, Σr, the map is
y = A (x − μx) + μr with A Σx Aᵀ = Σr, so y has exactly the reference's mean and covariance.
A is not unique; the three usual choices (ProGamerGov/Neural-Tools, linear-color-transfer.py):
- "pca":      A = Σr^½ Σx^-½ (symmetric square roots by eigendecomposition; Gatys 2017's choice);
- "cholesky": A = Lr Lx⁻¹ with Σ = L Lᵀ;
- "sym":      A = Σx^-½ (Σx^½ Σr Σx^½)^½ Σx^-½, the symmetric map, which moves colours the least
              (the Monge–Kantorovich optimal transport between the two Gaussians).
"""

from __future__ import annotations

import torch

from impasto.worker.engine.errors import EngineError

METHODS = ("pca", "cholesky", "sym")
# Added to each covariance's diagonal (in 0..255² units): a flat or one-colour image has a singular
# covariance, which no map can invert; this keeps it invertible at a negligible colour change.
_RIDGE = 1e-2


def colour_statistics(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3,) and covariance (3, 3) of the pixels of a (1, 3, H, W) image, in float64."""
    flat = rgb.detach().double().reshape(3, -1)
    mean = flat.mean(dim=1)
    centred = flat - mean[:, None]
    return mean, centred @ centred.T / flat.shape[1]


def match_colours(image: torch.Tensor, reference: torch.Tensor, method: str = "pca") -> torch.Tensor:
    """`image` (1, 3, H, W, 0..255) with the mean and covariance of `reference`'s colours, clipped to 0..255."""
    if method not in METHODS:
        raise EngineError(f"color_transfer_method must be one of {', '.join(METHODS)}; got {method!r}")
    mean_x, cov_x = colour_statistics(image)
    mean_r, cov_r = colour_statistics(reference)
    ridge = _RIDGE * torch.eye(3, dtype=torch.float64, device=cov_x.device)
    cov_x, cov_r = cov_x + ridge, cov_r + ridge
    matrix = linear_map(cov_x, cov_r, method)
    flat = image.detach().double().reshape(3, -1)
    mapped = matrix @ (flat - mean_x[:, None]) + mean_r[:, None]
    return mapped.reshape(image.shape).to(image.dtype).clamp(0, 255)


def linear_map(cov_x: torch.Tensor, cov_r: torch.Tensor, method: str) -> torch.Tensor:
    """A with A Σx Aᵀ = Σr, by `method`."""
    if method == "cholesky":
        return torch.linalg.cholesky(cov_r) @ torch.linalg.inv(torch.linalg.cholesky(cov_x))
    root_x, inverse_root_x = symmetric_root(cov_x), symmetric_root(cov_x, power=-0.5)
    if method == "pca":
        return symmetric_root(cov_r) @ inverse_root_x
    return inverse_root_x @ symmetric_root(root_x @ cov_r @ root_x) @ inverse_root_x


def symmetric_root(matrix: torch.Tensor, power: float = 0.5) -> torch.Tensor:
    """M^power of a symmetric positive semi-definite matrix by eigendecomposition, eigenvalues clamped at 0⁺."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    floor = torch.finfo(values.dtype).eps * values.abs().max().clamp_min(1.0)
    return (vectors * values.clamp_min(floor).pow(power)) @ vectors.T
