"""The paper's losses (losses.py) against hand-computed values, and the Objective's zeros."""

from __future__ import annotations

import pytest
import torch

from impasto.worker.engine import StyleParams, imaging
from impasto.worker.engine.losses import content_loss, energy, gram, style_loss, tv_loss
from impasto.worker.engine.objective import Objective

# One image, two channels, 2x2 positions (M = 4):
#   channel 0 = [[1, 2], [3, 4]], channel 1 = [[0, 1], [0, -1]]
# F Fᵀ = [[1+4+9+16, 0+2+0-4], [.., 0+1+0+1]] = [[30, -2], [-2, 2]]; Ĝ = F Fᵀ / 4.
FEATURES = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]])
GRAM = torch.tensor([[[7.5, -0.5], [-0.5, 0.5]]])


def test_gram_matches_hand_computed_value() -> None:
    """Ĝ = F Fᵀ / (H·W) for a 1x2x2x2 tensor equals the hand-computed matrix."""
    result = gram(FEATURES)
    assert result.shape == (1, 2, 2)
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, GRAM)


def test_gram_is_per_position_so_independent_of_size() -> None:
    """Tiling the feature map 3x3 (9x the positions) leaves the per-position Gram unchanged."""
    tiled = FEATURES.repeat(1, 1, 3, 3)
    torch.testing.assert_close(gram(tiled), GRAM)


def test_gram_of_half_precision_is_fp32() -> None:
    """Half-precision features give an fp32 Gram with the same values."""
    result = gram(FEATURES.half())
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, GRAM)


def test_content_loss_matches_hand_computed_value() -> None:
    """mean((F − P)²) / mean(P²): F=[[1,2],[3,4]], P=1 gives (0+1+4+9)/4 / 1 = 3.5."""
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.ones(1, 1, 2, 2)
    assert content_loss(features, target, energy(target)).item() == pytest.approx(3.5)


def test_content_loss_of_blank_image_is_one() -> None:
    """An all-zero feature map is 'as far off as a blank image': relative content loss 1.0."""
    assert content_loss(torch.zeros_like(FEATURES), FEATURES, energy(FEATURES)).item() == pytest.approx(1.0)


def test_content_loss_is_relative_to_target_scale() -> None:
    """Scaling features and target by 10 leaves the relative content loss unchanged."""
    target = FEATURES
    features = FEATURES + 0.5
    base = content_loss(features, target, energy(target)).item()
    scaled = content_loss(10 * features, 10 * target, energy(10 * target)).item()
    assert base > 0
    assert scaled == pytest.approx(base, rel=1e-6)


def test_style_loss_matches_hand_computed_value() -> None:
    """mean((Ĝ − Â)²) / mean(Â²) with Â = I: diff² = 42.25+.25+.25+.25 → 10.75 / 0.5 = 21.5."""
    target = torch.eye(2).unsqueeze(0)
    assert style_loss(FEATURES, target, energy(target)).item() == pytest.approx(21.5)


def test_style_loss_of_blank_image_is_one() -> None:
    """Zero features against a target Gram give relative style loss 1.0."""
    assert style_loss(torch.zeros_like(FEATURES), GRAM, energy(GRAM)).item() == pytest.approx(1.0)


def test_style_loss_is_independent_of_image_size() -> None:
    """The same texture over 4x the area has the same style loss against a fixed target."""
    target = torch.tensor([[[2.0, 0.3], [0.3, 1.0]]])
    small = style_loss(FEATURES, target, energy(target)).item()
    large = style_loss(FEATURES.repeat(1, 1, 2, 2), target, energy(target)).item()
    assert small > 0
    assert large == pytest.approx(small, rel=1e-6)


def test_style_loss_is_relative_to_target_scale() -> None:
    """Features ×3 (Grams ×9) against a target ×9 give the same relative style loss."""
    target = torch.tensor([[[2.0, 0.3], [0.3, 1.0]]])
    base = style_loss(FEATURES, target, energy(target)).item()
    scaled = style_loss(3 * FEATURES, 9 * target, energy(9 * target)).item()
    assert scaled == pytest.approx(base, rel=1e-5)


def test_energy_of_zeros_is_clamped_above_zero() -> None:
    """energy() of an all-zero target is a tiny positive number, so a relative loss never divides by 0."""
    value = energy(torch.zeros(1, 2, 3, 3)).item()
    assert 0 < value <= 1e-12


def test_tv_loss_matches_hand_computed_value() -> None:
    """Pixels [[0,51,102],[255,255,255]] (÷255 → [[0,.2,.4],[1,1,1]]): dy² mean 2/3 + dx² mean .02."""
    pixels = torch.tensor([[[[0.0, 51.0, 102.0], [255.0, 255.0, 255.0]]]])
    assert tv_loss(pixels).item() == pytest.approx(2 / 3 + 0.02, rel=1e-6)


def test_tv_loss_of_flat_image_is_zero() -> None:
    """A constant image has no total variation."""
    assert tv_loss(torch.full((1, 3, 5, 7), 131.0)).item() == 0.0


def _tensor(path, long_side: int = 48) -> torch.Tensor:
    image = imaging.open_image(path)
    return imaging.to_tensor(image, imaging.fit_long_side(*image.size, long_side))


def test_objective_content_term_is_zero_at_the_content(vgg, images) -> None:
    """Evaluated at the content image itself, the content term is 0 while the style term is not."""
    content, style = _tensor(images["content"]), _tensor(images["style"])
    objective = Objective(vgg, StyleParams(), content, [style])
    with torch.no_grad():
        _, terms = objective(content)
        _, elsewhere = objective(torch.full_like(content, 128.0))
    assert terms[0].item() == pytest.approx(0.0, abs=1e-6)
    assert terms[1].item() > 1.0
    assert elsewhere[0].item() > 0.1


def test_objective_style_term_is_zero_at_the_style(vgg, images) -> None:
    """With content and style the same tensor, the image itself has content and style terms ~0."""
    style = _tensor(images["style"])
    objective = Objective(vgg, StyleParams(), style, [style])
    with torch.no_grad():
        total, terms = objective(style)
        other = imaging.to_tensor(imaging.open_image(images["content"]), (style.shape[-1], style.shape[-2]))
        _, at_content = objective(other)
    assert terms[1].item() == pytest.approx(0.0, abs=1e-6)
    assert total.item() == pytest.approx(0.0, abs=1e-6)
    assert at_content[1].item() > 1.0


def test_objective_terms_scale_with_their_weights(vgg, images) -> None:
    """Each weighted term is its weight times the unweighted loss, and total is their sum."""
    content, style = _tensor(images["content"], 32), _tensor(images["style"], 32)
    unit = Objective(vgg, StyleParams(content_weight=1.0, style_weight=1.0, tv_weight=1.0), content, [style])
    weighted = Objective(vgg, StyleParams(content_weight=3.0, style_weight=50.0, tv_weight=7.0), content, [style])
    image = content.flip(-1) * 0.5 + 60
    with torch.no_grad():
        _, base = unit(image)
        total, terms = weighted(image)
    torch.testing.assert_close(terms, base * torch.tensor([3.0, 50.0, 7.0]), rtol=1e-5, atol=0)
    assert total.item() == pytest.approx(terms.sum().item(), rel=1e-6)
    assert (base > 0).all()
