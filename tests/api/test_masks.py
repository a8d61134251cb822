"""Spatial control through the API: `mask` and `style_mask` parts with `regions`, stored with the job or refused."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image, ImageDraw

from impasto.shared.storage import upload_key
from impasto.shared.task_names import TRANSFER_QUEUE
from tests.api.conftest import Images, Observed, keyed_client

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)
TWO_REGIONS = {"#ff0000": {"0": 1.0}, "#0000ff": {}}


def label_png(colours: tuple[tuple[int, int, int], ...] = (RED, BLUE), size: tuple[int, int] = (64, 48)) -> bytes:
    """A label image: vertical bands, one per colour."""
    image = Image.new("RGB", size, colours[0])
    draw = ImageDraw.Draw(image)
    band = size[0] // len(colours)
    for index, colour in enumerate(colours[1:], start=1):
        draw.rectangle((index * band, 0, size[0], size[1]), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def noisy_png(size: tuple[int, int] = (32, 32)) -> bytes:
    """A photo-like image with far more than 16 colours."""
    image = Image.effect_noise(size, 80).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def post(
    client: FlaskClient,
    images: Images,
    params: dict[str, Any] | None,
    mask: bytes | None = None,
    style_masks: list[bytes] | None = None,
    styles: int = 1,
) -> Any:
    """POST /v1/jobs with a JPEG content, `styles` PNG styles, and the given masks."""
    data: dict[str, Any] = {
        "content": (io.BytesIO(images.jpeg), "content.jpg"),
        "style": [(io.BytesIO(images.png), f"style{i}.png") for i in range(styles)],
    }
    if params is not None:
        data["params"] = json.dumps({"iterations": 2, "size": 32, **params})
    if mask is not None:
        data["mask"] = (io.BytesIO(mask), "labels.png")
    if style_masks is not None:
        data["style_mask"] = [(io.BytesIO(m), f"style-labels{i}.png") for i, m in enumerate(style_masks)]
    return client.post("/v1/jobs", data=data, content_type="multipart/form-data")


def test_a_job_with_a_mask_stores_it_and_its_keys(client: FlaskClient, images: Images, observed: Observed) -> None:
    """202; the label images are stored content-addressed and the job row names them (a style without one: null)."""
    style_label = label_png((BLUE, RED))
    response = post(
        client, images, {"regions": TWO_REGIONS}, mask=label_png(), style_masks=[style_label, b""], styles=2
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()
    assert job["params"]["regions"] == TWO_REGIONS
    row = observed.job(job["id"])
    assert row.mask_keys == {
        "content": upload_key(label_png(), "png"),
        "styles": [upload_key(style_label, "png"), None],
    }
    assert upload_key(label_png(), "png") in observed.stored_files()
    assert upload_key(style_label, "png") in observed.stored_files()


def test_the_new_controls_are_accepted_and_stored(client: FlaskClient, images: Images, observed: Observed) -> None:
    """style_loss, color_transfer, per-style layer weights and style scales come back in the job's params."""
    params = {
        "style_loss": "w2",
        "color_transfer": "after",
        "color_transfer_method": "sym",
        "style_layer_weights_per_style": [[0, 0, 0, 1, 1], [1, 1, 0, 0, 0]],
        "style_scales": [1.0, 0.5],
    }
    response = post(client, images, params, styles=2)
    assert response.status_code == 202, response.get_data(as_text=True)
    stored = response.get_json()["params"]
    assert {name: stored[name] for name in params} == params
    assert observed.job(response.get_json()["id"]).mask_keys is None


Case = tuple[Callable[[], dict[str, Any]], str, str, str]
REFUSED: dict[str, Case] = {
    "mask colour no region names": (
        lambda: {"params": {"regions": {"#ff0000": {"0": 1.0}}}, "mask": label_png()},
        "invalid_mask", "mask", "#0000ff",
    ),
    "style mask colour no region names": (
        lambda: {"params": {"regions": TWO_REGIONS}, "mask": label_png(), "style_masks": [label_png((RED, GREEN))]},
        "invalid_mask", "style_mask[0]", "#00ff00",
    ),
    "style index out of range": (
        lambda: {"params": {"regions": {"#ff0000": {"1": 1.0}, "#0000ff": {}}}, "mask": label_png()},
        "invalid_params", "regions", "out of range",
    ),
    "unreadable mask": (
        lambda: {"params": {"regions": TWO_REGIONS}, "mask": b"not an image at all"},
        "invalid_image", "mask", "",
    ),
    "photo as a mask": (
        lambda: {"params": {"regions": TWO_REGIONS}, "mask": noisy_png()},
        "invalid_mask", "mask", "more than 16 colours",
    ),
    "mask without regions": (lambda: {"params": {}, "mask": label_png()}, "invalid_mask", "mask", "regions"),
    "regions without a mask": (lambda: {"params": {"regions": TWO_REGIONS}}, "invalid_mask", "mask", "exactly one"),
    "style masks not one per style": (
        lambda: {"params": {"regions": TWO_REGIONS}, "mask": label_png(), "style_masks": [label_png()] * 2},
        "invalid_mask", "style_mask", "one per style",
    ),
    "region colour not #rrggbb": (
        lambda: {"params": {"regions": {"red": {"0": 1.0}}}, "mask": label_png()},
        "invalid_params", "regions.red.[key]", "",
    ),
    "style_scales not one per style": (
        lambda: {"params": {"style_scales": [1.0, 0.5]}}, "invalid_params", "style_scales", "2 values for 1",
    ),
    "per-style row of the wrong length": (
        lambda: {"params": {"style_layer_weights_per_style": [[1.0, 1.0]]}},
        "invalid_params", "params", "one value per style layer",
    ),
    "colour transfer with preserve_color": (
        lambda: {"params": {"color_transfer": "before", "preserve_color": True}},
        "invalid_params", "params", "choose one",
    ),
    "unknown style loss": (lambda: {"params": {"style_loss": "kl"}}, "invalid_params", "style_loss", ""),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_a_mask_that_does_not_fit_is_refused_and_changes_nothing(
    client: FlaskClient, images: Images, observed: Observed, case: Case
) -> None:
    """422 with the code, the field and a message that says what is wrong; no row, no file, no message."""
    arguments, code, field, says = case
    response = post(client, images, **arguments())
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["details"][0]["field"] == field
    assert says in error["message"]
    assert observed.job_count() == 0
    assert observed.stored_files() == []
    assert observed.broker.llen(TRANSFER_QUEUE) == 0


def test_mask_pixels_count_toward_the_jobs_pixels(make_app: Callable[..., Any], images: Images) -> None:
    """A job whose output fits but whose label image is huge goes over the largest size class: 422."""
    app = make_app(max_output_pixels=5000)  # a 32 px output of a 64x48 content is 32x24 = 768 pixels
    client = keyed_client(app)
    small = post(client, images, {"regions": TWO_REGIONS}, mask=label_png(size=(64, 48)))
    assert small.status_code == 202, small.get_data(as_text=True)
    big = post(client, images, {"regions": TWO_REGIONS}, mask=label_png(size=(400, 300)))
    assert big.status_code == 422, big.get_data(as_text=True)
    assert "label images" in big.get_json()["error"]["message"]
