"""The API's job schema and the engine's parameters stay in step."""

from __future__ import annotations

from dataclasses import fields

import pytest

from impasto.shared import size_classes
from impasto.shared.job_params import VGG19_LAYERS, JobParams
from impasto.worker.engine import StyleParams, imaging
from impasto.worker.engine.vgg import FEATURE_LAYERS
from impasto.worker.job_runner import engine_params


def test_layers_are_the_engines() -> None:
    """The schema's layer list is exactly the engine's."""
    assert VGG19_LAYERS == FEATURE_LAYERS


def test_every_job_param_is_an_engine_param_with_the_same_default() -> None:
    """Each JobParams field exists in StyleParams, with the same default (snapshots aside)."""
    engine_defaults = {f.name: f.default for f in fields(StyleParams)}
    for name, field in JobParams.model_fields.items():
        assert name in engine_defaults, name
        if name != "snapshot_every":  # a queue job snapshots by default; a local run need not
            assert field.default == engine_defaults[name], name


def test_stored_params_become_valid_engine_params() -> None:
    """JSON-stored params (lists) map onto a StyleParams that validates."""
    stored = JobParams(style_blend_weights=(1.0, 2.0), scales=(0.5, 1.0)).model_dump(mode="json")
    params = engine_params(stored)
    assert params.scales == (0.5, 1.0) and params.validate(style_count=2) is params


@pytest.mark.parametrize(
    ("width", "height", "long_side"), [(640, 480, 512), (480, 640, 512), (7, 3000, 2048), (1, 1, 8), (333, 777, 1001)]
)
def test_size_classes_size_images_as_the_engine_does(width: int, height: int, long_side: int) -> None:
    """The pixels the API counts for a job (impasto.shared.size_classes) are those the engine makes."""
    assert size_classes.fit_long_side(width, height, long_side) == imaging.fit_long_side(width, height, long_side)
