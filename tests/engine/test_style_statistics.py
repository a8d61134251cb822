"""Feature moments (statistics.py) and the two style losses on them (losses.py): Gram and W2."""

from __future__ import annotations

import pytest
import torch

from impasto.worker.engine.losses import GramTarget, W2Target, gram, style_target
from impasto.worker.engine.statistics import Moments, blend_moments, feature_moments


def _features(seed: int, channels: int = 4, height: int = 5, width: int = 6, dtype=torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, channels, height, width, generator=generator, dtype=dtype) * 3


def test_moments_of_pieces_add_up_to_the_whole() -> None:
    """Sums over the left and right halves of a map add up to the sums over the whole (tiling works)."""
    features = _features(0)
    whole = feature_moments(features)
    halves = feature_moments(features[..., :3]) + feature_moments(features[..., 3:])
    torch.testing.assert_close(halves.count, whole.count)
    torch.testing.assert_close(halves.total, whole.total)
    torch.testing.assert_close(halves.outer, whole.outer)


def test_second_moment_is_the_per_position_gram() -> None:
    """The normalised second moment equals losses.gram (Ĝ = F Fᵀ / M)."""
    features = _features(1, dtype=torch.float32)
    torch.testing.assert_close(feature_moments(features).normalised().second, gram(features)[0])


def test_a_binary_mask_gives_the_moments_of_its_positions() -> None:
    """Masked moments equal the moments of the masked columns alone."""
    features = _features(2)
    mask = torch.zeros(1, 1, 5, 6, dtype=torch.float64)
    mask[..., :, 2:4] = 1
    masked = feature_moments(features, mask).normalised()
    alone = feature_moments(features[..., 2:4]).normalised()
    torch.testing.assert_close(masked.mean, alone.mean)
    torch.testing.assert_close(masked.second, alone.second)


def test_blend_gives_the_mixtures_moments() -> None:
    """Blending (3, 1) of two maps' moments equals the moments of the maps pooled 3:1 by positions."""
    a, b = _features(3), _features(4)
    blended = blend_moments([(3.0, feature_moments(a).normalised()), (1.0, feature_moments(b).normalised())])
    pooled = feature_moments(torch.cat([a, a, a, b], dim=-1)).normalised()
    torch.testing.assert_close(blended.mean, pooled.mean)
    torch.testing.assert_close(blended.second, pooled.second)


@pytest.mark.parametrize("kind", ["gram", "w2"])
def test_loss_is_zero_at_the_target_and_one_at_a_blank_image(kind: str) -> None:
    """Both losses are relative: 0 at the target's own statistics, 1.0 for a blank (all-zero) image."""
    target = feature_moments(_features(5)).normalised()
    loss = style_target(kind, target)
    assert float(loss(target)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(feature_moments(torch.zeros(1, 4, 5, 6, dtype=torch.float64)).normalised())) == pytest.approx(
        1.0, rel=1e-6
    )


def test_w2_of_gaussians_matches_the_closed_form_for_diagonal_covariances() -> None:
    """For diagonal Σ, W2² = |μx − μt|² + Σ (σx − σt)²; the loss is that over |μt|² + Σ σt²."""
    mean_t, var_t = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64), torch.tensor([4.0, 1.0, 9.0])
    mean_x, var_x = torch.tensor([0.0, 2.5, 1.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 4.0])
    target = Moments(mean_t, torch.diag(var_t.double()) + torch.outer(mean_t, mean_t))
    other = Moments(mean_x, torch.diag(var_x.double()) + torch.outer(mean_x, mean_x))
    expected = ((mean_x - mean_t).pow(2).sum() + (var_x.sqrt() - var_t.sqrt()).pow(2).sum()) / (
        mean_t.pow(2).sum() + var_t.sum()
    )
    assert float(W2Target(target)(other)) == pytest.approx(float(expected), rel=1e-9)


@pytest.mark.parametrize("kind", [GramTarget, W2Target])
def test_style_losses_pass_gradcheck_in_float64(kind: type) -> None:
    """The analytic gradient of each loss with respect to the features matches finite differences."""
    target = kind(feature_moments(_features(6)).normalised())
    features = _features(7).requires_grad_(True)

    def loss(f: torch.Tensor) -> torch.Tensor:
        return target(feature_moments(f).normalised())

    assert torch.autograd.gradcheck(loss, (features,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_w2_gradcheck_with_a_mask() -> None:
    """W2 through masked moments (a region's statistics) has the right gradient too."""
    target = W2Target(feature_moments(_features(8)).normalised())
    mask = torch.zeros(1, 1, 5, 6, dtype=torch.float64)
    mask[..., 1:4, 1:5] = 1
    features = _features(9).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: target(feature_moments(f, mask).normalised()), (features,), eps=1e-6)


def test_w2_gradient_is_finite_for_rank_deficient_features() -> None:
    """Dead channels (all zero, as after a ReLU) make Σx singular; the clamped eigenvalues keep the gradient finite."""
    target = W2Target(feature_moments(_features(10, dtype=torch.float32)).normalised())
    features = _features(11, dtype=torch.float32)
    features[:, 1] = 0
    features.requires_grad_(True)
    target(feature_moments(features).normalised()).backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_w2_of_rank_deficient_features_matches_the_exact_value() -> None:
    """Few positions for many channels (a small image's deep layer): float32 W2² stays non-negative and
    equals the float64 value with no floor; clamping the zero eigenvalues up to a floor did not."""
    torch.manual_seed(3)
    target = feature_moments(torch.rand(1, 256, 16, 16) * 4).normalised()  # full rank
    few = feature_moments(torch.rand(1, 256, 2, 3) * 4).normalised()  # rank ≤ 5 of 256
    loss = W2Target(target)(few)
    exact = exact_w2(target, few)
    assert loss.item() >= 0
    assert loss.item() == pytest.approx(exact, rel=1e-3)


def exact_w2(target: Moments, moments: Moments) -> float:
    """Relative W2² in float64, square roots of the eigenvalues clamped at zero only."""
    t = Moments(target.mean.double(), target.second.double())
    x = Moments(moments.mean.double(), moments.second.double())
    values, vectors = torch.linalg.eigh(t.covariance())
    root = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root @ x.covariance() @ root).clamp_min(0).sqrt().sum()
    w2 = (x.mean - t.mean).pow(2).sum() + x.covariance().trace() + t.covariance().trace() - 2 * cross
    return float(w2 / t.second.trace())
