"""Property-based requests from /openapi.json (schemathesis, over WSGI), with every check schemathesis
has and every phase: the schema's examples, coverage (boundary and invalid values of each
parameter), fuzzing (positive and negative), and stateful sequences along the links schemathesis
infers (a submitted job's id flows into get, cancel, delete, events, output...). Whatever the
request, the API never answers 5xx and answers as its spec says.

Opaque values the spec can only call "a string" (job ids, cursors), image bytes (the spec cannot
say "decodable") and webhook URLs (nor "resolves to a public address") are swapped for real ones in
cases meant to be valid, and params are made to obey the rules between fields that JSON Schema
cannot state (one weight per layer, scales in order, the snapshot cap); nothing else is.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from PIL import Image
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from sqlalchemy import delete

from impasto.api.pagination import encode_cursor
from impasto.shared.job_params import JobParams
from impasto.shared.models import IdempotencyKey, Job, JobSnapshot, JobStatusChange
from impasto.shared.settings import Settings
from impasto.shared.size_classes import job_pixels, queue_for
from impasto.shared.status import JobStatus
from tests.api.conftest import Images, WorkerActions, add_key, impasto_of, keyed_client

load_all_checks()
ALL_CHECKS = CHECKS.get_all()  # positive_data_acceptance, use_after_free, ignored_auth, ... all 14 of them
# Examples per operation and phase (coverage makes its own, bounded, set): with stateful sequences,
# well under a minute per database on a loaded 2-core machine.
MAX_EXAMPLES = 15
STATEFUL_SEQUENCES = 15
STATEFUL_STEPS = 6
STREAM_TIMEOUT_S = 1.0  # how long an event stream is read
# A webhook the server takes without a DNS lookup (an address, not a name) nor private addresses
# allowed: example.com's; nothing is delivered, as no webhook worker runs here.
PUBLIC_WEBHOOK = "https://93.184.215.14/hook"
HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here is reproducible
    database=None,  # no .hypothesis folder in the working tree
    suppress_health_check=list(HealthCheck),
)


def seed_jobs(app: Flask, key: str, images: Images) -> list[str]:
    """Real ids for generated requests to hit: the key's queued and succeeded jobs, and another key's."""
    worker = WorkerActions(app, images.png)
    form = {"content": (images.jpeg, "c.jpg"), "style": (images.png, "s.png")}

    def new_job(client_key: str) -> str:
        """Submit one job with the key."""
        files = {name: (io.BytesIO(data), filename) for name, (data, filename) in form.items()}
        response = keyed_client(app, client_key).post("/v1/jobs", data=files, content_type="multipart/form-data")
        job_id: str = response.get_json()["id"]
        return job_id

    queued, succeeded, foreign = new_job(key), new_job(key), new_job(add_key(app, "someone else"))
    worker.claim(succeeded)
    worker.snapshot(succeeded, 4)
    worker.finish(succeeded, JobStatus.SUCCEEDED)
    return [queued, succeeded, foreign]


class RealInputs:
    """Real values for the opaque parts of generated cases: job ids in turn, a real cursor, real images, a webhook."""

    def __init__(self, app: Flask, job_ids: list[str], images: Images) -> None:
        self.job_ids: Iterator[str | None] = itertools.cycle([None, *job_ids])  # None: keep the generated id
        self.swap_ids = True
        self.images = images
        self.max_snapshots = impasto_of(app).settings.max_snapshots_per_job
        self.settings = impasto_of(app).settings
        with impasto_of(app).sessions() as session:
            job = session.get(Job, job_ids[0])
            assert job is not None
            self.cursor = encode_cursor(job.created_at, job.id)

    def apply(self, case: Any) -> None:
        """Point the case at a real job; in a case meant to be valid, use a real cursor, images and webhook."""
        job_id = next(self.job_ids) if self.swap_ids else None
        if job_id is not None and "job_id" in (case.path_parameters or {}):
            case.path_parameters["job_id"] = job_id
        if not case.meta.generation.mode.is_positive:
            return  # swapped into a negative case, a real value could make it valid again
        if case.query and case.query.get("cursor"):
            case.query["cursor"] = self.cursor
        if isinstance(case.body, dict) and "content" in case.body:
            case.body["content"] = self.images.jpeg
            case.body["style"] = [self.images.png]
            if "webhook" in case.body:
                case.body["webhook"] = PUBLIC_WEBHOOK
            if "mask" in case.body:  # a real label image, and params naming its colours (as regions must)
                case.body["mask"] = LABEL_IMAGE
                if not isinstance(case.body.get("params"), dict):
                    case.body["params"] = {}
                if "style_mask" in case.body:
                    case.body["style_mask"] = [LABEL_IMAGE] * len(case.body["style"])
            if isinstance(case.body.get("params"), dict):
                params = case.body["params"]
                if "mask" in case.body:
                    params["regions"] = dict(LABEL_REGIONS)
                else:
                    params.pop("regions", None)  # regions without a label image are refused
                obey_cross_field_rules(params, len(case.body["style"]), self.max_snapshots)
                fit_the_pixel_limit(params, len(case.body["style"]), "mask" in case.body, self.settings)


def label_image() -> bytes:
    """A 32x24 label PNG in two colours: left red, right blue."""
    image = Image.new("RGB", (32, 24), (255, 0, 0))
    image.paste((0, 0, 255), (16, 0, 32, 24))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


LABEL_IMAGE = label_image()
LABEL_REGIONS = {"#ff0000": {"0": 1.0}, "#0000ff": {}}  # red takes the first style, blue keeps the content


def obey_cross_field_rules(params: dict[str, Any], style_count: int, max_snapshots: int) -> None:
    """Edit schema-valid params to obey JobParams' rules between fields (and with the form), which a JSON
    schema cannot state; tests/engine/test_params.py and api/test_params_strict.py show them refused."""

    def value(name: str) -> Any:
        return params.get(name, JobParams.model_fields[name].default)

    params["scales"] = sorted(value("scales"))  # distinct, so sorted is increasing
    params["iterations"] = max(value("iterations"), len(params["scales"]))
    if (layer_weights := value("style_layer_weights")) is not None:  # one per style layer
        params["style_layer_weights"] = list(
            itertools.islice(itertools.cycle(layer_weights), len(value("style_layers")))
        )
    if (blend := value("style_blend_weights")) is not None:  # one per style image, not all 0
        params["style_blend_weights"] = [max(blend)] * style_count
    if (per_style := value("style_layer_weights_per_style")) is not None:  # a row per style, a weight per layer
        row = [max(max(r, default=1.0) for r in per_style) or 1.0] * len(value("style_layers"))
        params["style_layer_weights_per_style"] = [row] * style_count
    if (style_scales := value("style_scales")) is not None:  # one per style image
        params["style_scales"] = [style_scales[0]] * style_count
    if value("preserve_color") and value("color_transfer") != "none":  # two colour controls: one at a time
        params["color_transfer"] = "none"
    if value("content_weight") == 0 and value("style_weight") == 0:
        params["content_weight"] = 1.0
    every = value("snapshot_every")
    if every and params["iterations"] // every > max_snapshots:
        params["snapshot_every"] = params["iterations"] // (max_snapshots + 1) + 1


def fit_the_pixel_limit(params: dict[str, Any], style_count: int, masked: bool, settings: Settings) -> None:
    """Lower `size` until the job's pixels (output at the content's aspect, styles, label images) fit the
    deployment's limit: a rule between the form's images, params and settings that no schema states."""
    test_image = (32, 24)  # the 64x48 content, the 32x24 style and label images: all 4:3
    masks = [test_image] * (1 + style_count) if masked else []
    while params.get("size", JobParams.model_fields["size"].default) > 16:
        job = JobParams.model_validate_json(json.dumps(params))  # as the API reads the params part
        pixels = job_pixels(job, (64, 48), [test_image] * style_count, masks)
        if queue_for(pixels.counted, settings) is not None:
            return
        params["size"] = params.get("size", JobParams.model_fields["size"].default) * 3 // 4


def fuzz_app(make_app: Callable[..., Flask], images: Images) -> tuple[Flask, str, RealInputs]:
    """An app without abuse limits in the way, a key, and real inputs seeded for it."""
    app = make_app(
        rate_limit="100000 per minute",
        max_active_jobs=100_000,
        failed_auth_limit="1000000 per minute",
        # Webhooks enabled, so their fields are tested as well (a Standard Webhooks form of secret).
        webhook_secret="whsec_" + base64.b64encode(b"fuzz" * 8).decode(),
        # A stream of an unfinished job never ends: schemathesis stops reading at STREAM_TIMEOUT_S,
        # noticing it at the next message, so heartbeats come often.
        sse_heartbeat_s=0.2,
    )
    key = add_key(app)
    return app, key, RealInputs(app, seed_jobs(app, key, images), images)


def test_every_phase_and_check(make_app: Callable[..., Flask], images: Images) -> None:
    """Every operation through the examples, coverage and fuzzing phases, with all of schemathesis' checks."""
    app, key, real = fuzz_app(make_app, images)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), results  # every operation's schema loads
    assert {operation.label for operation in operations} >= {
        "POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{job_id}", "DELETE /v1/jobs/{job_id}",
        "POST /v1/jobs/{job_id}/cancel", "GET /v1/jobs/{job_id}/output", "GET /v1/jobs/{job_id}/events",
        "GET /v1/jobs/{job_id}/intermediates/{iteration}", "GET /healthz", "GET /readyz", "GET /metrics",
    }  # fmt: skip
    phases: dict[str, int] = {}

    def call(case: Any) -> None:
        """One generated request, validated by every check."""
        phases[case.meta.phase.name] = phases.get(case.meta.phase.name, 0) + 1
        real.apply(case)
        case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=ALL_CHECKS, timeout=STREAM_TIMEOUT_S)

    config = HypothesisTestConfig(project=schema.config, modes=list(HypothesisTestMode), settings=HYPOTHESIS)
    failures: dict[str, str] = {}
    for operation in operations:  # every operation runs: one that fails does not hide the next
        try:
            create_test(operation=operation, test_func=call, config=config)()
        except (FailureGroup, Exception) as exc:  # FailureGroup is a BaseExceptionGroup, not an Exception
            failures[operation.label] = str(exc)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert phases.keys() >= {"coverage", "fuzzing"}, phases  # the spec has no examples of its own yet


def test_stateful_sequences(make_app: Callable[..., Flask], images: Images) -> None:
    """Sequences along the links schemathesis infers (submit, then get/cancel/delete/events...), all checks."""
    app, key, real = fuzz_app(make_app, images)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    machine = schema.as_state_machine()
    assert schema.statistic.transitions.total > 0, "no links: the stateful phase would test nothing"

    # Ids come from the links here; and generation must not depend on state outside the sequence.
    real.swap_ids = False

    class Sequences(machine):  # type: ignore[valid-type, misc]
        """The inferred state machine, with the key sent and real images in valid submissions."""

        def setup(self) -> None:
            # Each sequence starts from the same, empty, state: Hypothesis replays a sequence to
            # shrink it, and a list that grew meanwhile would take it down another path.
            with impasto_of(app).sessions() as session:
                for model in (IdempotencyKey, JobSnapshot, JobStatusChange, Job):  # children first
                    session.execute(delete(model))
                session.commit()

        def before_call(self, case: Any) -> None:
            real.apply(case)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {key}"}, "timeout": STREAM_TIMEOUT_S}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=ALL_CHECKS, headers=kwargs.get("headers"))

    Sequences.run(settings=settings(HYPOTHESIS, max_examples=STATEFUL_SEQUENCES, stateful_step_count=STATEFUL_STEPS))
