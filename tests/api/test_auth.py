"""Bearer API keys: which routes need one, how a bad one is answered, and what is stored."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

import impasto.shared.api_keys
from impasto.api.auth import is_public
from impasto.shared.api_keys import KEY_PATTERN, KeyCheck, ValidKeyCache, check_key, create_key, revoke_key
from impasto.shared.models import ApiKey
from tests.api.conftest import Submit, add_key, impasto_of, keyed_client

PUBLIC_PATHS = ["/healthz", "/readyz", "/openapi.json", "/docs"]
SOME_JOB = "6f1c1f0e-3d2a-4a8e-9a57-0d8f0b2b8c11"


def protected_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, URL) of every route that is not public, with sample path arguments."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or is_public(app.view_functions[rule.endpoint]):
            continue
        url = re.sub(r"<int:\w+>", "4", rule.rule.replace("<job_id>", SOME_JOB))  # every integer argument
        assert "<" not in url, f"a path argument this test does not fill in: {rule.rule}"
        routes += [(method, url) for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return routes


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_public_routes_need_no_key(anonymous: FlaskClient, path: str) -> None:
    """Probes and the API's own documentation answer without a key."""
    assert anonymous.get(path).status_code == 200


def test_every_other_route_needs_a_key(app: Flask, anonymous: FlaskClient) -> None:
    """Each non-public route and method answers 401 JSON without a key (new routes included)."""
    routes = protected_routes(app)
    assert {url for _method, url in routes} >= {"/v1/jobs", f"/v1/jobs/{SOME_JOB}", f"/v1/jobs/{SOME_JOB}/output"}
    assert {path for path in PUBLIC_PATHS} & {url for _method, url in routes} == set()
    for method, url in routes:
        response = anonymous.open(url, method=method)
        assert response.status_code == 401, (method, url)
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="impasto"'


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_scheme_is_case_insensitive(app: Flask, api_key: str, scheme: str) -> None:
    """RFC 7235: auth schemes are case-insensitive."""
    response = app.test_client().get("/v1/jobs", headers={"Authorization": f"{scheme} {api_key}"})
    assert response.status_code == 200


def test_a_bad_key_is_invalid_token(anonymous: FlaskClient) -> None:
    """A key that was sent but is no good says so in its challenge (RFC 6750)."""
    response = anonymous.get("/v1/jobs", headers={"Authorization": "Bearer imp_nope"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="impasto", error="invalid_token"'
    assert response.get_json()["error"]["message"] == "invalid API key"


def test_revoking_a_key_locks_it_out(app: Flask, client: FlaskClient, api_key: str) -> None:
    """Served before, 401 naming the revocation after."""
    assert client.get("/v1/jobs").status_code == 200
    with impasto_of(app).sessions() as session:
        revoke_key(session, api_key[:10])
    response = client.get("/v1/jobs")
    assert response.status_code == 401
    assert response.get_json()["error"] == {"code": "unauthorized", "message": "this API key has been revoked"}


def test_only_a_hash_is_stored(app: Flask, api_key: str) -> None:
    """The row holds the public id and the SHA-256 of the key; the secret appears nowhere."""
    with impasto_of(app).sessions() as session:
        (row,) = session.scalars(select(ApiKey)).all()
    assert row.secret_hash == hashlib.sha256(api_key.encode()).hexdigest()
    match = KEY_PATTERN.fullmatch(api_key)
    assert match is not None
    secret = match["secret"]
    values: list[Any] = [row.id, row.name, row.secret_hash, row.created_at, row.revoked_at]
    assert not any(secret in str(value) for value in values)
    assert api_key.startswith(f"imp_{row.id}_")


def test_keys_are_high_entropy_and_distinct(app: Flask) -> None:
    """imp_<12 hex>_<43 url-safe characters: 256 random bits>; never the same twice."""
    keys = {add_key(app) for _ in range(20)}
    assert len(keys) == 20
    matches = [KEY_PATTERN.fullmatch(key) for key in keys]
    assert all(match is not None and len(match["secret"]) * 6 >= 256 for match in matches)


def test_hashes_are_compared_in_constant_time(app: Flask, api_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored and the presented hash go through hmac.compare_digest."""
    compared: list[tuple[str, str]] = []
    real = impasto.shared.api_keys.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        """Record the call and answer as the real one."""
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(impasto.shared.api_keys.hmac, "compare_digest", spy)
    with impasto_of(app).sessions() as session:
        assert check_key(session, api_key).check == KeyCheck.VALID
        assert check_key(session, api_key[:-1] + "x").check == KeyCheck.INVALID
    assert len(compared) == 2


@pytest.mark.parametrize(
    "presented",
    ["", "imp_", "imp_0123456789ab", "imp_0123456789AB_" + "a" * 43, "imp_0123456789ab_" + "a" * 42, "x" * 10_000],
)
def test_malformed_keys_are_invalid_without_a_lookup(app: Flask, presented: str) -> None:
    """A string that cannot be a key is refused before any SQL."""
    with impasto_of(app).sessions() as session:
        assert check_key(session, presented).check == KeyCheck.INVALID
        assert not session.in_transaction()  # nothing was asked of the database


def test_reference_forms_for_revoke(app: Flask) -> None:
    """An id, an id prefix, imp_<id> or the whole key name the same key; ambiguity is refused."""
    with impasto_of(app).sessions() as session:
        record, key = create_key(session, "x")
        for reference in (record.id, record.id[:6], f"imp_{record.id}", key):
            assert impasto.shared.api_keys.find_key_by_reference(session, reference).id == record.id
        for bad in ("zz", "abc", "ffffffffffff"):
            with pytest.raises(LookupError):
                impasto.shared.api_keys.find_key_by_reference(session, bad)
        assert revoke_key(session, record.id) == (record, True)
        assert revoke_key(session, record.id) == (record, False)


def test_a_request_by_another_clients_key_is_served_as_theirs(app: Flask) -> None:
    """Two clients with two keys: each is authenticated as itself (checked by the list it sees)."""
    first, second = keyed_client(app), keyed_client(app)
    assert first.get("/v1/jobs").get_json() == second.get("/v1/jobs").get_json() == {"jobs": [], "next_cursor": None}
    assert re.fullmatch(r"Bearer imp_[0-9a-f]{12}_\S+", first.environ_base["HTTP_AUTHORIZATION"])


def test_a_poll_after_the_first_is_one_sql_statement(app: Flask, client: FlaskClient, submit: Submit) -> None:
    """The key found valid is cached (no lookup), and the job, its snapshots and the key's revocation
    are read in one statement: a status poll costs one SQL round trip."""
    job_id = submit().get_json()["id"]
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    impasto = impasto_of(app)
    engines = {impasto.engine, getattr(impasto, "read_engine", impasto.engine)}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 1, statements
    assert "api_keys" in statements[0] and "job_snapshots" in statements[0]


def test_a_key_revoked_while_cached_is_refused_by_polls_at_once(
    app: Flask, client: FlaskClient, api_key: str, submit: Submit
) -> None:
    """The poll's own query sees the revocation; so do cancels, files and lists (they share it)."""
    job_id = submit().get_json()["id"]
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200  # the key is now cached
    with impasto_of(app).sessions() as session:
        revoke_key(session, api_key[:10])
    for method, path in [
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{SOME_JOB}"),
        ("GET", "/v1/jobs/not-a-uuid"),
    ]:
        response = client.open(path, method=method)
        assert response.status_code == 401, path
        assert response.get_json()["error"]["message"] == "this API key has been revoked"
    # Found revoked once, the key is dropped from the cache: every route refuses it from now on.
    assert client.post("/v1/jobs").status_code == 401


def test_a_cached_key_is_trusted_no_longer_than_the_setting(make_app: Any) -> None:
    """A route that reads no job (a submission) refuses a revoked key once api_key_cache_s has passed."""
    app = make_app(api_key_cache_s=0.3)
    key = add_key(app)
    client = keyed_client(app, key)
    assert client.post("/v1/jobs").status_code != 401  # refused by the view, after authentication
    with impasto_of(app).sessions() as session:
        revoke_key(session, key[:10])
    time.sleep(0.3)
    response = client.post("/v1/jobs")
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == "this API key has been revoked"


def test_the_key_cache_expires_and_stays_bounded() -> None:
    """An entry lives ttl_s from the time its lookup began; a full cache drops what expired, then all."""
    cache = ValidKeyCache(ttl_s=0.5, max_entries=2)
    now = time.monotonic()
    cache.put("h1", "id1", now - 0.6)
    assert cache.get("h1") is None
    cache.put("h2", "id2", now)
    assert cache.get("h2") == "id2"
    cache.put("h3", "id3", now)
    cache.put("h4", "id4", now)  # full of live entries: cleared, then h4 kept
    assert [cache.get(h) for h in ("h2", "h3", "h4")] == [None, None, "id4"]
    cache.forget("id4")
    assert cache.get("h4") is None
    disabled = ValidKeyCache(ttl_s=0)
    disabled.put("h", "id", now)
    assert disabled.get("h") is None
