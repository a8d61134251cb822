"""What a job may cost: every image the engine holds counts against the size classes, and
snapshots per job are capped."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from flask import Flask

from impasto.shared.size_classes import STYLE_PIXELS_PER_OUTPUT_PIXEL
from impasto.shared.task_names import LARGE_QUEUE, SMALL_QUEUE
from tests.api.conftest import Images, Observed, Submit, image_bytes, keyed_client
from tests.api.test_jobs import assert_nothing_changed


def test_a_style_scaled_past_the_limit_is_422(submit: Submit, observed: Observed) -> None:
    """size 4096 with style_scale 4 makes a 16384 px style image: refused on style_scale, nothing stored."""
    response = submit(params={"size": 4096, "style_scale": 4})
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "invalid_params"
    detail = error["details"][0]
    # The default style is 32x24, so at 16384 px on its long side it is 16384x12288 pixels.
    assert detail["field"] == "style_scale"
    assert str(16384 * 12288) in detail["message"] and str(4096 * 4096) in detail["message"]
    assert_nothing_changed(observed)


def test_the_same_output_with_its_style_at_scale_1_is_accepted(submit: Submit, observed: Observed) -> None:
    """The output alone decides a job whose styles are not larger than it: 4096 px still fits (large class)."""
    response = submit(params={"size": 4096, "style_scale": 1})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert observed.job(response.get_json()["id"]).queue == LARGE_QUEUE


def test_style_pixels_move_a_small_output_to_the_large_class(
    submit: Submit, observed: Observed, broker: redis.Redis, images: Images
) -> None:
    """A 512 px output is small; with four style images at 4x it holds 4 x 2048x1536 style pixels, a large job."""
    small = submit(params={"size": 512})
    assert observed.job(small.get_json()["id"]).queue == SMALL_QUEUE
    heavy = submit(styles=[images.png] * 4, params={"size": 512, "style_scale": 4})
    assert heavy.status_code == 202, heavy.get_data(as_text=True)
    assert 4 * 2048 * 1536 // STYLE_PIXELS_PER_OUTPUT_PIXEL > 1024 * 1024  # the test's premise
    assert observed.job(heavy.get_json()["id"]).queue == LARGE_QUEUE
    assert broker.llen(LARGE_QUEUE) == 1


def test_each_style_is_counted_at_its_own_aspect(submit: Submit, observed: Observed) -> None:
    """A tall narrow style holds fewer pixels than a square one at the same long side."""
    square = image_bytes("PNG", (64, 64))
    narrow = image_bytes("PNG", (8, 64))
    params = {"size": 4096, "style_scale": 3}  # style long side 12288: a square one is 151 M px, counted 18.9 M
    assert submit(styles=[square], params=params).status_code == 422
    assert submit(styles=[narrow], params=params).status_code == 202


@pytest.mark.parametrize(
    ("params", "accepted"),
    [
        ({"iterations": 5000, "snapshot_every": 1}, False),
        ({"iterations": 5000, "snapshot_every": 49}, False),
        ({"iterations": 5000, "snapshot_every": 50}, True),  # exactly 100 snapshots
        ({"iterations": 5000, "snapshot_every": 0}, True),  # none
        ({"iterations": 100, "snapshot_every": 1}, True),
        ({"iterations": 101, "snapshot_every": 1}, False),
    ],
)
def test_snapshots_per_job_are_capped(
    submit: Submit, observed: Observed, params: dict[str, int], accepted: bool
) -> None:
    """More than max_snapshots_per_job (100) snapshots is a 422 on snapshot_every that says what would do."""
    response = submit(params=params)
    if accepted:
        assert response.status_code == 202, response.get_data(as_text=True)
        return
    assert response.status_code == 422
    detail = response.get_json()["error"]["details"][0]
    assert detail["field"] == "snapshot_every"
    fewest = params["iterations"] // 101 + 1
    assert f"use snapshot_every {fewest} or more" in detail["message"]
    assert_nothing_changed(observed)


def test_the_snapshot_cap_is_a_setting(make_app: Callable[..., Flask], submit: Submit, broker: redis.Redis) -> None:
    """max_snapshots_per_job=5: 10 iterations every 2 (5 snapshots) pass, every 1 (10) do not."""
    client = keyed_client(make_app(max_snapshots_per_job=5))
    assert submit(with_client=client, params={"iterations": 10, "snapshot_every": 2}).status_code == 202
    response = submit(with_client=client, params={"iterations": 10, "snapshot_every": 1})
    assert response.status_code == 422
    assert "at most 5 are kept" in response.get_json()["error"]["message"]
