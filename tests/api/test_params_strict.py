"""Job params are validated, not coerced: each value must have the type the schema gives it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Observed, Submit
from tests.api.test_jobs import assert_nothing_changed

# params sent -> the field the 422 names. Each was accepted, coerced, before strict validation.
WRONG_TYPES: dict[str, tuple[str, str]] = {
    "iterations true": ('{"iterations": true}', "iterations"),
    "iterations false": ('{"iterations": false}', "iterations"),
    "iterations 64.0": ('{"iterations": 64.0}', "iterations"),
    "size as a string": ('{"size": "64"}', "size"),
    "seed as a string": ('{"seed": "7"}', "seed"),
    "snapshot_every 1.5": ('{"snapshot_every": 1.5}', "snapshot_every"),
    "preserve_color yes": ('{"preserve_color": "yes"}', "preserve_color"),
    "preserve_color 1": ('{"preserve_color": 1}', "preserve_color"),
    "preserve_color 'true'": ('{"preserve_color": "true"}', "preserve_color"),
    "style_weight true": ('{"style_weight": true}', "style_weight"),
    "style_weight as a string": ('{"style_weight": "25"}', "style_weight"),
    "style_scale as a string": ('{"style_scale": "0.5"}', "style_scale"),
    "learning_rate as a string": ('{"learning_rate": "1e-2", "optimizer": "adam"}', "learning_rate"),
    "a scale as a string": ('{"scales": ["0.5", 1.0]}', "scales.0"),
    "a layer weight true": ('{"style_layer_weights": [1, 1, 1, 1, true]}', "style_layer_weights.4"),
    "layers as a string": ('{"content_layers": "conv4_2"}', "content_layers"),
    "optimizer as a list": ('{"optimizer": ["adam"]}', "optimizer"),
    "iterations null": ('{"iterations": null}', "iterations"),
}


@pytest.mark.parametrize("case", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_a_value_of_another_type_is_422(submit: Submit, observed: Observed, case: tuple[str, str]) -> None:
    """A bool for an int, a string for a number or a bool: 422 naming the field, nothing stored or queued."""
    params, field = case
    response = submit(params=params)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "invalid_params"
    assert error["details"][0]["field"] == field, error
    assert_nothing_changed(observed)


@pytest.mark.parametrize(
    ("params", "stored"),
    [
        ({"style_weight": 10, "tv_weight": 0, "style_scale": 1}, {"style_weight": 10.0, "tv_weight": 0.0}),
        ({"scales": [0.5, 1], "style_layer_weights": [1, 2, 3, 4, 5]}, {"scales": [0.5, 1.0]}),
        ({"iterations": 12, "preserve_color": True, "learning_rate": 2}, {"iterations": 12, "learning_rate": 2.0}),
    ],
    ids=["float fields take integers", "lists of floats take integers", "exact types pass"],
)
def test_integers_are_numbers(submit: Submit, params: dict[str, Any], stored: dict[str, Any]) -> None:
    """JSON has one number type: a float field takes 10 as 10.0 (the one conversion strict mode keeps)."""
    response = submit(params=params)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert stored.items() <= response.get_json()["params"].items()


@pytest.mark.parametrize("params", ["null", " null\n", ""], ids=["null", "null with spaces", "empty"])
def test_null_params_take_the_defaults(submit: Submit, params: str) -> None:
    """`params=null`, which the schema allows, is no params: every default, like leaving the field out."""
    response = submit(params=params)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["params"] == submit().get_json()["params"]
    assert response.get_json()["params"]["iterations"] == 500
