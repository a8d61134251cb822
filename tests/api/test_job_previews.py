"""Previews (`?preview=true`) of a job's images: small JPEGs, made once and stored, answered as the full images are."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from impasto.api.decode_budget import app_decode_budget
from impasto.background.retention import expire_jobs
from impasto.shared.previews import PREVIEW_MAX_SIDE, preview_key
from impasto.shared.status import JobStatus
from impasto.shared.storage import output_key, snapshot_key
from tests.api.conftest import Observed, Submit, WorkerActions, impasto_of, keyed_client

IMAGE_PATHS = ["output", "intermediates/4", "inputs/content", "inputs/style/0"]
BIG = (2400, 1600)  # larger than a preview on both sides: the preview is a real reduction


def encoded(image: Image.Image, image_format: str, **save: object) -> bytes:
    """The image in a format, as Pillow writes it."""
    buffer = io.BytesIO()
    image.save(buffer, image_format, **save)
    return buffer.getvalue()


def big_png(size: tuple[int, int] = BIG) -> bytes:
    """A large PNG with detail in it (noise compresses poorly, as a painted result does)."""
    return encoded(Image.effect_noise(size, 64).convert("RGB"), "PNG")


def finished_job(app: Flask, submit: Submit, worker_actions: WorkerActions, content: bytes | None = None) -> str:
    """A succeeded job whose final image and snapshot 4 are large PNGs with no preview stored (as older jobs have)."""
    job_id = (submit(content=content) if content else submit()).get_json()["id"]
    worker_actions.claim(job_id)
    worker_actions.snapshot(job_id, 4)
    worker_actions.finish(job_id, JobStatus.SUCCEEDED)
    storage, png = impasto_of(app).storage, big_png()
    storage.put(output_key(job_id), png)
    storage.put(snapshot_key(job_id, 4), png)
    return job_id


def test_every_image_has_a_small_jpeg_preview(
    app: Flask, client: FlaskClient, submit: Submit, worker_actions: WorkerActions, observed: Observed
) -> None:
    """Final, snapshot and inputs: a JPEG within PREVIEW_MAX_SIDE, smaller than the original, cacheable by its
    own key only, stored under the job's (or upload's) key the first time and served from there after."""
    # Smooth, so the upload stays small (werkzeug's test client spools a large body to a file it never closes).
    content = encoded(Image.linear_gradient("L").resize(BIG).convert("RGB"), "JPEG")
    job_id = finished_job(app, submit, worker_actions, content=content)
    for path in IMAGE_PATHS:
        full = client.get(f"/v1/jobs/{job_id}/{path}")
        response = client.get(f"/v1/jobs/{job_id}/{path}?preview=true")
        assert response.status_code == 200, (path, response.get_json())
        assert response.mimetype == "image/jpeg", path
        assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        assert response.headers["Vary"] == "Authorization"
        assert response.content_length == len(response.get_data())
        preview = Image.open(io.BytesIO(response.get_data()))
        assert preview.format == "JPEG" and preview.mode == "RGB"
        assert max(preview.size) <= PREVIEW_MAX_SIDE, path
        original = Image.open(io.BytesIO(full.get_data()))
        if max(original.size) > PREVIEW_MAX_SIDE:
            assert max(preview.size) == PREVIEW_MAX_SIDE, path
            if full.mimetype == "image/png":  # the noisy PNGs; a smooth JPEG is small already
                assert len(response.get_data()) < len(full.get_data()) / 3, path
        assert preview.size[0] / preview.size[1] == pytest.approx(original.size[0] / original.size[1], rel=0.01)
    row = observed.job(job_id)
    keys = [row.output_key, row.snapshots[0].key, row.content_key, row.style_keys[0]]
    assert all(preview_key(key) in observed.stored_files() for key in keys), "made once, and kept"
    # The stored preview is what is served from then on (here: replaced, to tell it from a fresh one).
    marker = encoded(Image.new("RGB", (8, 8), "red"), "JPEG")
    impasto_of(app).storage.put(preview_key(row.output_key), marker)
    assert client.get(f"/v1/jobs/{job_id}/output?preview=1").get_data() == marker


def test_a_full_image_is_unchanged_by_previews(
    app: Flask, client: FlaskClient, submit: Submit, worker_actions: WorkerActions
) -> None:
    """Without the parameter, or with preview=false, the image is served as stored."""
    job_id = finished_job(app, submit, worker_actions)
    stored = impasto_of(app).storage.get(output_key(job_id))
    assert client.get(f"/v1/jobs/{job_id}/output?preview=true").mimetype == "image/jpeg"  # made and stored now
    for query in ("", "?preview=false", "?preview=0"):
        response = client.get(f"/v1/jobs/{job_id}/output{query}")
        assert (response.status_code, response.mimetype, response.get_data()) == (200, "image/png", stored)


def test_an_input_preview_is_upright(client: FlaskClient, submit: Submit) -> None:
    """A phone photo stored sideways with an EXIF orientation is previewed as the engine reads it: turned."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    photo = encoded(Image.linear_gradient("L").resize((1600, 1200)).convert("RGB"), "JPEG", exif=exif.tobytes())
    job_id = submit(content=photo).get_json()["id"]
    preview = Image.open(io.BytesIO(client.get(f"/v1/jobs/{job_id}/inputs/content?preview=true").get_data()))
    assert preview.size == (768, 1024)


def test_a_transparent_or_palette_input_previews_as_rgb(client: FlaskClient, submit: Submit) -> None:
    """JPEG has no alpha or palette: such inputs are flattened onto white."""
    clear = encoded(Image.new("RGBA", (40, 30), (0, 0, 0, 0)), "PNG")
    palette = encoded(Image.new("RGB", (40, 30), "blue").convert("P"), "PNG")
    job_id = submit(content=clear, styles=[palette]).get_json()["id"]
    for path, colour in (("inputs/content", (255, 255, 255)), ("inputs/style/0", (0, 0, 255))):
        response = client.get(f"/v1/jobs/{job_id}/{path}?preview=true")
        preview = Image.open(io.BytesIO(response.get_data()))
        assert (preview.mode, preview.size) == ("RGB", (40, 30))
        assert all(abs(a - b) <= 8 for a, b in zip(preview.getpixel((20, 15)), colour, strict=True)), path


@pytest.mark.parametrize("value", ["banana", "2", "", "-1", "truee"])
@pytest.mark.parametrize("path", IMAGE_PATHS)
def test_a_bad_preview_value_is_422_and_changes_nothing(
    app: Flask,
    client: FlaskClient,
    submit: Submit,
    worker_actions: WorkerActions,
    observed: Observed,
    path: str,
    value: str,
) -> None:
    """Anything but a boolean is refused with the API's invalid_query error; no preview is made."""
    job_id = finished_job(app, submit, worker_actions)
    before = observed.stored_files()
    response = client.get(f"/v1/jobs/{job_id}/{path}?preview={value}")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_query" and error["details"][0]["field"] == "preview"
    assert observed.stored_files() == before


@pytest.mark.parametrize("path", IMAGE_PATHS)
def test_previews_answer_404_410_and_401_as_the_full_images_do(
    app: Flask, client: FlaskClient, submit: Submit, worker_actions: WorkerActions, observed: Observed, path: str
) -> None:
    """An unknown job, another key's job, no key, a revoked... each answers the preview as it answers the image."""
    job_id = finished_job(app, submit, worker_actions)
    assert client.get(f"/v1/jobs/{job_id}/{path}?preview=true").mimetype == "image/jpeg"  # the owner's: a preview
    other, anonymous = keyed_client(app), app.test_client()
    cases = [
        (client, f"/v1/jobs/00000000-0000-0000-0000-000000000000/{path}"),
        (client, f"/v1/jobs/{job_id}/inputs/style/7"),
        (other, f"/v1/jobs/{job_id}/{path}"),
        (anonymous, f"/v1/jobs/{job_id}/{path}"),
    ]
    for who, url in cases:
        full, preview = who.get(url), who.get(url + "?preview=true")
        assert preview.status_code == full.status_code and preview.status_code in (401, 404), url
        assert preview.get_json()["error"]["code"] == full.get_json()["error"]["code"]
        assert preview.headers.get("WWW-Authenticate") == full.headers.get("WWW-Authenticate")
    made = [name for name in observed.stored_files() if name.endswith(".preview.jpg")]
    assert len(made) == 1, "only the owner's request made one"

    impasto = impasto_of(app)
    time.sleep(0.02)
    assert expire_jobs(impasto.sessions, impasto.storage, impasto.settings.model_copy(update={"retention_s": 0.01}))
    full, preview = client.get(f"/v1/jobs/{job_id}/{path}"), client.get(f"/v1/jobs/{job_id}/{path}?preview=true")
    assert (preview.status_code, preview.get_json()) == (full.status_code, full.get_json())
    assert preview.status_code == 410


def test_a_missing_original_is_404_as_for_the_full_image(
    app: Flask, client: FlaskClient, submit: Submit, worker_actions: WorkerActions
) -> None:
    """Storage lost the image the row names: the preview answers the full image's 404 JSON."""
    job_id = finished_job(app, submit, worker_actions)
    assert client.get(f"/v1/jobs/{job_id}/intermediates/4?preview=true").mimetype == "image/jpeg"
    impasto_of(app).storage.delete_prefix(output_key(job_id))
    full, preview = client.get(f"/v1/jobs/{job_id}/output"), client.get(f"/v1/jobs/{job_id}/output?preview=true")
    assert (preview.status_code, preview.get_json()) == (full.status_code, full.get_json())
    assert preview.status_code == 404


def test_making_a_preview_waits_for_the_decode_budget(
    app: Flask,
    make_app: Callable[..., Flask],
    api_key: str,
    submit: Submit,
    worker_actions: WorkerActions,
    observed: Observed,
) -> None:
    """The decode of a preview reserves its pixels from the process's upload decode budget: while the budget is
    spent it waits, and past the wait answers 503 server_busy with Retry-After, storing nothing; freed, it goes."""
    job_id = finished_job(app, submit, worker_actions)
    # Another process of the same deployment (database, storage), with a small budget of its own.
    app = make_app(upload_decode_memory_bytes=1024 * 1024, upload_decode_wait_s=0.5)
    client = keyed_client(app, api_key)
    with app.app_context():
        budget = app_decode_budget(impasto_of(app).settings)
    held, release = threading.Event(), threading.Event()

    def hold_the_budget() -> None:
        with budget.reserve(budget.capacity):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_budget)
    holder.start()
    try:
        held.wait(10)
        response = client.get(f"/v1/jobs/{job_id}/output?preview=true")
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "server_busy"
        assert response.headers["Retry-After"].isdigit()
        assert preview_key(output_key(job_id)) not in observed.stored_files()
    finally:
        release.set()
        holder.join()
    assert client.get(f"/v1/jobs/{job_id}/output?preview=true").status_code == 200
    assert budget.in_use == 0


def test_an_image_above_the_pixel_limit_has_no_preview(
    app: Flask, make_app: Callable[..., Flask], api_key: str, submit: Submit, worker_actions: WorkerActions
) -> None:
    """A stored image above max_image_pixels (the limit lowered since) is never decoded: 409 preview_unavailable."""
    job_id = finished_job(app, submit, worker_actions)
    client = keyed_client(make_app(max_image_pixels=1_000_000), api_key)
    response = client.get(f"/v1/jobs/{job_id}/output?preview=true")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "preview_unavailable"
    assert client.get(f"/v1/jobs/{job_id}/output").status_code == 200  # the full image is still there


def test_deleting_a_job_deletes_its_previews(
    client: FlaskClient, submit: Submit, worker_actions: WorkerActions, observed: Observed
) -> None:
    """DELETE removes the previews of the job's images with them; the shared uploads and theirs stay."""
    job_id = submit().get_json()["id"]
    worker_actions.claim(job_id)
    worker_actions.snapshot(job_id, 4)
    worker_actions.finish(job_id, JobStatus.SUCCEEDED)
    for path in IMAGE_PATHS:
        assert client.get(f"/v1/jobs/{job_id}/{path}?preview=true").status_code == 200
    job_previews = [f"jobs/{job_id}/final.preview.jpg", f"jobs/{job_id}/snapshots/000004.preview.jpg"]
    assert set(job_previews) <= set(observed.stored_files())
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    left = observed.stored_files()
    assert not [path for path in left if path.startswith(f"jobs/{job_id}/")]
    assert [path for path in left if path.startswith("uploads/") and path.endswith(".preview.jpg")]
