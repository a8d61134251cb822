"""Parameter validation: every bad argument to stylize() is an EngineError that names the problem."""

from __future__ import annotations

import math

import pytest
import torch

from impasto.worker.engine import EngineError, Resume, StyleParams, imaging, stylize
from impasto.worker.engine.losses import gram
from impasto.worker.engine.objective import blended_style_grams

NAN, INF = math.nan, math.inf

BAD_PARAMS = [
    # (StyleParams overrides, regex the message must match)
    ({"content_layers": ("conv4_5",)}, r"content_layers: unknown layer 'conv4_5'"),
    ({"style_layers": ("conv1_1", "relu2_1")}, r"style_layers: unknown layer 'relu2_1'"),
    ({"style_layers": ()}, r"style_layers must name at least one layer"),
    ({"content_layers": ("conv4_2", "conv4_2")}, r"content_layers names a layer twice"),
    ({"content_weight": -1.0}, r"content_weight must be finite and in \[0\.0"),
    ({"style_weight": NAN}, r"style_weight must be finite"),
    ({"tv_weight": INF}, r"tv_weight must be finite"),
    ({"style_weight": "1e4"}, r"style_weight must be a number"),
    ({"content_weight": 0.0, "style_weight": 0.0}, r"both 0"),
    ({"iterations": 0}, r"iterations must be an integer from 1"),
    ({"iterations": -5}, r"iterations must be an integer from 1"),
    ({"iterations": 2.5}, r"iterations must be an integer"),
    ({"iterations": True}, r"iterations must be an integer"),
    ({"size": 8}, r"size must be an integer from 16"),
    ({"style_scale": 0.0}, r"style_scale must be finite .*not 0"),
    ({"style_layer_weights": (1.0, 2.0)}, r"style_layer_weights has 2 values for 5 style layers"),
    ({"style_layer_weights": (1.0, 1.0, -1.0, 1.0, 1.0)}, r"style_layer_weights must be finite"),
    ({"style_layer_weights": (1.0, 1.0, NAN, 1.0, 1.0)}, r"style_layer_weights must be finite"),
    ({"optimizer": "sgd"}, r"optimizer must be one of lbfgs, adam"),
    ({"learning_rate": 0.0}, r"learning_rate must be finite .*not 0"),
    ({"learning_rate": NAN}, r"learning_rate must be finite"),
    ({"lbfgs_history": 0}, r"lbfgs_history must be an integer from 1"),
    ({"lbfgs_first_step": 0.0}, r"lbfgs_first_step must be finite .*not 0"),
    ({"lbfgs_first_step": NAN}, r"lbfgs_first_step must be finite"),
    ({"init": "random"}, r"init must be one of content, noise, image"),
    ({"seed": -1}, r"seed must be an integer from 0"),
    ({"pooling": "min"}, r"pooling must be one of max, avg"),
    ({"scales": (0.5,)}, r"scales must end at 1\.0"),
    ({"scales": (0.25, 0.5)}, r"scales must end at 1\.0"),
    ({"scales": (1.0, 0.5)}, r"scales must be strictly increasing"),
    ({"scales": (0.5, 0.5, 1.0)}, r"scales must be strictly increasing"),
    ({"scales": ()}, r"scales needs 1 to 6 values"),
    ({"scales": (0.0, 1.0)}, r"scales must be finite .*not 0"),
    ({"scales": (0.5, 1.5)}, r"scales must be finite and in \[0\.0, 1\.0\]"),
    ({"iterations": 1, "scales": (0.5, 1.0)}, r"iterations must be at least the number of scales"),
    ({"snapshot_every": -1}, r"snapshot_every must be an integer from 0"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_PARAMS, ids=[str(o) for o, _ in BAD_PARAMS])
def test_bad_parameter_gives_engine_error(images, overrides, message) -> None:
    """stylize() refuses a bad parameter with an EngineError whose message names the field."""
    params = StyleParams(**({"iterations": 2, "size": 32} | overrides))
    with pytest.raises(EngineError, match=message):
        stylize(images["content"], [images["style"]], params)


BAD_BLENDS = [
    ((1.0,), r"style_blend_weights has 1 values for 2 styles"),
    ((1.0, 1.0, 1.0), r"style_blend_weights has 3 values for 2 styles"),
    ((1.0, -0.5), r"style_blend_weights must be finite and in \[0\.0"),
    ((0.0, 0.0), r"style_blend_weights must not all be 0"),
    ((1.0, NAN), r"style_blend_weights must be finite"),
]


@pytest.mark.parametrize(("blend", "message"), BAD_BLENDS, ids=[str(b) for b, _ in BAD_BLENDS])
def test_bad_blend_weights_give_engine_error(images, blend, message) -> None:
    """Blend weights of the wrong count, negative, NaN or all zero are refused."""
    params = StyleParams(iterations=2, size=32, style_blend_weights=blend)
    with pytest.raises(EngineError, match=message):
        stylize(images["content"], [images["style"], images["style2"]], params)


@pytest.mark.parametrize("count", [0, 9], ids=["no-style", "nine-styles"])
def test_style_count_out_of_range_gives_engine_error(images, count) -> None:
    """No style image, or more than eight, is refused."""
    with pytest.raises(EngineError, match=r"between 1 and 8 style images are needed, got " + str(count)):
        stylize(images["content"], [images["style"]] * count, StyleParams(iterations=2, size=32))


@pytest.fixture
def text_png(tmp_path):
    """A text file named like a PNG."""
    path = tmp_path / "not_an_image.png"
    path.write_text("this is not a PNG\n")
    return path


@pytest.mark.parametrize("which", ["content", "style"])
def test_unreadable_image_gives_engine_error(images, text_png, which) -> None:
    """A text file named .png, as content or as style, is an EngineError naming the file."""
    content = text_png if which == "content" else images["content"]
    style = text_png if which == "style" else images["style"]
    with pytest.raises(EngineError, match=r"cannot read image .*not_an_image\.png"):
        stylize(content, [style], StyleParams(iterations=2, size=32))


def test_missing_image_file_gives_engine_error(images, tmp_path) -> None:
    """A content path that does not exist is an EngineError, not a FileNotFoundError."""
    with pytest.raises(EngineError, match=r"cannot read image .*missing\.jpg"):
        stylize(tmp_path / "missing.jpg", [images["style"]], StyleParams(iterations=2, size=32))


def test_init_image_required_for_init_image(images) -> None:
    """init='image' without an init image is refused before any work."""
    with pytest.raises(EngineError, match=r"init 'image' needs an init image"):
        stylize(images["content"], [images["style"]], StyleParams(iterations=2, size=32, init="image"))


@pytest.mark.parametrize("iteration", [-1, 4, 5], ids=["negative", "at-total", "past-total"])
def test_resume_iteration_out_of_range_gives_engine_error(images, iteration) -> None:
    """Resuming at an iteration outside [0, iterations) is refused."""
    snapshot = imaging.open_image(images["content"])
    with pytest.raises(EngineError, match=r"resume iteration must be in \[0, 4\)"):
        stylize(
            images["content"], [images["style"]], StyleParams(iterations=4, size=32), resume=Resume(snapshot, iteration)
        )


def test_defaults_are_valid() -> None:
    """The default StyleParams validate, and validate() returns the same object."""
    params = StyleParams()
    assert params.validate() is params
    assert params.lr() == 1.0
    assert StyleParams(optimizer="adam").lr() == 0.05


@pytest.mark.parametrize(
    ("iterations", "scales", "plan"),
    [
        (10, (1.0,), [(1.0, 1, 10)]),
        (10, (0.5, 1.0), [(0.5, 1, 5), (1.0, 6, 10)]),
        (7, (0.25, 0.5, 1.0), [(0.25, 1, 2), (0.5, 3, 4), (1.0, 5, 7)]),
        (3, (0.25, 0.5, 1.0), [(0.25, 1, 1), (0.5, 2, 2), (1.0, 3, 3)]),
    ],
)
def test_stage_plan_splits_iterations_without_gaps(iterations, scales, plan) -> None:
    """stage_plan() splits 1..iterations evenly over the scales, the remainder going to the last."""
    assert StyleParams(iterations=iterations, scales=scales).validate().stage_plan() == plan


def test_blend_weights_mix_the_style_grams(vgg, images) -> None:
    """Blend weights (3, 1) give style targets 0.75·Ĝ₁ + 0.25·Ĝ₂ per layer."""
    tensors = []
    for key in ("style", "style2"):
        image = imaging.open_image(images[key])
        tensors.append(imaging.to_tensor(image, imaging.fit_long_side(*image.size, 32)))
    params = StyleParams(style_blend_weights=(3.0, 1.0), style_layers=("conv1_1", "conv3_1"))
    blended = blended_style_grams(vgg, params, tensors)
    with torch.no_grad():
        single = [vgg(t, params.style_layers) for t in tensors]
    for name in params.style_layers:
        expected = 0.75 * gram(single[0][name])[0] + 0.25 * gram(single[1][name])[0]
        torch.testing.assert_close(blended[name], expected, rtol=1e-5, atol=1e-3)


def test_valid_two_style_blend_runs(images, recorder) -> None:
    """A 2-style blend with valid weights runs to completion with finite losses at full size."""
    callbacks = recorder()
    result = stylize(
        images["content"],
        [images["style"], images["style2"]],
        StyleParams(iterations=3, size=32, style_blend_weights=(2.0, 1.0)),
        callbacks,
    )
    assert result.iterations == 3
    assert callbacks.iterations == [1, 2, 3]
    assert result.image.size == (32, 24)
    assert result.losses is not None and math.isfinite(result.losses.total) and result.losses.style > 0
