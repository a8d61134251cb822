"""Headless Chromium for the web page tests (Debian's /usr/bin/chromium driven by playwright; nothing is
downloaded), and the checks they share: the page's width, and its accessibility tree as Chromium builds it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
TIMEOUT_MS = 120_000  # a busy two-core machine runs the worker and the browser side by side
DESKTOP = {"width": 1280, "height": 820}
PHONE = {"width": 390, "height": 844}

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium: run deploy/local/ensure-browser.sh"
)

# Roles a person operates: each needs a name a screen reader can say.
INTERACTIVE_ROLES = {
    "button", "link", "textbox", "checkbox", "combobox", "spinbutton", "radio", "slider", "switch",
    "searchbox", "listbox", "menuitem", "tab", "option",
}  # fmt: skip
IMAGE_ROLES = {"image", "img"}
# The API's image URLs: a job's final image, its snapshots, its inputs.
JOB_IMAGE_PATH = re.compile(r"^/v1/jobs/[^/]+/(output|intermediates/\d+|inputs/content|inputs/style/\d+)$")


@contextlib.contextmanager
def browser_pages() -> Iterator[Any]:
    """A factory of Chromium pages: call it with a viewport ({"width", "height"}) for a new page."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        contexts = []

        def new_page(viewport: dict[str, int] = DESKTOP) -> Page:
            context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
            contexts.append(context)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            return page

        try:
            yield new_page
        finally:
            for context in contexts:
                context.close()
            browser.close()


def log_in(page: Page, url: str, key: str, path: str = "/") -> None:
    """Open the page at `path` and enter `key`."""
    page.goto(url + path)
    page.fill("#key", key)
    page.click("#key-form button[type=submit]")


def overflow(page: Page) -> dict[str, Any]:
    """How wide the document is against the viewport, whether the root hides overflow, and what sticks out."""
    result: dict[str, Any] = page.evaluate(
        """() => {
          const root = document.documentElement, limit = window.innerWidth;
          // An element inside a scrolling box (the snapshot strip) may extend past it: the box scrolls.
          const scrolls = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
            if (["auto", "scroll"].includes(getComputedStyle(p).overflowX)) return true; } return false; };
          const wide = [...document.querySelectorAll("body *")].filter((el) => {
            const box = el.getBoundingClientRect();
            return box.width > 0 && box.right > limit + 0.5 && !scrolls(el);
          }).slice(0, 5).map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className} right=${
            Math.round(el.getBoundingClientRect().right)}`);
          return {width: Math.max(root.scrollWidth, document.body.scrollWidth), viewport: limit,
                  hidden: [getComputedStyle(root).overflowX, getComputedStyle(document.body).overflowX], wide};
        }"""
    )
    return result


def assert_fits_viewport(page: Page, state: str) -> None:
    """Nothing on the page is wider than the viewport (and nothing is merely clipped to hide it)."""
    found = overflow(page)
    assert found["hidden"] == ["visible", "visible"], f"{state}: the root clips overflow {found}"
    assert found["width"] <= found["viewport"], f"{state}: page {found['width']} px wide, viewport {found}"
    assert not found["wide"], f"{state}: elements past the viewport's edge: {found['wide']}"


def accessibility_problems(page: Page) -> list[str]:
    """Serious problems in Chromium's accessibility tree: unnamed controls and images, valueless progress bars."""
    session = page.context.new_cdp_session(page)
    try:
        nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        session.detach()
    problems = []
    for node in nodes:
        if node.get("ignored"):
            continue
        role = node.get("role", {}).get("value", "")
        name = str(node.get("name", {}).get("value", "")).strip()
        properties = {prop["name"]: prop.get("value", {}).get("value") for prop in node.get("properties", [])}
        where = f"{role} (DOM node {node.get('backendDOMNodeId')})"
        if role in INTERACTIVE_ROLES and not name:
            problems.append(f"{where} has no accessible name")
        if role in IMAGE_ROLES and not name:
            problems.append(f"{where} has no text alternative")
        if role == "progressbar" and properties.get("valuenow") is None and "value" not in node:
            problems.append(f"{where} has no value")
    return problems


def broken_images(page: Page) -> list[str]:
    """Visible <img> elements that did not load (a broken-image icon)."""
    found: list[str] = page.evaluate(
        """() => [...document.images]
             .filter((img) => img.offsetParent !== null
               && (!img.getAttribute("src") || (img.complete && img.naturalWidth === 0)))
             .map((img) => img.alt || img.id)"""
    )
    return found


def record_image_requests(page: Page) -> list[str]:
    """A list that fills with the URL of every job image the page requests from now on (fetch or <img>)."""
    urls: list[str] = []

    def seen(request: Any) -> None:
        if JOB_IMAGE_PATH.match(urlparse(request.url).path):
            urls.append(request.url)

    page.on("request", seen)
    return urls


def full_size(urls: list[str]) -> list[str]:
    """The URLs among `urls` that fetch an image at full size: without ?preview=true."""
    return [url for url in urls if parse_qs(urlparse(url).query).get("preview") != ["true"]]
