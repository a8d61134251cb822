"""The controls of Gatys et al. 2017 on the real VGG19 at small sizes: colour, scale and regions, and W2 end to end."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image, ImageDraw

from impasto.worker.engine import EngineError, GramCache, StyleParams, imaging, stylize
from impasto.worker.engine.color import colour_statistics, linear_map, match_colours
from impasto.worker.engine.losses import GramTarget
from impasto.worker.engine.statistics import feature_moments

SIZE = 48
RED, BLUE = "#ff0000", "#0000ff"


def _tensor(image: Image.Image | str, size: tuple[int, int] | None = None) -> torch.Tensor:
    return imaging.to_tensor(imaging.open_image(image), size)


def _colour_distance(image: torch.Tensor, reference: torch.Tensor) -> float:
    """|Δmean| + ‖ΔΣ‖_F / 255 of two images' RGB statistics."""
    mean_a, cov_a = colour_statistics(image)
    mean_b, cov_b = colour_statistics(reference)
    return float((mean_a - mean_b).norm() + (cov_a - cov_b).norm() / 255)


def _gram_error(vgg, image: torch.Tensor, style: torch.Tensor, layer: str, mask: torch.Tensor | None = None) -> float:
    """Relative Gram error at `layer` of an image (inside a mask at the image's size, if any) against a style."""
    with torch.no_grad():
        target = GramTarget(feature_moments(vgg(style, (layer,))[layer]).normalised())
        features = vgg(image, (layer,))[layer]
        if mask is not None:
            mask = torch.nn.functional.interpolate(mask, size=features.shape[-2:], mode="nearest")
        return float(target(feature_moments(features, mask).normalised()))


@pytest.mark.parametrize("method", ["pca", "cholesky", "sym"])
def test_match_colours_gives_the_references_mean_and_covariance(images, method: str) -> None:
    """Each linear method maps an image onto the reference's colour statistics: exactly (A Σx Aᵀ = Σr), and
    after clipping to 0..255 most of the way (this content is saturated, so clipping takes a part)."""
    style, content = _tensor(str(images["style"])), _tensor(str(images["content"]))
    (_, cov_x), (_, cov_r) = colour_statistics(style), colour_statistics(content)
    matrix = linear_map(cov_x, cov_r, method)
    torch.testing.assert_close(matrix @ cov_x @ matrix.T, cov_r)
    matched = match_colours(style, content, method)
    assert _colour_distance(matched, content) < 0.15 * _colour_distance(style, content)


@pytest.mark.parametrize("when", ["before", "after"])
def test_colour_transfer_moves_the_results_colours_towards_the_contents(images, when: str) -> None:
    """With color_transfer, the painting's colour statistics are nearer the content's than without."""
    base = StyleParams(size=SIZE, iterations=8, style_weight=1e3)
    plain = stylize(images["content"], [images["style"]], base)
    controlled = stylize(images["content"], [images["style"]], StyleParams(**{**base.__dict__, "color_transfer": when}))
    content = _tensor(str(images["content"]), plain.image.size)
    before, after = (
        _colour_distance(_tensor(plain.image), content),
        _colour_distance(_tensor(controlled.image), content),
    )
    assert after < 0.7 * before, (before, after)


def test_per_style_layer_weights_put_one_style_deep_and_the_other_shallow(vgg, images) -> None:
    """Style A on conv4_1/conv5_1 only and B on conv1_1/conv2_1 only: deep Grams nearer A, shallow nearer B."""
    params = StyleParams(
        size=SIZE,
        iterations=15,
        content_weight=0.0,
        style_weight=1.0,
        init="noise",
        style_layer_weights_per_style=((0.0, 0.0, 0.0, 1.0, 1.0), (1.0, 1.0, 0.0, 0.0, 0.0)),
    )
    result = stylize(images["content"], [images["style"], images["style2"]], params)
    image = _tensor(result.image)
    long_side = max(result.image.size)
    a, b = (
        _tensor(str(images[k]), imaging.fit_long_side(64, 64 if k == "style" else 48, long_side))
        for k in ("style", "style2")
    )
    for layer in ("conv4_1", "conv5_1"):
        assert _gram_error(vgg, image, a, layer) < _gram_error(vgg, image, b, layer), layer
    for layer in ("conv1_1", "conv2_1"):
        assert _gram_error(vgg, image, b, layer) < _gram_error(vgg, image, a, layer), layer


def _halves(size: tuple[int, int]) -> Image.Image:
    """A label image: left half red, right half blue."""
    label = Image.new("RGB", size, (255, 0, 0))
    ImageDraw.Draw(label).rectangle((size[0] // 2, 0, size[0], size[1]), fill=(0, 0, 255))
    return label


def test_each_region_ends_nearer_its_own_style(vgg, images) -> None:
    """Left half takes style A, right half style B: each half's Grams are nearer its own style's than the other's."""
    content = imaging.open_image(images["content"])
    params = StyleParams(
        size=64,
        iterations=15,
        content_weight=0.0,
        init="noise",
        regions=((RED, ((0, 1.0),)), (BLUE, ((1, 1.0),))),
    )
    result = stylize(images["content"], [images["style"], images["style2"]], params, mask=_halves(content.size))
    image = _tensor(result.image)
    a, b = _tensor(str(images["style"])), _tensor(str(images["style2"]))
    width = image.shape[-1]
    left = torch.zeros(1, 1, *image.shape[-2:])
    left[..., : width // 2 - 4] = 1  # a margin: positions at the border see both halves
    right = torch.zeros_like(left)
    right[..., width // 2 + 4 :] = 1
    for layer in ("conv1_1", "conv2_1", "conv3_1"):
        assert _gram_error(vgg, image, a, layer, left) < _gram_error(vgg, image, b, layer, left), layer
        assert _gram_error(vgg, image, b, layer, right) < _gram_error(vgg, image, a, layer, right), layer


def test_a_content_only_region_keeps_the_content(images) -> None:
    """A region that names no style is painted by the content loss alone: it stays nearer the content."""
    content = imaging.open_image(images["content"])
    params = StyleParams(size=SIZE, iterations=8, style_weight=1e3, regions=((RED, ((0, 1.0),)), (BLUE, ())))
    result = stylize(images["content"], [images["style"]], params, mask=_halves(content.size))
    image = _tensor(result.image)
    original = _tensor(str(images["content"]), result.image.size)
    width = image.shape[-1]
    styled = (image - original)[..., : width // 2 - 4].abs().mean()
    kept = (image - original)[..., width // 2 + 4 :].abs().mean()
    assert kept < 0.5 * styled, (float(kept), float(styled))


def test_the_gram_cache_key_includes_the_style_mask(images) -> None:
    """The same style with another label image is a cache miss; with the same label, a hit."""
    style = imaging.open_image(images["style"])
    cache = GramCache()
    params = StyleParams(size=32, iterations=1, regions=((RED, ((0, 1.0),)), (BLUE, ((0, 1.0),))))
    content_label = _halves(imaging.open_image(images["content"]).size)
    flipped = _halves(style.size).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for label in (_halves(style.size), flipped, flipped):
        stylize(images["content"], [images["style"]], params, gram_cache=cache, mask=content_label, style_masks=[label])
    assert (cache.misses, cache.hits) == (2, 1)


def test_w2_run_lowers_its_loss(images, recorder) -> None:
    """A W2 run optimises: finite losses that fall from the first iteration to the last."""
    callbacks = recorder()
    stylize(images["content"], [images["style"]], StyleParams(size=SIZE, iterations=6, style_loss="w2"), callbacks)
    assert all(math.isfinite(t) for t in callbacks.totals)
    assert callbacks.totals[-1] < callbacks.totals[0]


BAD_CONTROLS = [
    ({"style_loss": "kl"}, r"style_loss must be one of gram, w2"),
    ({"color_transfer": "during"}, r"color_transfer must be one of none, before, after"),
    ({"color_transfer_method": "lab"}, r"color_transfer_method must be one of pca, cholesky, sym"),
    ({"color_transfer": "after", "preserve_color": True}, r"choose one"),
    ({"style_layer_weights_per_style": ((1.0,) * 5,) * 2}, r"has 2 rows for 1 styles"),
    ({"style_layer_weights_per_style": ((1.0, 1.0),)}, r"a row has 2 values for 5 style layers"),
    ({"style_layer_weights_per_style": ((0.0,) * 5,)}, r"must not all be 0"),
    ({"style_scales": (1.0, 2.0)}, r"style_scales has 2 values for 1 styles"),
    ({"style_scales": (9.0,)}, r"style_scales must be finite and in"),
    ({"regions": ((RED, ((1, 1.0),)),)}, r"style index must be an integer from 0 to 0"),
    ({"regions": (("red", ((0, 1.0),)),)}, r"colour must be #rrggbb"),
    ({"regions": ((RED, ()), ("#FF0000", ()))}, r"names a colour twice"),
    ({"regions": ((RED, ((0, 0.0),)),)}, r"blend weights must not all be 0"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_CONTROLS, ids=[str(o) for o, _ in BAD_CONTROLS])
def test_bad_control_gives_engine_error(images, overrides, message) -> None:
    """stylize() refuses a bad control with an EngineError naming it."""
    with pytest.raises(EngineError, match=message):
        stylize(images["content"], [images["style"]], StyleParams(iterations=1, size=32, **overrides))


def test_mask_with_an_unnamed_colour_is_refused(images) -> None:
    """A label colour no region names is an EngineError that lists it."""
    label = _halves(imaging.open_image(images["content"]).size)
    with pytest.raises(EngineError, match=r"#0000ff"):
        stylize(
            images["content"], [images["style"]], StyleParams(iterations=1, size=32, regions=((RED, ()),)), mask=label
        )


def test_regions_without_a_mask_and_a_mask_without_regions_are_refused(images) -> None:
    """Regions need the content's label image, and a label image needs regions."""
    with pytest.raises(EngineError, match=r"regions need a mask"):
        stylize(images["content"], [images["style"]], StyleParams(iterations=1, size=32, regions=((RED, ()),)))
    with pytest.raises(EngineError, match=r"a mask needs regions"):
        stylize(images["content"], [images["style"]], StyleParams(iterations=1, size=32), mask=_halves((8, 8)))
