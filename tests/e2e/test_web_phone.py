"""The web page at a phone's size (390x844) through a job's life, its accessibility tree at each step,
and a job opened by its address: real gunicorn, a real CPU worker, Debian's Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.conftest import create_postgres_database, drop_postgres_database, flushed_redis
from tests.e2e.browser import (
    PHONE,
    accessibility_problems,
    assert_fits_viewport,
    broken_images,
    browser_pages,
    full_size,
    log_in,
    needs_chromium,
    record_image_requests,
)
from tests.e2e.conftest import API_KEYS, start_production_stack

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = needs_chromium

MAX_RUN_SECONDS = 30  # the long job fails by this limit (run_time_exceeded): a real failed job


@dataclass
class Stack:
    """The running API's URL and key."""

    url: str
    key: str

    def job(self, job_id: str) -> dict[str, Any]:
        """The job JSON, from the API."""
        headers = {"Authorization": f"Bearer {self.key}"}
        response = requests.get(f"{self.url}/v1/jobs/{job_id}", headers=headers, timeout=10)
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        return job


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API under gunicorn and one CPU worker whose jobs fail after MAX_RUN_SECONDS."""
    name, postgres_url = create_postgres_database()
    redis = flushed_redis(11)
    try:
        folder = tmp_path_factory.mktemp("web")
        with start_production_stack(folder, postgres_url, next(redis), max_run_seconds=str(MAX_RUN_SECONDS)) as (
            url,
            _processes,
        ):
            yield Stack(url, API_KEYS[url])
    finally:
        next(redis, None)
        drop_postgres_database(name)


@pytest.fixture(scope="module")
def pages() -> Iterator[Any]:
    """New Chromium pages for this module's tests."""
    with browser_pages() as new_page:
        yield new_page


def check_state(page: Page, state: str) -> None:
    """What must hold in every state: nothing wider than the phone, a clean accessibility tree, no broken image."""
    assert_fits_viewport(page, state)
    assert accessibility_problems(page) == [], state
    assert broken_images(page) == [], state


def submit(page: Page, samples: Path, size: int, iterations: int, snapshot_every: int, styles: int = 1) -> str:
    """Fill the form as a person would and submit; the new job's id, from the address the page moved to."""
    from playwright.sync_api import expect

    page.set_input_files("input[name=content]", str(samples / "chelsea.jpg"))
    style_files = [str(samples / "starry_night.jpg"), str(samples / "the_scream.jpg")]
    page.set_input_files("input[name=style]", style_files[:styles])
    page.fill("input[name=size]", str(size))
    page.fill("input[name=iterations]", str(iterations))
    page.fill("input[name=snapshot_every]", str(snapshot_every))
    previous = page.url
    page.click("#submit-button")
    expect(page).not_to_have_url(previous)
    match = re.search(r"#/jobs/([0-9a-f-]{36})$", page.url)
    assert match, page.url
    return match.group(1)


def in_view(page: Page, selector: str) -> bool:
    """Whether the element's top is on the screen."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    return 0 <= box["y"] < PHONE["height"]


def test_phone_page_fits_and_follows_a_job(stack: Stack, samples: Path, pages: Any) -> None:
    """Empty, mid-run, failed, finished with many snapshots: never wider than the phone; the job view comes
    into sight after Submit; a failed job's error sits by its status."""
    from playwright.sync_api import expect

    page = pages(PHONE)
    images = record_image_requests(page)
    page.goto(stack.url + "/")
    expect(page.locator("#notice")).to_contain_text("impasto keys create")  # how to get a key
    expect(page.locator("input[name=size]")).to_be_visible()
    check_state(page, "empty, no key")
    log_in(page, stack.url, stack.key)
    expect(page.locator("#jobs")).to_contain_text("No jobs yet")
    check_state(page, "empty, with a key")

    long_id = submit(page, samples, size=32, iterations=5000, snapshot_every=50)
    assert in_view(page, "#job"), "after Submit the job view is on the screen"
    expect(page.locator("#job")).to_be_focused()
    expect(page.locator("#job-status")).to_have_text("running")
    expect(page.locator("#progress-text")).to_have_text(re.compile(r"^iteration [1-9]"))
    expect(page.locator("#progress")).to_have_attribute("aria-valuetext", re.compile(r"^iteration [1-9]"))
    check_state(page, "mid-run")

    expect(page.locator("#job-status")).to_have_text("failed", timeout=(MAX_RUN_SECONDS + 60) * 1000)
    error = page.locator("#job-error")
    expect(error).to_contain_text("run_time_exceeded")
    status_box, error_box = page.locator("#job-status").bounding_box(), error.bounding_box()
    assert status_box and error_box and 0 <= error_box["y"] - status_box["y"] < 120, "the error is by the status"
    expect(page.locator("#announce")).to_have_text(re.compile(r": failed\.$"))
    check_state(page, "failed")
    assert stack.job(long_id)["error"]["code"] == "run_time_exceeded"

    finished_id = submit(page, samples, size=32, iterations=8, snapshot_every=1, styles=2)
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#strip button.snapshot")).to_have_count(8)
    expect(page.locator("#image-caption")).to_have_text("final image")
    expect(page.locator("#jobs a .status", has_text="succeeded")).to_have_count(1)  # the list keeps up
    check_state(page, "finished with many snapshots")
    assert stack.job(finished_id)["status"] == "succeeded"
    # Every image the page showed, live from the event stream too, was fetched as a preview.
    assert len(images) >= 8 + 1 + 3 and full_size(images) == [], images


def test_a_job_opens_from_its_address(stack: Stack, samples: Path, pages: Any) -> None:
    """/#/jobs/<id> in a new tab shows the finished job: inputs, every parameter, timing, "took", the whole loss
    curve; the snapshot thumbnails and job rows work from the keyboard."""
    from playwright.sync_api import expect

    first = pages(PHONE)
    log_in(first, stack.url, stack.key)
    job_id = submit(first, samples, size=32, iterations=6, snapshot_every=2)
    expect(first.locator("#job-status")).to_have_text("succeeded")
    job = stack.job(job_id)

    page = pages(PHONE)  # a new tab: no key yet
    images = record_image_requests(page)
    page.goto(f"{stack.url}/#/jobs/{job_id}")
    expect(page.locator("#notice")).to_contain_text("API key")
    page.fill("#key", stack.key)
    page.press("#key", "Enter")
    expect(page.locator("#job-title")).to_have_text(f"Job {job_id}")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#progress-text")).to_have_text(re.compile(r"took \d+ s"))
    details = page.locator("#job-details")

    def value_of(term: str) -> Any:
        return details.locator("dt", has_text=re.compile(f"^{term}$")).locator("xpath=following-sibling::dd[1]")

    for name, value in job["params"].items():
        if isinstance(value, int) and not isinstance(value, bool):
            expect(value_of(name)).to_have_text(str(value))
        else:
            expect(value_of(name)).to_have_count(1)
    for term in ("created", "queued for", "ran for", "iterations per second", "attempts"):
        expect(value_of(term)).not_to_have_text("")
    expect(value_of("device")).to_have_text(job["metrics"]["device"])
    expect(details.locator(".inputs img")).to_have_count(2)  # content and style, from the API
    # The loss history of the finished job (events ?from=start): a curve, not just the last value.
    curve = re.compile(r"from .* to .* at iteration 6 \(\d+ values\)")
    expect(page.locator("#loss")).to_have_attribute("aria-label", curve)
    expect(page.locator("#download")).to_be_enabled()
    check_state(page, "a finished job opened by its address")

    # Keyboard: a snapshot thumbnail is a button; Enter shows it.
    snapshot = page.locator("#strip button.snapshot").first
    snapshot.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#image-caption")).to_have_text("iteration 2")
    # Inputs, snapshots and the final image: all fetched as previews (small JPEGs), none at full size.
    assert len(images) >= 2 + 3 + 1 and full_size(images) == [], images
    shown = page.evaluate("() => [...document.images].filter((img) => img.src).map((img) => img.src)")
    assert shown and all(src.startswith("blob:") for src in shown), shown
    sizes = page.evaluate(
        "() => [...document.images].filter((img) => img.src).map((img) => [img.naturalWidth, img.naturalHeight])"
    )
    assert all(0 < max(size) <= 1024 for size in sizes), sizes
    # A job row is a link: focus and Enter open its address.
    row = page.locator(f'#jobs a[href="#/jobs/{job_id}"]')
    expect(row).to_have_attribute("aria-current", "page")
    page.goto(f"{stack.url}/")
    expect(page.locator("#job")).to_be_hidden()
    row.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"#/jobs/{job_id}$"))
    expect(page.locator("#job-status")).to_have_text("succeeded")


def test_the_list_follows_a_job_and_a_canceled_job_downloads(stack: Stack, samples: Path, pages: Any) -> None:
    """A job canceled elsewhere (here: the API) turns `canceled` in the list without a reload, while no job is
    open; opened, its newest snapshot is the picture and Download saves that PNG."""
    from playwright.sync_api import expect

    page = pages(PHONE)
    images = record_image_requests(page)
    log_in(page, stack.url, stack.key)
    # Long enough not to end before the cancel on a fast machine; a snapshot soon, well inside MAX_RUN_SECONDS.
    job_id = submit(page, samples, size=32, iterations=300, snapshot_every=3)
    expect(page.locator("#strip button.snapshot")).not_to_have_count(0)
    page.evaluate("location.hash = ''")  # back to the list; the job view closes
    expect(page.locator("#job")).to_be_hidden()
    headers = {"Authorization": f"Bearer {stack.key}"}
    assert requests.post(f"{stack.url}/v1/jobs/{job_id}/cancel", headers=headers, timeout=10).status_code == 200
    row = page.locator(f'#jobs a[href="#/jobs/{job_id}"]')
    expect(row.locator(".status")).to_have_text("canceled")

    row.click()
    download_button = page.locator("#download")
    expect(download_button).to_have_text(re.compile(r"^Download snapshot \d+$"))
    shown_before_download = list(images)
    with page.expect_download() as info:
        download_button.click()
    assert Path(info.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the full PNG, not the preview
    assert shown_before_download and full_size(shown_before_download) == [], shown_before_download
    assert len(full_size(images)) == 1 and "/intermediates/" in full_size(images)[0], images
    check_state(page, "canceled")


def test_the_accessibility_check_finds_what_it_looks_for(stack: Stack, pages: Any) -> None:
    """The tree check is not vacuous: an unnamed button, an image without alt and a valueless progress bar
    put on the page are each reported."""
    page = pages(PHONE)
    page.goto(stack.url + "/")
    assert accessibility_problems(page) == []
    page.evaluate(
        """() => document.body.insertAdjacentHTML("beforeend",
             '<button id="bad-button"></button><img id="bad-img" src="/web/nothing.png">'
             + '<div role="progressbar" id="bad-bar"></div>')"""
    )
    problems = " | ".join(accessibility_problems(page))
    assert "button" in problems and "no accessible name" in problems
    assert "no text alternative" in problems and "progressbar" in problems
