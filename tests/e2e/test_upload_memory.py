"""The API process's memory under concurrent uploads of large images, measured on a real gunicorn.

Six submissions of three 6000x6000 PNGs at once: before the decode budget each decoded its
images in full at the same time (a 36 M pixel RGB image is 144 MB in Pillow, so six at once
took an API process from about 120 MB to over 900 MB). Now a process decodes at most
upload_decode_memory_bytes of pixels at a time and the rest wait their turn.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import requests
from PIL import Image

from tests.e2e.conftest import auth, start_production_stack

SIDE = 6000  # 36 M pixels, under the default max_image_pixels (40 M)
DECODED = SIDE * SIDE * 4  # Pillow holds RGB as 4 bytes a pixel: 144 MB
SUBMISSIONS = 6
MB = 1024 * 1024


def gunicorn_worker(arbiter_pid: int) -> int:
    """The pid of the gunicorn arbiter's one worker process."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{arbiter_pid}/task/{arbiter_pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise TimeoutError("gunicorn started no worker")


def memory_kb(pid: int, field: str) -> int:
    """A Vm* line of /proc/<pid>/status, in kB (VmHWM: the peak resident set so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def small_png() -> bytes:
    """A 64x48 PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (9, 9, 9)).save(buffer, "PNG")
    return buffer.getvalue()


def png(color: tuple[int, int, int]) -> bytes:
    """A flat 6000x6000 RGB PNG: a few hundred kB to send, 144 MB to decode."""
    buffer = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), color).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def post_job(url: str, images: list[bytes], answers: list[int]) -> None:
    """Submit one job with the first image as content and the others as styles."""
    files = [("content", ("content.png", images[0], "image/png"))]
    files += [("style", (f"style{i}.png", data, "image/png")) for i, data in enumerate(images[1:])]
    response = requests.post(
        f"{url}/v1/jobs", files=files, data={"params": '{"size": 256}'}, headers=auth(url), timeout=600
    )
    answers.append(response.status_code)


def test_concurrent_large_uploads_stay_within_the_decode_budget(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """Six concurrent submissions of three 6000x6000 PNGs raise the API's peak RSS by about one decode, not six."""
    images = [png((200, 30, 30)), png((30, 200, 30)), png((30, 30, 200))]
    # No worker: only uploads matter here. The wait is long enough for 18 decodes one after another
    # on a slow, shared machine: the bound is on memory, and a waiting submission must not get 503.
    with start_production_stack(tmp_path, postgres_url, redis_url, with_worker=False, upload_decode_wait_s="300") as (
        url,
        processes,
    ):
        worker = gunicorn_worker(processes.children["api"].pid)
        warm: list[int] = []
        post_job(url, [small_png()] * 2, warm)  # imports, pools and first-request costs, before the baseline
        assert warm == [202]
        before = memory_kb(worker, "VmHWM")
        answers: list[int] = []
        threads = [threading.Thread(target=post_job, args=(url, images, answers)) for _ in range(SUBMISSIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        peak = memory_kb(worker, "VmHWM")
        after = memory_kb(worker, "VmRSS")
    assert answers == [202] * SUBMISSIONS
    growth_mb = (peak - before) / 1024
    print(
        f"\nAPI process RSS: peak {before / 1024:.0f} MB before, {peak / 1024:.0f} MB during (+{growth_mb:.0f} MB),"
        f" {after / 1024:.0f} MB after"
    )
    # The default budget (160 MiB) lets one 144 MB decode run at a time. Six at once, as before,
    # would add about 6 x 144 = 864 MB; the bound leaves room for allocator slack and request bodies.
    assert growth_mb < 2.5 * DECODED / MB, f"peak grew by {growth_mb:.0f} MB"
    # And the decoded buffers left the process: glibc's per-thread arenas used to keep them.
    assert (after - before) / 1024 < DECODED / MB, f"{after / 1024:.0f} MB still resident after the uploads"
