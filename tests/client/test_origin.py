"""The client sends its key to its own API origin only: never to another host, port or scheme,
not through a redirect, not to a job URL that names somewhere else (issue 12 item 11)."""

from __future__ import annotations

import json

import pytest
import requests

from impasto import Client, ImpastoError
from tests.client.conftest import Recorder, Stack, tiny_png

KEY = "imp_not_for_anyone_else"


def test_own_origin_gets_the_key(recorder: Recorder) -> None:
    """The recorder as the configured API: its URLs and paths get the key (so the refusals below can fail)."""
    client = Client(recorder.url, KEY)
    assert client.download(f"{recorder.url}/v1/jobs/x/output") == b"\x89PNG"
    assert client.download("/v1/jobs/x/output") == b"\x89PNG"
    assert recorder.seen == [("GET", "/v1/jobs/x/output", f"Bearer {KEY}")] * 2


@pytest.mark.parametrize(
    "base",
    [
        "http://127.0.0.1:{port_plus}",  # same host, another port
        "https://127.0.0.1:{port}",  # same host and port, another scheme
        "http://localhost:{port}",  # another name for the same address is another origin
    ],
)
def test_another_origin_is_refused_before_anything_is_sent(recorder: Recorder, base: str) -> None:
    """A client configured for another origin refuses a URL on the recorder; the recorder gets nothing."""
    port = int(recorder.url.rsplit(":", 1)[1])
    client = Client(base.format(port=port, port_plus=port + 1), KEY)
    with pytest.raises(ImpastoError) as caught:
        client.download(f"{recorder.url}/v1/jobs/x/output")
    assert caught.value.code == "foreign_origin" and caught.value.status is None
    assert recorder.seen == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}\\@evil.example/x", "ftp://127.0.0.1:{port}/x"])
def test_ambiguous_or_odd_urls_are_refused(recorder: Recorder, url: str) -> None:
    """A backslash (parsers disagree on its host) or a non-http scheme is refused."""
    port = int(recorder.url.rsplit(":", 1)[1])
    client = Client(recorder.url, KEY)
    with pytest.raises(ImpastoError) as caught:
        client.download(url.format(port=port))
    assert caught.value.code == "foreign_origin"
    assert recorder.seen == []


def test_a_redirect_is_not_followed(recorder: Recorder) -> None:
    """An answer that redirects to another origin is an error, and nothing is sent there."""
    elsewhere = recorder.url.replace("127.0.0.1", "localhost") + "/stolen"  # another origin, same recorder
    client = Client(recorder.url, KEY)
    with pytest.raises(ImpastoError) as caught:
        client.download(f"{recorder.url}/img?to={elsewhere}")
    assert caught.value.code == "unexpected_redirect" and caught.value.status == 302
    assert [path for _, path, _ in recorder.seen] == [f"/img?to={elsewhere}"]


def test_a_crafted_host_header_cannot_lead_the_key_away(stack: Stack, recorder: Recorder) -> None:
    """A job submitted with a Host naming the recorder (IMPASTO_URL unset): its URLs name the recorder,
    and the client refuses to download them; it fetches the images by job id from its own API instead."""
    files = [("content", ("c.png", tiny_png())), ("style", ("s.png", tiny_png()))]
    host = recorder.url.removeprefix("http://")
    response = requests.post(
        f"{stack.url}/v1/jobs",
        files=files,
        data={"params": json.dumps({"size": 16, "iterations": 1})},
        headers={"Authorization": f"Bearer {stack.api_key}", "Host": host},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["urls"]["output"].startswith(recorder.url)  # what this defends against
    client = stack.client()
    with pytest.raises(ImpastoError) as caught:
        client.download(job["urls"]["output"])
    assert caught.value.code == "foreign_origin"
    finished = client.wait(job["id"], timeout=120)
    assert finished["status"] == "succeeded", finished
    assert client.download_output(job["id"]).startswith(b"\x89PNG")
    assert recorder.seen == []
