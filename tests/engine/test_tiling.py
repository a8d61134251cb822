"""Tiled evaluation (tiling.py) equals the untiled objective and gradient to float32 rounding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from worker.engine import StyleParams, imaging
from worker.engine.objective import Objective, style_grams
from worker.engine.tiling import TiledEvaluation, spans, tiled_features, tiles
from worker.engine.vgg import VGG19Features

PARAMS = StyleParams(tv_weight=5.0)  # every term on, so each one's tiled gradient is checked


def _inputs(images: dict[str, Path], width: int, height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Content, style (at a size of its own) and a current image that is neither."""
    content = imaging.to_tensor(imaging.open_image(images["content"]), (width, height))
    style = imaging.to_tensor(imaging.open_image(images["style"]), (height, height))
    noise = torch.randn(content.shape, generator=torch.Generator().manual_seed(1))
    return content, style, (content + 40 * noise).clamp(0, 255)


def _untiled(objective: Objective, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    leaf = pixels.clone().requires_grad_(True)
    total, terms = objective(leaf)
    total.backward()
    assert leaf.grad is not None
    return total.detach(), terms.detach(), leaf.grad


def _assert_same_gradient(tiled: torch.Tensor, untiled: torch.Tensor) -> None:
    # float32 rounding of sums taken in another order, relative to the gradient's scale.
    scale = float(untiled.abs().max())
    torch.testing.assert_close(tiled, untiled, rtol=1e-4, atol=1e-5 * scale)


_untiled_results: dict[tuple[int, int], tuple[Objective, torch.Tensor, tuple[torch.Tensor, ...]]] = {}


def _untiled_at(
    vgg: VGG19Features, images: dict[str, Path], width: int, height: int
) -> tuple[Objective, torch.Tensor, tuple[torch.Tensor, ...]]:
    """One untiled evaluation per size (the slow part), shared by the tests of this module."""
    if (width, height) not in _untiled_results:
        content, style, pixels = _inputs(images, width, height)
        objective = Objective(vgg, PARAMS, content, [style])
        _untiled_results[width, height] = (objective, pixels, _untiled(objective, pixels))
    return _untiled_results[width, height]


@pytest.mark.parametrize(("width", "height"), [(301, 203), (333, 250)])
@pytest.mark.parametrize("tile", [96, 128])
def test_tiled_objective_and_gradient_equal_untiled(
    vgg: VGG19Features, images: dict[str, Path], width: int, height: int, tile: int
) -> None:
    """At two sizes (not multiples of 16) and two tile sizes, value and gradient agree with the whole image's."""
    objective, pixels, (total, terms, grad) = _untiled_at(vgg, images, width, height)
    cut = [t for t in tiles(height, width, tile) if t.rows.hi - t.rows.lo < height and t.cols.hi - t.cols.lo < width]
    assert cut  # crops cut inside the image on both axes: the halo is what keeps them exact
    t_total, t_terms, t_grad = TiledEvaluation(objective, tile)(pixels)
    torch.testing.assert_close(t_terms, terms, rtol=1e-5, atol=0.0)
    torch.testing.assert_close(t_total, total, rtol=1e-5, atol=0.0)
    _assert_same_gradient(t_grad, grad)


def test_too_small_a_halo_changes_the_gradient(vgg: VGG19Features, images: dict[str, Path]) -> None:
    """With a 32-px halo the tiles' features differ from the image's: the equality above is not for free."""
    objective, pixels, (_, _, grad) = _untiled_at(vgg, images, 301, 203)
    _, _, short = TiledEvaluation(objective, 96, halo=32)(pixels)
    with pytest.raises(AssertionError):
        _assert_same_gradient(short, grad)


def test_tiled_targets_equal_untiled(vgg: VGG19Features, images: dict[str, Path]) -> None:
    """Content features assembled from tiles and a style's tiled Grams equal the whole-image ones."""
    content, style, _ = _inputs(images, 301, 203)
    layers = ("conv2_1", "conv4_2", "conv5_1")
    whole = vgg(content, layers)
    assembled = tiled_features(vgg, content, layers, "max", 96)
    for name in layers:
        torch.testing.assert_close(assembled[name], whole[name], rtol=1e-4, atol=1e-4 * float(whole[name].max()))
    big_style = imaging.to_tensor(imaging.open_image(images["style"]), (260, 260))
    plain = style_grams(vgg, PARAMS, big_style, None)
    tiled = style_grams(vgg, PARAMS, big_style, None, tile=96)
    for name, g in plain.items():
        torch.testing.assert_close(tiled[name], g, rtol=1e-4, atol=1e-5 * float(g.abs().max()))


def test_tiles_cover_every_pixel_once_and_start_on_the_pooling_grid() -> None:
    """Cores partition the image; crops and cores start on multiples of 16; crops stay inside."""
    covered = torch.zeros(261, 347, dtype=torch.int32)
    for t in tiles(261, 347, 96):
        covered[t.rows.start : t.rows.stop, t.cols.start : t.cols.stop] += 1
        for s in (t.rows, t.cols):
            assert s.start % 16 == 0 and s.lo % 16 == 0 and s.lo >= 0
        assert t.rows.hi <= 261 and t.cols.hi <= 347
    assert bool((covered == 1).all())
    with pytest.raises(ValueError, match="multiples of 16"):
        spans(100, 50)


def test_tiled_w2_with_regions_equals_untiled(vgg: VGG19Features, images: dict[str, Path]) -> None:
    """The W2 loss with two regions (masked statistics) tiles exactly too: value and gradient."""
    from PIL import Image, ImageDraw

    from worker.engine.masks import Labels, Region

    content, style, pixels = _inputs(images, 301, 203)
    label = Image.new("RGB", (301, 203), (255, 0, 0))
    ImageDraw.Draw(label).ellipse((60, 30, 240, 190), fill=(0, 0, 255))
    regions = (Region("#ff0000", ((0, 1.0),)), Region("#0000ff", ((0, 1.0),)))
    guides = Labels(regions, label, (None,)).guides((301, 203), [(203, 203)], torch.device("cpu"))
    params = StyleParams(style_loss="w2", regions=(("#ff0000", ((0, 1.0),)), ("#0000ff", ((0, 1.0),))))
    objective = Objective(vgg, params, content, [style], guides=guides)
    assert all(term.mask is not None for term in objective.style_terms)
    total, terms, grad = _untiled(objective, pixels)
    t_total, t_terms, t_grad = TiledEvaluation(objective, 96)(pixels)
    torch.testing.assert_close(t_terms, terms, rtol=1e-4, atol=0.0)
    torch.testing.assert_close(t_total, total, rtol=1e-4, atol=0.0)
    # W2's eigendecomposition of a 512×512 matrix in float32 amplifies the summation-order rounding
    # more than a Gram difference does: equal to 1e-3 of the gradient's scale.
    torch.testing.assert_close(t_grad, grad, rtol=1e-3, atol=1e-3 * float(grad.abs().max()))
