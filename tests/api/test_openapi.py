"""The generated OpenAPI document and the docs page."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from impasto.api.openapi import openapi_path
from impasto.shared.job_params import JobParams
from impasto.shared.webhooks import MAX_URL_LENGTH, URL_PATTERN


def routes(app: Flask) -> list[tuple[str, str, Any]]:
    """(OpenAPI path, method, view) of every route the app serves."""
    return [
        (openapi_path(rule.rule)[0], method.lower(), app.view_functions[rule.endpoint])
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    ]


def test_spec_covers_every_route(app: Flask, client: FlaskClient) -> None:
    """Each route and method is in the spec, summarised by its docstring."""
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    found = routes(app)
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/intermediates/{iteration}", "/readyz"} <= {
        path for path, _method, _view in found
    }
    for path, method, view in found:
        operation = spec["paths"][path][method]
        assert operation["summary"] == (inspect.getdoc(view) or "").splitlines()[0]
        assert "500" in operation["responses"]
    assert sum(len(methods) for methods in spec["paths"].values()) == len(found)


def test_spec_has_the_schemas(client: FlaskClient) -> None:
    """JobParams, the job and the error body are components; operations refer to them."""
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["JobParams"]["properties"]) == set(JobParams.model_fields)
    assert schemas["JobParams"]["additionalProperties"] is False
    assert {"id", "status", "progress", "outputs", "urls", "cancel_requested"} <= set(schemas["Job"]["properties"])
    assert "error" in schemas["ErrorBody"]["properties"]
    create = spec["paths"]["/v1/jobs"]["post"]
    assert create["responses"]["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Job"}
    form = create["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"] == {"$ref": "#/components/schemas/JobSubmission"}
    listing = spec["paths"]["/v1/jobs"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"status", "limit", "cursor"}
    item = spec["paths"]["/v1/jobs/{job_id}/intermediates/{iteration}"]["get"]
    expected = {"job_id": "string", "iteration": "integer", "preview": "boolean"}
    assert {p["name"]: p["schema"]["type"] for p in item["parameters"]} == expected
    refs = [value for value in walk(spec) if isinstance(value, str) and value.startswith("#/components/schemas/")]
    assert all(ref.rsplit("/", 1)[1] in schemas for ref in refs)


def walk(node: Any) -> list[Any]:
    """Every value in a JSON tree."""
    if isinstance(node, dict):
        return [value for child in node.values() for value in [child, *walk(child)]]
    if isinstance(node, list):
        return [value for child in node for value in [child, *walk(child)]]
    return []


@pytest.mark.parametrize(
    ("path", "full"),
    [
        ("/v1/jobs/{job_id}/output", "image/png"),
        ("/v1/jobs/{job_id}/intermediates/{iteration}", "image/png"),
        ("/v1/jobs/{job_id}/inputs/content", "image/*"),
        ("/v1/jobs/{job_id}/inputs/style/{index}", "image/*"),
    ],
)
def test_every_image_lists_its_preview(client: FlaskClient, path: str, full: str) -> None:
    """Each image endpoint documents `preview` (a boolean, off by default) and both bodies it may answer."""
    operation = client.get("/openapi.json").get_json()["paths"][path]["get"]
    (preview,) = [p for p in operation["parameters"] if p["name"] == "preview"]
    assert (preview["in"], preview["required"], preview["schema"]["type"]) == ("query", False, "boolean")
    assert preview["schema"]["default"] is False and "JPEG" in preview["description"]
    assert set(operation["responses"]["200"]["content"]) == {full, "image/jpeg"}
    assert {"422", "503"} <= set(operation["responses"])


def test_docs_page(client: FlaskClient) -> None:
    """An HTML page listing the endpoints and the parameters, linking the JSON."""
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'href="/openapi.json"' in page
    for path in ("/v1/jobs/{job_id}/cancel", "/healthz", "/readyz"):
        assert path in page
    for name in JobParams.model_fields:
        assert f"<code>{name}</code>" in page
    assert "<script" not in page  # no CDN, nothing to load


def test_spec_declares_bearer_keys(app: Flask, client: FlaskClient) -> None:
    """A bearer scheme, required by default; public operations opt out and the rest may answer 401 and 429."""
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key from `impasto keys create` (imp_...)",
    }
    assert spec["security"] == [{"bearerAuth": []}]
    public = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"}  # /metrics when it is served
    public |= {"/", "/web/{module}.js", "/web/app.css", "/web/login"}  # the web page (api/web.py)
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            if path in public:
                assert operation["security"] == []
                # /metrics needs no API key; it answers 401 only when IMPASTO_METRICS_TOKEN is set.
                assert "401" not in operation["responses"] or path == "/metrics"
            else:
                assert "security" not in operation  # the document's default: a key
                assert {"401", "429"} <= set(operation["responses"])


@pytest.mark.parametrize(
    ("formats", "media_types"),
    [(None, "image/jpeg, image/png, image/webp"), (("PNG", "JPEG"), "image/png, image/jpeg")],
    ids=["default", "narrowed"],
)
def test_the_job_form_names_the_image_types_accepted(
    make_app: Callable[..., Flask], formats: tuple[str, ...] | None, media_types: str
) -> None:
    """The content and style parts list the image media types this deployment takes; params is JSON."""
    app = make_app(**({"allowed_image_formats": formats} if formats else {}))
    spec = app.test_client().get("/openapi.json").get_json()
    form = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["encoding"] == {
        "params": {"contentType": "application/json"},
        "content": {"contentType": media_types},
        "style": {"contentType": media_types},
        "mask": {"contentType": media_types},
        "style_mask": {"contentType": media_types},
    }
    submission = spec["components"]["schemas"]["JobSubmission"]["properties"]
    assert {"content", "style", "params", "mask", "style_mask"} <= set(submission)
    assert submission["mask"]["format"] == "binary" and submission["style_mask"]["items"]["format"] == "binary"


def test_the_job_form_allows_null_params(client: FlaskClient) -> None:
    """The schema says params may be null, and the server takes null (tests/api/test_params_strict.py)."""
    spec = client.get("/openapi.json").get_json()
    params = spec["components"]["schemas"]["JobSubmission"]["properties"]["params"]
    assert {"type": "null"} in params["anyOf"]


@pytest.mark.parametrize("max_styles", [1, 4, 9])
def test_the_job_form_says_what_the_server_takes(make_app: Callable[..., Flask], max_styles: int) -> None:
    """No other field, at most max_styles styles, a webhook that is a URL (never null), a filter only with it."""
    app = make_app(max_styles=max_styles)
    spec = app.test_client().get("/openapi.json").get_json()
    submission = spec["components"]["schemas"]["JobSubmission"]
    assert submission["additionalProperties"] is False
    assert submission["dependentRequired"] == {
        "webhook_events_filter": ["webhook"],
        "mask": ["params"],
        "style_mask": ["mask"],
    }
    fields = submission["properties"]
    assert fields["style"]["maxItems"] == max_styles
    assert fields["style_mask"]["maxItems"] == max_styles
    assert fields["webhook"] == {
        "type": "string",
        "format": "uri",
        "maxLength": MAX_URL_LENGTH,
        "pattern": URL_PATTERN,
        "title": "Webhook",
        "description": fields["webhook"]["description"],
    }
    assert "null" not in json.dumps(fields["webhook_events_filter"])
    pattern = re.compile(fields["webhook_events_filter"]["items"]["pattern"])
    assert pattern.search("start,completed") and pattern.search("snapshot")
    assert not any(pattern.search(value) for value in ("", "start,", "start, completed", "done"))


def test_the_login_body_is_in_the_spec(client: FlaskClient) -> None:
    """POST /web/login reads {"token": string} as JSON and nothing else; it answers {"api_key"}."""
    spec = client.get("/openapi.json").get_json()
    login = spec["paths"]["/web/login"]["post"]
    assert login["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LoginRequest"}}},
    }
    body = spec["components"]["schemas"]["LoginRequest"]
    assert body["required"] == ["token"] and body["additionalProperties"] is False
    assert body["properties"]["token"]["type"] == "string" and body["properties"]["token"]["minLength"] == 1
    answer = login["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/LoginAnswer"}


@pytest.mark.parametrize(
    "params",
    [
        {"content_layers": ["conv4_2", "conv4_2"]},
        {"style_layers": ["conv1_1", "conv1_1"]},
        {"style_layer_weights": []},
        {"style_blend_weights": [0, 0]},
        {"scales": [0, 1]},
        {"scales": [0.5]},
        {"scales": [0.5, 0.5, 1]},
    ],
)
def test_job_params_schema_refuses_what_the_validators_refuse(client: FlaskClient, params: dict[str, Any]) -> None:
    """Refusals JSON Schema can state are in the published schema, so a schema-valid object is not refused for them."""
    spec = client.get("/openapi.json").get_json()
    schema = {**spec["components"]["schemas"]["JobParams"], "$defs": spec["components"]["schemas"]}
    with pytest.raises(ValueError):
        JobParams.model_validate_json(json.dumps(params))
    assert not Draft202012Validator(schema).is_valid(params)
