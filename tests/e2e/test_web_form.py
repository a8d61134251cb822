"""The web page's job form, built from /openapi.json: every parameter and part the schema has, errors beside
their fields, a key checked when entered, and "copy as curl / Python" that really submit the same job.
The API runs under gunicorn without a worker: jobs stay queued, which is all these tests need."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.conftest import create_postgres_database, drop_postgres_database, flushed_redis
from tests.e2e.browser import DESKTOP, accessibility_problems, broken_images, browser_pages, log_in, needs_chromium
from tests.e2e.conftest import API_KEYS, ROOT, start_production_stack

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(URL, key) of the API under gunicorn, with no worker."""
    name, postgres_url = create_postgres_database()
    redis = flushed_redis(11)
    try:
        with start_production_stack(tmp_path_factory.mktemp("form"), postgres_url, next(redis), with_worker=False) as (
            url,
            _processes,
        ):
            yield url, API_KEYS[url]
    finally:
        next(redis, None)
        drop_postgres_database(name)


@pytest.fixture
def page(api: tuple[str, str]) -> Iterator[Page]:
    """A desktop page logged in with the stack's key."""
    with browser_pages() as new_page:
        page = new_page(DESKTOP)
        log_in(page, *api)
        yield page


def schema_of(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The multipart parts of POST /v1/jobs and the params properties, as /openapi.json publishes them."""
    spec = requests.get(f"{url}/openapi.json", timeout=10).json()
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    parts = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["properties"]
    return parts, spec["components"]["schemas"]["JobParams"]["properties"]


def choose_images(page: Page, samples: Path) -> None:
    """A content image and two styles."""
    page.set_input_files("input[name=content]", str(samples / "chelsea.jpg"))
    page.set_input_files("input[name=style]", [str(samples / "starry_night.jpg"), str(samples / "the_scream.jpg")])


def test_the_form_offers_every_parameter_of_the_schema(api: tuple[str, str], page: Page, samples: Path) -> None:
    """A control named as each part and each parameter, and no other; the API's defaults and bounds;
    thumbnails of the chosen images and one blend weight per style."""
    from playwright.sync_api import expect

    parts, params = schema_of(api[0])
    choose_images(page, samples)
    expect(page.locator("input[name=style_blend_weights]")).to_have_count(2)
    expect(page.locator(".field[data-field=content] .thumbs img")).to_have_count(1)
    expect(page.locator(".field[data-field=style] .thumbs img").last).to_have_attribute("alt", "the_scream.jpg")
    names = set(page.eval_on_selector_all("#submit-form [name]", "nodes => nodes.map(n => n.name)"))
    expected = (set(parts) - {"params"}) | set(params)
    assert names == expected
    for name, schema in params.items():
        control = page.locator(f"#submit-form [name={name}]").first
        if isinstance(schema.get("default"), int | float) and not isinstance(schema["default"], bool):
            assert float(control.input_value()) == schema["default"], name
        if "maximum" in schema:
            assert float(control.get_attribute("max") or "nan") == float(schema["maximum"]), name
        if schema.get("description"):
            expect(page.locator(f".field[data-field={name}] .help")).to_contain_text(schema["description"])
    page.click(".advanced summary")
    assert accessibility_problems(page) == []
    assert broken_images(page) == []


def test_new_parts_and_parameters_appear_by_themselves(api: tuple[str, str], samples: Path) -> None:
    """A schema with a new file part and a new structured parameter (masks and regions, say) gets controls for
    them, named as they are, with no change to the page."""
    from playwright.sync_api import Route, expect

    url, key = api
    spec = requests.get(f"{url}/openapi.json", timeout=10).json()
    submission = spec["components"]["schemas"]["JobSubmission"]["properties"]
    submission["mask"] = {"type": "string", "format": "binary", "description": "where the style goes"}
    submission["style_mask"] = {"type": "array", "items": {"type": "string", "format": "binary"}}
    spec["components"]["schemas"]["JobParams"]["properties"]["regions"] = {
        "anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "null"}],
        "default": None,
        "description": "style per region",
    }

    def serve(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(spec))

    with browser_pages() as new_page:
        page = new_page(DESKTOP)
        page.route("**/openapi.json", serve)
        log_in(page, url, key)
        expect(page.locator("input[type=file][name=mask]")).to_have_count(1)
        expect(page.locator("input[type=file][name=style_mask][multiple]")).to_have_count(1)
        expect(page.locator("textarea[name=regions]")).to_have_count(1)
        page.click(".advanced summary")
        page.fill("textarea[name=regions]", '[{"style": 0}]')
        choose_images(page, samples)
        page.click("#copy-curl")
        expect(page.locator("#snippet")).to_have_value(re.compile(re.escape('params={"regions":[{"style":0}]}')))


def test_errors_stand_beside_their_fields(page: Page, samples: Path) -> None:
    """The API's per-field details mark the field with its message; a fixed field is unmarked on resubmit."""
    from playwright.sync_api import expect

    page.click("#submit-button")  # nothing chosen
    expect(page.locator(".field[data-field=content] .field-error")).to_have_text("choose a file")
    choose_images(page, samples)
    page.fill("input[name=size]", "5")
    page.click("#submit-button")
    size_error = page.locator(".field[data-field=size] .field-error")
    expect(size_error).to_have_text("must be at least 16")
    expect(page.locator("input[name=size]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("input[name=size]")).to_be_focused()
    expect(page.locator("#form-error")).to_have_text("Please correct the marked fields.")
    expect(page.locator(".field[data-field=content] .field-error")).to_be_hidden()
    page.click("#copy-curl")  # copying the request keeps the marks of the last submit
    expect(size_error).to_be_visible()

    page.fill("input[name=size]", "64")
    page.click(".advanced summary")
    page.fill("input[name=style_layer_weights]", "1, 2")  # five style layers
    page.click("#submit-button")
    expect(page.locator(".field[data-field=style_layer_weights] .field-error")).to_contain_text("one value per")
    expect(size_error).to_be_hidden()
    assert page.locator("#jobs a").count() == 0  # nothing was created


def test_a_key_is_checked_when_entered(api: tuple[str, str], page: Page, samples: Path) -> None:
    """A wrong key: the page forgets the last key's jobs and open job, and says how to get a key."""
    from playwright.sync_api import expect

    url, key = api
    choose_images(page, samples)
    page.fill("input[name=size]", "32")
    page.click("#submit-button")
    expect(page.locator("#job")).to_be_visible()
    expect(page.locator("#jobs a")).not_to_have_count(0)
    expect(page.locator("#image")).to_be_hidden()  # a queued job: a placeholder, no broken image
    expect(page.locator("#image-placeholder")).to_be_visible()
    assert broken_images(page) == []
    assert accessibility_problems(page) == []

    page.fill("#key", "imp_wrong_key")
    page.press("#key", "Enter")
    expect(page.locator("#notice")).to_contain_text("refused")
    expect(page.locator("#notice")).to_contain_text("impasto keys create")
    expect(page.locator("#jobs a")).to_have_count(0)
    expect(page.locator("#job")).to_be_hidden()
    expect(page.locator("#forget-key")).to_be_hidden()


def test_copy_as_curl_and_python_submit_the_same_job(api: tuple[str, str], page: Page, samples: Path) -> None:
    """The commands the page writes, run as they are (curl; python with the client), create jobs with exactly
    the parameters on the form."""
    from playwright.sync_api import expect

    url, key = api
    choose_images(page, samples)
    page.fill("input[name=size]", "48")
    page.check("input[name=preserve_color]")
    page.locator("input[name=style_blend_weights]").first.fill("3")
    page.click(".advanced summary")
    page.select_option("select[name=optimizer]", "adam")
    page.uncheck("input[name=style_layers][value=conv5_1]")
    wanted = {
        "size": 48,
        "style_layers": ["conv1_1", "conv2_1", "conv3_1", "conv4_1"],
        "optimizer": "adam",
        "style_blend_weights": [3.0, 1.0],
        "preserve_color": True,
    }
    env = {**os.environ, "IMPASTO_API_KEY": key, "PYTHONPATH": str(ROOT)}
    page.click("#copy-curl")
    curl = page.locator("#snippet").input_value()
    assert key not in curl and "$IMPASTO_API_KEY" in curl
    answer = subprocess.run(["sh", "-c", curl], cwd=samples, env=env, capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    job = json.loads(answer.stdout)
    assert {name: job["params"][name] for name in wanted} == wanted

    page.click("#copy-python")
    expect(page.locator("#snippet")).to_have_value(re.compile("^from impasto import Client"))
    code = page.locator("#snippet").input_value()
    ran = subprocess.run([sys.executable, "-c", code], cwd=samples, env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    job_id, status = ran.stdout.split()
    headers = {"Authorization": f"Bearer {key}"}
    job = requests.get(f"{url}/v1/jobs/{job_id}", headers=headers, timeout=10).json()
    assert status == "queued" and {name: job["params"][name] for name in wanted} == wanted
