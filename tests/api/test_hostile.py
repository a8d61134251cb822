"""Hostile submissions: each is refused with its status and code and leaves nothing behind
(no job row, no stored file, no queued message). Unusual but valid images are accepted, stored
by content hash only, and decode as the worker will read them."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from PIL import Image
from werkzeug.test import TestResponse

from impasto.api.rate_limit import KEY_PREFIX
from impasto.shared.api_keys import revoke_key
from impasto.shared.storage import upload_key
from tests.api import image_factory as made
from tests.api.conftest import Images, Observed, add_key, image_bytes, impasto_of

UNKNOWN_KEY = "imp_0123456789ab_" + "A" * 43


def revoked_key(app: Flask) -> str:
    """A key that existed and has been revoked."""
    key = add_key(app, "revoked")
    with impasto_of(app).sessions() as session:
        revoke_key(session, key)
    return key


def wrong_secret(app: Flask) -> str:
    """A real key's id with another secret."""
    key = add_key(app, "victim")
    return key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")


@dataclass(frozen=True)
class Request:
    """One POST /v1/jobs: the form, the Authorization header, and settings for the app."""

    form: Callable[[Images], dict[str, Any]] = lambda i: {}
    authorization: Callable[[Flask, str], str | None] = lambda app, key: f"Bearer {key}"
    settings: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json_body: bool = False


def files(content: bytes | None = None, styles: list[bytes] | None = None, **fields: Any) -> Callable[[Images], Any]:
    """A form builder: the given images (default: the valid test JPEG and PNG) and other fields."""

    def build(images: Images) -> dict[str, Any]:
        form: dict[str, Any] = {"content": (io.BytesIO(images.jpeg if content is None else content), "content.jpg")}
        chosen = [images.png] if styles is None else styles
        form["style"] = [(io.BytesIO(style), f"style{index}.png") for index, style in enumerate(chosen)]
        for name, value in fields.items():
            form[name] = value if isinstance(value, str) else json.dumps(value)
        return form

    return build


def without(name: str, builder: Callable[[Images], dict[str, Any]]) -> Callable[[Images], dict[str, Any]]:
    """A form builder with one field left out."""
    return lambda images: {k: v for k, v in builder(images).items() if k != name}


def header(value: str | None) -> Callable[[Flask, str], str | None]:
    """A fixed Authorization header value (None: no header)."""
    return lambda app, key: value


SMALL_PNG = made.encode(made.noise((20, 20)), "PNG")

# name -> (request, expected status, expected error code)
HOSTILE: dict[str, tuple[Request, int, str]] = {
    # The image bytes
    "zero-byte content": (Request(files(content=b"")), 422, "invalid_image"),
    "zero-byte style": (Request(files(styles=[b""])), 422, "invalid_image"),
    "truncated jpeg": (Request(files(content=made.truncated_jpeg())), 422, "invalid_image"),
    "corrupt jpeg header": (Request(files(content=made.corrupt_jpeg())), 422, "invalid_image"),
    "truncated png": (Request(files(styles=[made.truncated_png()])), 422, "invalid_image"),
    "corrupt png data": (Request(files(content=made.corrupt_png())), 422, "invalid_image"),
    "png failing its crc": (Request(files(content=made.bad_crc_png())), 422, "invalid_image"),
    "png claiming 100000x100000": (Request(files(content=made.png_claiming(100_000, 100_000))), 422, "image_too_large"),
    "bomb 20000x20000": (Request(files(content=made.bomb_png(20_000, 20_000))), 422, "image_too_large"),
    "bomb under pillow's own guard": (Request(files(styles=[made.bomb_png(7_000, 7_000)])), 422, "image_too_large"),
    "text named .png": (Request(files(content=b"just some text, honest\n")), 422, "invalid_image"),
    "svg with script named .png": (Request(files(content=made.svg_with_script())), 422, "invalid_image"),
    "html page with a png appended": (Request(files(content=made.html_then_png(SMALL_PNG))), 422, "invalid_image"),
    "png/html polyglot (script in a text chunk)": (
        Request(files(styles=[made.png_with_script(SMALL_PNG)])),
        422,
        "invalid_image",
    ),
    "gif": (Request(files(content=image_bytes("GIF"))), 415, "unsupported_format"),
    "gif/js polyglot": (Request(files(styles=[made.gif_with_script()])), 415, "unsupported_format"),
    "tiff": (Request(files(content=image_bytes("TIFF"))), 415, "unsupported_format"),
    "animated png": (Request(files(content=made.animated("PNG"))), 415, "unsupported_format"),
    "animated webp": (Request(files(styles=[made.animated("WEBP")])), 415, "unsupported_format"),
    "webp while the setting allows only jpeg and png": (
        Request(files(content=image_bytes("WEBP")), settings={"allowed_image_formats": ("JPEG", "PNG")}),
        415,
        "unsupported_format",
    ),
    "image over max_image_pixels": (
        Request(files(), settings={"max_image_pixels": 64 * 48 - 1}),
        422,
        "image_too_large",
    ),
    # The form
    "oversized body": (Request(files(), settings={"max_upload_bytes": 512}), 413, "payload_too_large"),
    "json body instead of a form": (Request(json_body=True), 415, "unsupported_media_type"),
    "missing content": (Request(without("content", files())), 400, "bad_request"),
    "missing style": (Request(without("style", files())), 400, "bad_request"),
    "content sent as a text field": (
        Request(lambda i: {**files()(i), "content": "not a file"}),
        400,
        "bad_request",
    ),
    "two content images": (
        Request(lambda i: {**files()(i), "content": [(io.BytesIO(i.jpeg), "a.jpg"), (io.BytesIO(i.jpeg), "b.jpg")]}),
        400,
        "bad_request",
    ),
    "too many styles": (Request(lambda i: files(styles=[i.png] * 5)(i)), 422, "too_many_styles"),
    "idempotency key over 255 characters": (
        Request(files(), headers={"Idempotency-Key": "k" * 256}),
        400,
        "bad_request",
    ),
    "idempotency key with a NUL byte": (Request(files(), headers={"Idempotency-Key": "a\x00b"}), 400, "bad_request"),
    "idempotency key not ascii": (Request(files(), headers={"Idempotency-Key": "clé"}), 400, "bad_request"),
    # The parameters
    "NaN weight": (Request(files(params='{"style_weight": NaN}')), 422, "invalid_params"),
    "infinite weight": (Request(files(params='{"content_weight": Infinity}')), 422, "invalid_params"),
    "overflowing weight": (Request(files(params='{"tv_weight": 1e999}')), 422, "invalid_params"),
    "negative weight": (Request(files(params={"style_weight": -1})), 422, "invalid_params"),
    "iterations 0": (Request(files(params={"iterations": 0})), 422, "invalid_params"),
    "iterations 10**9": (Request(files(params={"iterations": 10**9})), 422, "invalid_params"),
    "unknown layer": (Request(files(params={"style_layers": ["conv9_9"]})), 422, "invalid_params"),
    "unknown keys": (Request(files(params={"iterations": 10, "shell": "rm -rf /"})), 422, "invalid_params"),
    "malformed params json": (Request(files(params='{"iterations": 10')), 400, "bad_request"),
    "params nested 20000 deep": (Request(files(params="[" * 20_000)), 400, "bad_request"),
    "params not an object": (Request(files(params="[1, 2]")), 422, "invalid_params"),
    "params over 64 KiB": (Request(files(params=json.dumps({"x": "y" * 70_000}))), 413, "payload_too_large"),
    "output over max_output_pixels": (
        Request(files(params={"size": 1024}), settings={"max_output_pixels": 512 * 512}),
        422,
        "invalid_params",
    ),
    "blend weights for the wrong number of styles": (
        Request(files(params={"style_blend_weights": [1, 2]})),
        422,
        "invalid_params",
    ),
    # The key
    "no authorization header": (Request(files(), header(None)), 401, "unauthorized"),
    "bearer with nothing": (Request(files(), header("Bearer")), 401, "unauthorized"),
    "bearer with spaces": (Request(files(), header("Bearer    ")), 401, "unauthorized"),
    "basic credentials": (Request(files(), header("Basic dXNlcjpwYXNzd29yZA==")), 401, "unauthorized"),
    "key without a scheme": (Request(files(), lambda app, key: key), 401, "unauthorized"),
    "malformed key": (Request(files(), header("Bearer not-an-impasto-key")), 401, "unauthorized"),
    "unknown key": (Request(files(), header(f"Bearer {UNKNOWN_KEY}")), 401, "unauthorized"),
    "real key id, wrong secret": (
        Request(files(), lambda app, key: f"Bearer {wrong_secret(app)}"),
        401,
        "unauthorized",
    ),
    "revoked key": (Request(files(), lambda app, key: f"Bearer {revoked_key(app)}"), 401, "unauthorized"),
    "overlong authorization header": (Request(files(), header("Bearer " + "imp_" * 2000)), 401, "unauthorized"),
}


def send(app: Flask, images: Images, request: Request, key: str) -> TestResponse:
    """Make the request with a plain test client (the header is the case's to choose)."""
    headers = dict(request.headers)
    authorization = request.authorization(app, key)
    if authorization is not None:
        headers["Authorization"] = authorization
    client = app.test_client()
    if request.json_body:
        return client.post("/v1/jobs", json={"content": "x", "style": ["y"]}, headers=headers)
    return client.post("/v1/jobs", data=request.form(images), content_type="multipart/form-data", headers=headers)


def assert_nothing_stored(observed: Observed) -> None:
    """No job row, no stored file, nothing in Redis (any queue, event stream) but rate-limit counters."""
    assert observed.job_count() == 0
    assert observed.stored_files() == []
    assert [key for key in observed.broker.keys() if KEY_PREFIX.encode() not in key] == []


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_request_is_refused_and_leaves_nothing(
    make_app: Callable[..., Flask], broker: redis.Redis, images: Images, case: tuple[Request, int, str]
) -> None:
    """Its status and code, a JSON error with a message, and no trace in SQL, storage or the queue."""
    request, status, code = case
    app = make_app(**request.settings)
    response = send(app, images, request, add_key(app))
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json
    error = response.get_json()["error"]
    assert (error["code"], bool(error["message"])) == (code, True)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_stored(Observed(app, broker))


def test_the_table_is_big_enough() -> None:
    """The issue asks for at least 30 hostile requests."""
    assert len(HOSTILE) >= 30


def test_animated_refusal_says_animated(make_app: Callable[..., Flask], broker: redis.Redis, images: Images) -> None:
    """The message tells the client why: the image is animated."""
    app = make_app()
    response = send(app, images, Request(files(content=made.animated("PNG"))), add_key(app))
    assert "animated" in response.get_json()["error"]["message"]


# name -> (content bytes, stored extension, size the worker sees, a pixel the worker sees at (0, 0))
ACCEPTED: dict[str, tuple[bytes, str, tuple[int, int], tuple[int, int, int]]] = {
    "cmyk jpeg": (made.cmyk_jpeg(), "jpg", (40, 30), (0, 255, 255)),
    "16-bit grey png": (made.png16_grey(), "png", (40, 30), (128, 128, 128)),
    "16-bit rgb png": (made.png16_rgb(), "png", (20, 10), (255, 128, 0)),
    "exif-rotated jpeg": (made.exif_rotated_jpeg(), "jpg", (32, 64), (255, 0, 0)),
    "palette png": (made.palette_png(), "png", (24, 16), (255, 0, 0)),
    "palette png, transparent": (made.palette_png(transparent=True), "png", (24, 16), (255, 255, 255)),
    "rgba png": (made.rgba_png(), "png", (32, 16), (0, 0, 255)),
    "la png": (made.la_png(), "png", (20, 20), (127, 127, 127)),
    "webp with alpha": (made.webp_with_alpha(), "webp", (20, 20), (0, 255, 0)),
}


@pytest.mark.parametrize("case", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_unusual_valid_images_are_accepted(
    make_app: Callable[..., Flask],
    broker: redis.Redis,
    images: Images,
    case: tuple[bytes, str, tuple[int, int], tuple[int, int, int]],
) -> None:
    """202; stored as sent under its hash, with the extension of its real format."""
    data, extension, _size, _pixel = case
    app = make_app()
    response = send(app, images, Request(files(content=data)), add_key(app))
    assert response.status_code == 202, response.get_data(as_text=True)
    observed = Observed(app, broker)
    row = observed.job(response.get_json()["id"])
    assert row.content_key == upload_key(data, extension)
    assert impasto_of(app).storage.get(row.content_key) == data
    assert observed.queued_job_ids() == [row.id]


@pytest.mark.parametrize("case", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_images_convert_as_the_worker_reads_them(
    case: tuple[bytes, str, tuple[int, int], tuple[int, int, int]],
) -> None:
    """The worker's open_image gives RGB: EXIF applied, alpha on white, 16 bits scaled down."""
    imaging = pytest.importorskip("impasto.worker.engine.imaging", reason="needs the worker extra (torch)")
    data, _extension, size, pixel = case
    with Image.open(io.BytesIO(data)) as opened:
        image = imaging.open_image(opened)
    assert (image.mode, image.size) == ("RGB", size)
    assert all(abs(got - want) <= 2 for got, want in zip(image.getpixel((0, 0)), pixel, strict=True))


@pytest.mark.parametrize(
    "filename",
    [
        "../../../../etc/passwd.png",
        "..\\..\\windows\\system32\\evil.png",
        "/abs/path/evil.jpg",
        "a/../../evil.png\u202egpj",
    ],
    ids=["dot-dot", "windows", "absolute", "rtl-override"],
)
def test_client_filenames_never_reach_storage(
    make_app: Callable[..., Flask], broker: redis.Redis, images: Images, tmp_path: Path, filename: str
) -> None:
    """A path-traversal filename is accepted, stored by hash, and appears nowhere on disk."""
    app = make_app()
    form = {"content": (io.BytesIO(images.jpeg), filename), "style": [(io.BytesIO(images.png), filename)]}
    response = app.test_client().post(
        "/v1/jobs", data=form, content_type="multipart/form-data", headers={"Authorization": f"Bearer {add_key(app)}"}
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    stored = Observed(app, broker).stored_files()
    assert stored == sorted([upload_key(images.jpeg, "jpg"), upload_key(images.png, "png")])
    # Nothing the test's app wrote (database, storage, broker folder) is named after the client's file.
    written = [str(path) for path in tmp_path.rglob("*")]
    assert not [path for path in written if "passwd" in path or "evil" in path or "system32" in path]


def test_a_422_lists_every_bad_field(make_app: Callable[..., Flask], broker: redis.Redis, images: Images) -> None:
    """One detail per invalid field, each with a message; a flood of unknown keys is cut at 20."""
    app = make_app()
    bad = {"iterations": 0, "size": 1, "style_weight": -1, "optimizer": "sgd", "bogus": 1}
    response = send(app, images, Request(files(params=bad)), add_key(app))
    details = response.get_json()["error"]["details"]
    assert {detail["field"] for detail in details} == set(bad)
    assert all(detail["message"] for detail in details)

    flood = send(app, images, Request(files(params={f"k{n}": n for n in range(100)})), add_key(app))
    error = flood.get_json()["error"]
    assert len(error["details"]) == 20 and error["message"].endswith("and 80 more")
    assert_nothing_stored(Observed(app, broker))
