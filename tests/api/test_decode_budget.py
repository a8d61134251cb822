"""The memory bound on upload decodes: a per-process budget of decoded bytes, JPEGs decoded at 1/8."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import pytest
import redis
from flask import Flask
from PIL import Image

from impasto.api.decode_budget import DecodeBudget, DecodeBusy, app_decode_budget
from impasto.api.images import ImageRejected, check_image, decode_smaller, decoded_bytes
from tests.api.conftest import Observed, Submit, image_bytes, keyed_client
from tests.api.test_jobs import assert_nothing_changed

LIMIT = 40_000_000


def noisy_jpeg(size: tuple[int, int], **save: object) -> bytes:
    """A JPEG of noise, so every part of the file carries pixel data."""
    buffer = io.BytesIO()
    Image.effect_noise(size, 64).convert("RGB").save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run target(0..count-1) on threads at once and wait for them."""
    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def test_reservations_never_exceed_the_budget() -> None:
    """Eight decodes of 40 bytes on a 100-byte budget: never more than two at once, all of them done."""
    budget = DecodeBudget(100, wait_s=30)
    lock = threading.Lock()
    held, peak, done = [0], [0], []

    def decode(index: int) -> None:
        with budget.reserve(40):
            with lock:
                held[0] += 40
                peak[0] = max(peak[0], held[0])
            time.sleep(0.05)
            with lock:
                held[0] -= 40
                done.append(index)

    run_threads(8, decode)
    assert sorted(done) == list(range(8))
    assert peak[0] == 80 and budget.in_use == 0


def test_a_decode_larger_than_the_budget_runs_alone() -> None:
    """An image above the whole budget is decoded, by itself: the pixel limit, not the budget, refuses images."""
    budget = DecodeBudget(100, wait_s=0.2)
    with budget.reserve(10_000):
        assert budget.in_use == 100
        with pytest.raises(DecodeBusy):
            with budget.reserve(1):
                pass
    with budget.reserve(1):
        assert budget.in_use == 1


def test_a_waiting_large_decode_is_not_overtaken_by_smaller_ones() -> None:
    """First come, first served: a small decode that arrives after a waiting large one waits behind it."""
    budget = DecodeBudget(100, wait_s=5)
    order: list[str] = []

    def decode(name: str, nbytes: int) -> threading.Thread:
        def run() -> None:
            with budget.reserve(nbytes):
                order.append(name)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    with budget.reserve(60):
        large = decode("large", 80)
        while not budget._queue:  # the large one is waiting for these 60 bytes
            time.sleep(0.01)
        small = decode("small", 30)
        time.sleep(0.2)
        assert order == []  # 30 would fit beside the 60 held, but the large one is first in line
    large.join(5)
    small.join(5)
    assert order == ["large", "small"] and budget.in_use == 0


def test_a_spent_budget_makes_the_decode_wait_then_gives_up() -> None:
    """The wait is bounded: DecodeBusy after wait_s, and the budget is as it was."""
    budget = DecodeBudget(100, wait_s=0.3)
    with budget.reserve(100):
        started = time.monotonic()
        with pytest.raises(DecodeBusy):
            with budget.reserve(1):
                pass
        assert time.monotonic() - started >= 0.3
    assert budget.in_use == 0 and not budget._queue


def test_a_jpeg_is_decoded_at_an_eighth_of_its_size() -> None:
    """A 4000x3000 JPEG reserves 500x375 pixels (1/64 of the memory); a PNG of that size would need all of it."""
    data = image_bytes("JPEG", (4000, 3000))
    with Image.open(io.BytesIO(data)) as image:
        full = decoded_bytes(image)
        decode_smaller(image)
        assert image.size == (500, 375)
        assert decoded_bytes(image) == 500 * 375 * 4 == full // 64
    budget = DecodeBudget(full, wait_s=0)
    with budget.reserve(full - 500 * 375 * 4):  # only the reduced decode's bytes are left
        checked = check_image(data, LIMIT, budget=budget)
        assert (checked.width, checked.height) == (4000, 3000)  # the real size, for the job's pixel count
        with pytest.raises(DecodeBusy):
            check_image(image_bytes("PNG", (4000, 3000)), LIMIT, budget=budget)


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("kept", [0.3, 0.6, 0.95])
def test_a_truncated_jpeg_is_still_refused(progressive: bool, kept: float) -> None:
    """The reduced decode still reads every byte: a cut-off JPEG fails as it did at full size."""
    data = noisy_jpeg((1200, 900), progressive=progressive)
    assert check_image(data, LIMIT).width == 1200
    with pytest.raises(ImageRejected) as caught:
        check_image(data[: int(len(data) * kept)], LIMIT)
    assert caught.value.code == "invalid_image"


def test_a_submission_that_finds_the_budget_spent_gets_503(
    make_app: Callable[..., Flask], submit: Submit, broker: redis.Redis
) -> None:
    """While other decodes hold the budget past the wait: 503 server_busy with Retry-After, nothing stored."""
    app = make_app(upload_decode_memory_bytes=1000, upload_decode_wait_s=0.2)
    client = keyed_client(app)
    with app.app_context():
        budget = app_decode_budget(app.extensions["impasto"].settings)
    with budget.reserve(1000):
        response = submit(with_client=client)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["code"] == "server_busy"
    assert_nothing_changed(Observed(app, broker))
    assert submit(with_client=client).status_code == 202  # the budget is free again
