"""Tiled evaluation (tiling.py) equals the untiled objective and gradient to float32 rounding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from impasto.worker.engine import StyleParams, imaging
from impasto.worker.engine import objective as objective_module
from impasto.worker.engine.callbacks import Interrupted
from impasto.worker.engine.masks import read_labels
from impasto.worker.engine.objective import WHOLE, Objective, style_moments
from impasto.worker.engine.statistics import MomentSums, feature_moments
from impasto.worker.engine.tiling import TiledEvaluation, spans, tiled_features, tiles
from impasto.worker.engine.vgg import VGG19Features

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


def test_an_interrupt_is_checked_before_every_tile(vgg: VGG19Features, images: dict[str, Path]) -> None:
    """A cancel waits for one tile, not for a whole tiled evaluation (minutes at print sizes)."""
    objective, pixels, _ = _untiled_at(vgg, images, 301, 203)
    count = len(tiles(203, 301, 96))
    checks = 0
    passes: list[int] = []
    hook = vgg.register_forward_hook(lambda *_: passes.append(1))

    def check() -> None:
        nonlocal checks
        checks += 1
        if checks == count + 2:  # the second tile of the second pass
            raise Interrupted

    try:
        with pytest.raises(Interrupted):
            TiledEvaluation(objective, 96, check_interrupt=check)(pixels)
    finally:
        hook.remove()
    assert count >= 4 and checks == count + 2
    assert len(passes) == count + 1, "every tile of pass 1 and one of pass 2 ran; no tile after the interrupt"


def test_tiled_targets_equal_untiled(vgg: VGG19Features, images: dict[str, Path]) -> None:
    """Content features assembled from tiles and a style's tiled Grams equal the whole-image ones."""
    content, style, _ = _inputs(images, 301, 203)
    layers = ("conv2_1", "conv4_2", "conv5_1")
    whole = vgg(content, layers)
    assembled = tiled_features(vgg, content, layers, "max", 96)
    for name in layers:
        torch.testing.assert_close(assembled[name], whole[name], rtol=1e-4, atol=1e-4 * float(whole[name].max()))
    big_style = imaging.to_tensor(imaging.open_image(images["style"]), (260, 260))
    plain = style_moments(vgg, PARAMS, big_style, None, None)
    tiled = style_moments(vgg, PARAMS, big_style, None, None, tile=96)
    assert set(tiled) == set(plain) == {(name, WHOLE) for name in PARAMS.style_layers}
    for key, m in plain.items():
        torch.testing.assert_close(tiled[key].second, m.second, rtol=1e-4, atol=1e-5 * float(m.second.abs().max()))
        torch.testing.assert_close(tiled[key].mean, m.mean, rtol=1e-4, atol=1e-5 * float(m.mean.abs().max()))


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


def _halves(size: tuple[int, int]) -> Image.Image:
    """A label image: red on the left, blue on the right, the border at 3/5 of the width."""
    label = Image.new("RGB", size, (255, 0, 0))
    ImageDraw.Draw(label).rectangle((size[0] * 3 // 5, 0, size[0], size[1]), fill=(0, 0, 255))
    return label


def _permuted_moments(features: torch.Tensor, weights: torch.Tensor | None = None) -> MomentSums:
    """feature_moments with the positions summed in another (fixed, random) order: the same sums, other rounding."""
    b, c, h, w = features.shape
    order = torch.randperm(h * w, generator=torch.Generator().manual_seed(7))
    shuffled = features.reshape(b, c, h * w)[..., order].reshape(b, c, h, w)
    if weights is not None:
        weights = weights.expand(b, 1, h, w).reshape(b, 1, h * w)[..., order].reshape(b, 1, h, w)
    return feature_moments(shuffled, weights)


@pytest.mark.parametrize("style_loss", ["gram", "w2"])
def test_tiled_equals_untiled_for_w2_and_for_masked_regions(
    vgg: VGG19Features, images: dict[str, Path], style_loss: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """h14's statistics: guided (masked) region terms and the W2 loss tile as exactly as float32 allows.

    W2 differentiates eigenvalues of each region's covariance; dead ReLU channels make it singular,
    and its near-zero eigenvalues (clamped, √ near its infinite slope) moved the gradient by ~1e-3 of
    its size under a mere reordering of the float32 sums (measured untiled before h14's noise floor
    in W2Target: 0.7-2.5e-3). So for W2
    the tiled gradient must be as close to the untiled one as the untiled one is to itself with its
    positions summed in another order; a tiling error (a missed halo, a position counted twice) is
    orders of magnitude larger.
    """
    params = StyleParams(
        tv_weight=5.0, style_loss=style_loss, regions=(("#ff0000", ((0, 1.0),)), ("#0000ff", ((1, 1.0),)))
    )
    content, style, pixels = _inputs(images, 240, 160)  # smaller: two styles and regions cost more
    style2 = imaging.to_tensor(imaging.open_image(images["style2"]), (160, 120))
    labels = read_labels(params, 2, _halves((240, 160)), None)
    assert labels is not None
    guides = labels.guides((240, 160), [(160, 160), (160, 120)], torch.device("cpu"))
    objective = Objective(vgg, params, content, [style, style2], guides=guides)
    assert any(term.mask is not None for term in objective.style_terms)
    total, terms, grad = _untiled(objective, pixels)
    assert len(tiles(160, 240, 112)) == 6
    t_total, t_terms, t_grad = TiledEvaluation(objective, 112)(pixels)
    torch.testing.assert_close(t_terms, terms, rtol=1e-4, atol=0.0)
    torch.testing.assert_close(t_total, total, rtol=1e-4, atol=0.0)
    if style_loss == "gram":
        _assert_same_gradient(t_grad, grad)
        return
    monkeypatch.setattr(objective_module, "feature_moments", _permuted_moments)
    _, _, reordered = _untiled(objective, pixels)
    noise, scale = float((reordered - grad).abs().max()), float(grad.abs().max())
    assert noise < 1e-2 * scale  # the premise: W2's own rounding noise is small
    assert float((t_grad - grad).abs().max()) <= max(2 * noise, 1e-4 * scale)
