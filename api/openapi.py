"""The OpenAPI document, generated from the URL map, view docstrings and pydantic models."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template_string, url_for
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from impasto.api.auth import is_public, public
from impasto.api.context import EXTENSION_KEY
from impasto.api.images import MEDIA_TYPES
from impasto.api.schemas import ErrorBody, JobSubmission
from impasto.shared.job_params import JobParams

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"  # 3.1 uses JSON Schema 2020-12, which pydantic writes
API_VERSION = "1"
REF_TEMPLATE = "#/components/schemas/{model}"
# Schemas of non-JSON-model bodies, by media type.
MEDIA_SCHEMAS: dict[str, dict[str, Any]] = {
    "image/png": {"type": "string", "format": "binary"},
    "image/jpeg": {"type": "string", "format": "binary"},  # a preview (?preview=true)
    "image/*": {"type": "string", "format": "binary"},  # an upload, as sent: JPEG, PNG or WebP
    "text/html": {"type": "string"},
    "application/json": {"type": "object"},
}
PATH_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")

View = TypeVar("View", bound=Callable[..., Any])
# A response is a pydantic model (JSON), a media type or several (other bodies), or None (no body).
ResponseSpec = type[BaseModel] | str | tuple[str, ...] | None
# Every operation needs `Authorization: Bearer <key>` unless it says `security: []` (public views).
SECURITY_SCHEME = "bearerAuth"
SECURITY_SCHEMES: dict[str, Any] = {
    SECURITY_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key from `impasto keys create` (imp_...)",
    }
}
# What any authenticated operation may also answer: no or a bad key, or over its rate limit.
AUTHENTICATED_RESPONSES: dict[int, ResponseSpec] = {401: ErrorBody, 429: ErrorBody}


@dataclass(frozen=True)
class Operation:
    """What a view answers and reads, beyond its URL and docstring."""

    responses: Mapping[int, ResponseSpec] = field(default_factory=lambda: {200: "application/json"})
    query: type[BaseModel] | None = None
    form: type[BaseModel] | None = None  # a multipart/form-data body
    json: type[BaseModel] | None = None  # an application/json body

    @property
    def body(self) -> tuple[str, type[BaseModel]] | None:
        """The request body's media type and model, if the operation reads one."""
        if self.form is not None:
            return "multipart/form-data", self.form
        if self.json is not None:
            return "application/json", self.json
        return None


def documented(
    responses: Mapping[int, ResponseSpec],
    query: type[BaseModel] | None = None,
    form: type[BaseModel] | None = None,
    json: type[BaseModel] | None = None,
) -> Callable[[View], View]:
    """Attach an Operation to a view for the generated spec; its body is a `form` or a `json` model, if any."""
    if form is not None and json is not None:
        raise TypeError("an operation reads one body: a form or JSON, not both")

    def attach(view: View) -> View:
        view.__openapi__ = Operation(responses=responses, query=query, form=form, json=json)  # type: ignore[attr-defined]
        return view

    return attach


def operation_of(view: Callable[..., Any]) -> Operation:
    """The Operation attached to a view, or a plain 200 JSON one."""
    found: Operation | None = getattr(view, "__openapi__", None)
    return found or Operation()


def summary_of(view: Callable[..., Any]) -> str:
    """The first line of a view's docstring."""
    return (inspect.getdoc(view) or "").split("\n", 1)[0]


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """A Werkzeug rule as an OpenAPI path, with its path parameters."""
    parameters = [
        {
            "name": match["name"],
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0} if match["converter"] == "int" else {"type": "string"},
        }
        for match in PATH_ARGUMENT.finditer(rule)
    ]
    return PATH_ARGUMENT.sub(lambda match: "{" + match["name"] + "}", rule), parameters


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of every route the app serves."""
    routes = [
        (rule, method, app.view_functions[rule.endpoint])
        for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
        if rule.endpoint != "static"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    ]
    schemas, refs = model_schemas([operation_of(view) for _rule, _method, view in routes])
    deployment_limits(schemas, app)
    paths: dict[str, dict[str, Any]] = {}
    for rule, method, view in routes:
        path, parameters = openapi_path(rule.rule)
        operation = operation_of(view)
        if operation.query is not None:
            parameters += query_parameters(schemas[model_name(refs, operation.query, "validation")])
        extra = {} if is_public(view) else AUTHENTICATED_RESPONSES
        entry: dict[str, Any] = {
            "operationId": rule.endpoint.replace(".", "_"),
            "summary": summary_of(view),
            "tags": [rule.endpoint.split(".", 1)[0]],
            "responses": {
                str(status): response_object(status, spec, refs)
                for status, spec in sorted({**operation.responses, **extra, 500: ErrorBody}.items())
            },
        }
        if is_public(view):
            entry["security"] = []  # overrides the document's default: no key needed
        if parameters:
            entry["parameters"] = parameters
        if operation.body is not None:
            media_type, model = operation.body
            content: dict[str, Any] = {"schema": refs[(model, "validation")]}
            if media_type == "multipart/form-data":
                content["encoding"] = multipart_encoding(app)
            entry["requestBody"] = {"required": True, "content": {media_type: content}}
        paths.setdefault(path, {})[method.lower()] = entry
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "impasto", "version": API_VERSION, "description": "Neural style transfer jobs."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
        "security": [{SECURITY_SCHEME: []}],
    }


def multipart_encoding(app: Flask) -> dict[str, Any]:
    """Content types of the job form's parts: JSON params, and the image types this deployment accepts."""
    formats = app.extensions[EXTENSION_KEY].settings.allowed_image_formats
    images = {"contentType": ", ".join(MEDIA_TYPES[name] for name in formats)}
    return {
        "params": {"contentType": "application/json"},
        "content": images,
        "style": images,
        "mask": images,
        "style_mask": images,
    }


def deployment_limits(schemas: dict[str, Any], app: Flask) -> None:
    """Write this deployment's settings into the models' schemas: the most style images a job takes."""
    settings = app.extensions[EXTENSION_KEY].settings
    properties = schemas[JobSubmission.__name__]["properties"]
    properties["style"]["maxItems"] = settings.max_styles
    properties["style_mask"]["maxItems"] = settings.max_styles


RefKey = tuple[type[BaseModel], JsonSchemaMode]


def model_schemas(operations: list[Operation]) -> tuple[dict[str, Any], dict[RefKey, dict[str, Any]]]:
    """JSON schemas of every model the operations name, plus JobParams and the error body."""
    keys: dict[RefKey, None] = {
        (JobParams, "validation"): None,
        (JobSubmission, "validation"): None,  # deployment_limits edits it
        (ErrorBody, "serialization"): None,
    }
    for operation in operations:
        for spec in operation.responses.values():
            if isinstance(spec, type):
                keys[(spec, "serialization")] = None
        for model in (operation.query, operation.form, operation.json):
            if model is not None:
                keys[(model, "validation")] = None
    refs, definitions = models_json_schema(list(keys), ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = definitions.get("$defs", {})
    return schemas, {(model, mode): ref for (model, mode), ref in refs.items() if issubclass(model, BaseModel)}


def model_name(refs: dict[RefKey, dict[str, Any]], model: type[BaseModel], mode: JsonSchemaMode) -> str:
    """The components/schemas name of a model."""
    ref: str = refs[(model, mode)]["$ref"]
    return ref.rsplit("/", 1)[1]


def query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAPI query parameters from a query model's JSON schema."""
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": prop.get("description", ""),
            "schema": prop,
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def response_object(status: int, spec: ResponseSpec, refs: dict[RefKey, dict[str, Any]]) -> dict[str, Any]:
    """One entry of an operation's responses."""
    response: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if isinstance(spec, str | tuple):
        media_types = (spec,) if isinstance(spec, str) else spec
        response["content"] = {media: {"schema": MEDIA_SCHEMAS.get(media, {})} for media in media_types}
    elif spec is not None:
        response["content"] = {"application/json": {"schema": refs[(spec, "serialization")]}}
    return response


@bp.get("/openapi.json")
@public
@documented(responses={200: "application/json"})
def get_openapi() -> Response:
    """The OpenAPI 3.1 document of this API."""
    return jsonify(build_spec(current_app))


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>impasto API</title>
<style>body{font:15px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:60rem}
table{border-collapse:collapse;width:100%;margin-bottom:2rem}td,th{border:1px solid #ccc;padding:.3rem .5rem;
text-align:left;vertical-align:top}code{font-size:90%}</style></head><body>
<h1>impasto API v{{ spec.info.version }}</h1>
<p>{{ spec.info.description }} Machine-readable: <a href="{{ spec_url }}">openapi.json</a>.</p>
<p>Send <code>Authorization: Bearer &lt;API key&gt;</code> (from <code>impasto keys create</code>) to every
endpoint marked "key".</p>
<h2>Endpoints</h2>
<table><tr><th>method</th><th>path</th><th>summary</th><th>key</th><th>responses</th></tr>
{% for path, methods in spec.paths.items() %}{% for method, op in methods.items() %}
<tr><td><code>{{ method|upper }}</code></td><td><code>{{ path }}</code></td><td>{{ op.summary }}</td>
<td>{{ "" if op.security == [] else "key" }}</td><td>{{ op.responses|join(", ") }}</td></tr>{% endfor %}{% endfor %}
</table>
<h2>Job parameters (<code>params</code>)</h2>
<table><tr><th>name</th><th>default</th><th>description</th></tr>
{% for name, prop in spec.components.schemas.JobParams.properties.items() %}
<tr><td><code>{{ name }}</code></td><td>{% if "default" in prop %}<code>{{ prop.default|tojson }}</code>{% endif %}</td>
<td>{{ prop.description or "" }}</td></tr>{% endfor %}
</table></body></html>
"""


@bp.get("/docs")
@public
@documented(responses={200: "text/html"})
def get_docs() -> str:
    """A readable page of the API, rendered from the OpenAPI document."""
    return render_template_string(DOCS_PAGE, spec=build_spec(current_app), spec_url=url_for("openapi.get_openapi"))
