"""bot.service.jsonfast: orjson and the standard-library fallback accept, reject and produce the same JSON."""

from __future__ import annotations

import json

import pytest

from bot.service import jsonfast
from bot.service.wsgi import BadPayload, _parse
from tests.support.fakegithub import load_payload

GOOD = [b'{"a": 1, "b": [true, null, 2.5, "\\u00e9"]}', '{"x": "caf\u00e9"}', b"[]", b'"s"']
BAD = [b"{", b'{"a": 1,}', b"\xff\xfe{}", b"NaN", b"", b'{"a": "\xc3"}']


@pytest.fixture(params=["orjson", "stdlib"])
def impl(request, monkeypatch):
    if request.param == "stdlib":
        monkeypatch.setattr(jsonfast, "_orjson", None)
    elif jsonfast._orjson is None:
        pytest.skip("orjson is not installed")
    return request.param


@pytest.mark.parametrize("text", GOOD)
def test_both_parse_what_json_parses(impl, text):
    expected = json.loads(text.decode() if isinstance(text, bytes) else text)
    assert jsonfast.loads(text) == expected


@pytest.mark.parametrize("text", BAD)
def test_both_reject_the_same_bodies_as_a_bad_payload(impl, text):
    with pytest.raises(ValueError):
        jsonfast.loads(text)
    with pytest.raises(BadPayload, match="not valid JSON"):
        _parse(text, "application/json")


def test_both_round_trip_a_job_spec(impl):
    spec = {"delivery_id": "d", "pr": 7, "installation_id": None, "attempt": 0, "repo": "o/r\u00e9"}
    text = jsonfast.dumps(spec)
    assert isinstance(text, str) and json.loads(text) == spec and " " not in text


def test_a_recorded_payload_parses_alike(monkeypatch):
    raw = json.dumps(load_payload("pull_request.synchronize")).encode()
    fast = _parse(raw, "application/json")
    monkeypatch.setattr(jsonfast, "_orjson", None)
    assert _parse(raw, "application/json") == fast
