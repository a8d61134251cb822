"""The engine on a CUDA device: the same result as the CPU in fp32, and bf16 convolutions that still optimise.

Run with `pytest -m gpu` on a machine with a GPU and this repo installed; skipped elsewhere. bench/gpu.sh does
not run them: the GPU image it runs on lacks the service packages tests/conftest.py imports.
"""

from __future__ import annotations

import math

import pytest
import torch

from impasto.worker.engine import StyleParams, stylize

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _run(images, device: str, **overrides):  # type: ignore[no-untyped-def]
    params = StyleParams(**({"iterations": 10, "size": 64} | overrides))
    return stylize(images["content"], [images["style"]], params, device=device)


def test_cuda_fp32_matches_the_cpu(images) -> None:  # type: ignore[no-untyped-def]
    """Ten fp32 iterations on CUDA end within a few percent of the same run on the CPU (TF32 off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cpu, cuda = _run(images, "cpu"), _run(images, "cuda")
    assert cpu.losses is not None and cuda.losses is not None
    assert cuda.device.startswith("cuda")
    assert cuda.losses.total == pytest.approx(cpu.losses.total, rel=0.05)


def test_cuda_bf16_optimises(images) -> None:  # type: ignore[no-untyped-def]
    """bf16 autocast on CUDA: finite fp32 losses that fall, and an end near the fp32 run's."""
    fp32, bf16 = _run(images, "cuda", iterations=20), _run(images, "cuda", iterations=20, precision="bf16")
    assert bf16.losses is not None and fp32.losses is not None and math.isfinite(bf16.losses.total)
    assert bf16.losses.total == pytest.approx(fp32.losses.total, rel=0.25)


def test_cuda_controls_match_the_cpu(images) -> None:  # type: ignore[no-untyped-def]
    """W2, colour transfer, per-style weights and regions on CUDA end near the same run on the CPU (TF32 off)."""
    from PIL import Image, ImageDraw

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with Image.open(images["content"]) as opened:
        label = Image.new("RGB", opened.size, (255, 0, 0))
    ImageDraw.Draw(label).rectangle((label.width // 2, 0, label.width, label.height), fill=(0, 0, 255))
    params = StyleParams(
        iterations=10,
        size=64,
        style_loss="w2",
        color_transfer="before",
        style_layer_weights_per_style=((0.0, 0.0, 1.0, 1.0, 1.0), (1.0, 1.0, 1.0, 0.0, 0.0)),
        regions=(("#ff0000", ((0, 1.0),)), ("#0000ff", ((0, 1.0), (1, 1.0)))),
    )
    styles = [images["style"], images["style2"]]
    cpu = stylize(images["content"], styles, params, device="cpu", mask=label)
    cuda = stylize(images["content"], styles, params, device="cuda", mask=label)
    assert cpu.losses is not None and cuda.losses is not None and math.isfinite(cuda.losses.total)
    assert cuda.losses.total == pytest.approx(cpu.losses.total, rel=0.05)
