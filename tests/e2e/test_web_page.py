"""The web page at / in headless Chromium (Debian's package, from deploy/local/ensure-browser.sh),
against real processes: submit through the page, watch it run, cancel another job."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from impasto.cli.stack import EmbeddedStack
from tests.e2e.browser import DESKTOP, TIMEOUT_MS, browser_pages, log_in, needs_chromium
from tests.e2e.conftest import API_KEYS, Processes, auth, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = needs_chromium


@pytest.fixture
def page() -> Iterator[object]:
    """A desktop-sized Chromium page."""
    with browser_pages() as new_page:
        yield new_page(DESKTOP)


def fill_job(page: object, samples: Path, size: int, iterations: int, snapshot_every: int) -> None:
    """Fill the submit form (each control is named as its parameter) and send it."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.set_input_files("input[name=content]", str(samples / "chelsea.jpg"))
    page.set_input_files("input[name=style]", str(samples / "starry_night.jpg"))
    page.fill("input[name=size]", str(size))
    page.fill("input[name=iterations]", str(iterations))
    page.fill("input[name=snapshot_every]", str(snapshot_every))
    page.click("#submit-button")


def test_submit_watch_and_cancel(production_stack: tuple[str, Processes], samples: Path, page: object) -> None:
    """A small job's progress bar moves and its final image appears; a second job is canceled."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    url, processes = production_stack
    try:
        drive_page(page, url, samples)
    except AssertionError as exc:
        # Say what the server saw: the page alone cannot tell a stuck worker from a stuck stream.
        jobs = requests.get(f"{url}/v1/jobs", headers=auth(url), timeout=10).json()["jobs"]
        states = [(job["id"][:8], job["status"], job["progress"]["iteration"]) for job in jobs]
        raise AssertionError(f"{exc}\njobs: {states}\nworker log:\n{processes.log('worker')[-3000:]}") from exc


def drive_page(page: Page, url: str, samples: Path) -> None:
    """The steps of test_submit_watch_and_cancel."""
    from playwright.sync_api import expect

    log_in(page, url, API_KEYS[url])

    fill_job(page, samples, size=64, iterations=30, snapshot_every=5)
    expect(page.locator("#job")).to_be_visible()
    # The page's CSP forbids eval, so the checks read the DOM through locators, not scripts.
    expect(page.locator("#progress-text")).to_have_text(re.compile(r"^iteration [1-9]"))
    bar = page.locator("#bar")
    expect(bar).to_have_attribute("style", re.compile(r"width: [1-9]"))
    first_width = bar.get_attribute("style") or ""
    if "width: 100%" not in first_width:  # it moves: a later progress event widens it
        expect(bar).not_to_have_attribute("style", first_width)
    if screenshot := os.environ.get("IMPASTO_WEB_SCREENSHOT"):  # docs/web_page.png is made this way
        page.wait_for_selector("#strip img", timeout=TIMEOUT_MS)
        page.screenshot(path=screenshot)
    assert re.search(r"#/jobs/[0-9a-f-]{36}$", page.url)  # the job has its own address
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=TIMEOUT_MS)
    expect(bar).to_have_attribute("style", re.compile(r"width: 100%"))
    expect(page.locator("#image-caption")).to_have_text("final image")
    expect(page.locator("#progress-text")).to_have_text(re.compile(r"took \d+"))
    expect(page.locator("#progress")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#image")).to_have_attribute("src", re.compile(r"^blob:"))
    expect(page.locator("#download")).to_be_enabled()
    assert page.locator("#strip button.snapshot img").count() >= 1

    fill_job(page, samples, size=128, iterations=2000, snapshot_every=0)
    expect(page.locator("#job-status")).to_have_text("running", timeout=TIMEOUT_MS)
    page.click("#cancel")
    expect(page.locator("#job-status")).to_have_text("canceled", timeout=TIMEOUT_MS)
    expect(page.locator("#jobs a .status", has_text="canceled")).to_have_count(1)
    expect(page.locator("#error")).to_be_hidden()


def test_login_link_of_impasto_up_works_once(
    tmp_path: Path, samples: Path, page: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-time link logs the page in (on another name for the address than IMPASTO_URL's, whose job
    URLs the page still loads); the same link in a second tab is refused; /web/local-key is gone."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    for name in ("IMPASTO_DATABASE_URL", "IMPASTO_BROKER_URL", "IMPASTO_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMPASTO_DEVICE", "cpu")
    with EmbeddedStack(tmp_path / "data", free_port(), quiet=True) as stack:
        assert requests.get(f"{stack.url}/web/local-key", timeout=10).status_code == 404
        link = stack.login_url().replace("127.0.0.1", "localhost")
        page.goto(link)
        expect(page.locator("#forget-key")).to_be_visible()  # logged in with the local key
        assert "token" not in page.url  # the link is out of the address bar and history
        assert stack.login_url_used()
        fill_job(page, samples, size=32, iterations=4, snapshot_every=2)
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=TIMEOUT_MS)
        expect(page.locator("#image")).to_have_attribute("src", re.compile(r"^blob:"))
        expect(page.locator("#error")).to_be_hidden()

        second = page.context.new_page()  # a new tab: no key in its storage
        second.goto(link)
        expect(second.locator("#error")).to_contain_text("invalid_login_token")
        expect(second.locator("#forget-key")).to_be_hidden()
        second.close()
