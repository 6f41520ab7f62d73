"""The webhook endpoint: signatures, body limits, events, dedupe, health, start-up refusal.

These use the real SQLite backend and an injected job handler that records
the specs it is given (the job itself is covered in test_job_e2e.py). Hostile
deliveries are checked for their status and for nothing stored (no job row, no
PR state row).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from bot.service.queue.sqlite import SQLiteBackend
from bot.service.settings import Settings
from bot.service.wsgi import create_app
from tests.support.fakegithub import SECRET, load_payload, sign, webhook_headers

HEAD = "2b2f8a8a2f1c9e7d3b6a5c4d3e2f1a0b9c8d7e6f"


class Recorder:
    def __init__(self) -> None:
        self.specs: list = []

    def __call__(self, spec, backend) -> None:
        self.specs.append(spec)


def settings(**env: str) -> Settings:
    return Settings.from_env({"WEBHOOK_SECRET": SECRET, "GITHUB_TOKEN": "ghp_x_dummy_123", **env})


@pytest.fixture
def setup(tmp_path):
    backend = SQLiteBackend(tmp_path / "data" / "state.sqlite3")
    rec = Recorder()
    app = create_app(settings(MINBUMP_DATA_DIR=str(tmp_path / "data")), backend=backend, handler=rec)
    return app.test_client(), backend, rec


def stored(backend) -> int:
    """Rows of any kind in the state database: jobs (= seen deliveries) and per-PR state."""
    import sqlite3

    db = sqlite3.connect(backend.path)
    try:
        return sum(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("jobs", "pr_state"))
    finally:
        db.close()


def post(client, event: str, payload, *, secret: str | None = SECRET, delivery: str | None = None,
         headers: dict | None = None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    h = webhook_headers(event, body, secret, delivery)
    h.update(headers or {})
    return client.post("/webhook", data=body, headers=h)


def drain(backend, handler) -> int:
    return backend.run_worker(handler, stop=threading.Event(), burst=True, poll=0.01)


def test_missing_signature_is_401(setup):
    client, backend, _ = setup
    r = post(client, "pull_request", load_payload("pull_request.opened"), secret=None)
    assert r.status_code == 401 and "X-Hub-Signature-256" in r.json["error"]
    assert backend.pending_count() == 0


def test_wrong_signature_is_401(setup):
    client, backend, _ = setup
    r = post(client, "pull_request", load_payload("pull_request.opened"), secret="not-the-secret")
    assert r.status_code == 401
    body = json.dumps(load_payload("pull_request.opened")).encode()
    # right secret, but over a different body (tampered in transit)
    r = client.post("/webhook", data=body + b" ", headers={**webhook_headers("pull_request", body, SECRET)})
    assert r.status_code == 401
    r = post(client, "pull_request", {}, headers={"X-Hub-Signature-256": "sha1=abc"})
    assert r.status_code == 401
    assert backend.pending_count() == 0


def test_malformed_json_is_400(setup):
    client, backend, _ = setup
    r = post(client, "pull_request", None, raw=b'{"action": "opened",')
    assert r.status_code == 400 and r.json["error"] == "body is not valid JSON"
    r = post(client, "pull_request", None, raw=b"[1, 2]")
    assert r.status_code == 400
    r = post(client, "pull_request", None, raw=b"\xff\xfe")
    assert r.status_code == 400


def test_payload_missing_fields_is_400_not_dropped(setup):
    client, backend, _ = setup
    p = load_payload("pull_request.opened")
    del p["pull_request"]["head"]["sha"]
    r = post(client, "pull_request", p)
    assert r.status_code == 400 and r.json["error"] == "payload lacks pull_request.head.sha"
    p = load_payload("pull_request.opened")
    p["pull_request"]["head"]["sha"] = "--upload-pack=evil"
    assert post(client, "pull_request", p).status_code == 400


def test_oversized_body_is_413(setup):
    client, backend, _ = setup
    big = b'{"pad": "' + b"x" * (25 * 1024 * 1024) + b'"}'
    r = client.post("/webhook", data=big, headers=webhook_headers("pull_request", b"", SECRET))
    assert r.status_code == 413
    assert backend.pending_count() == 0


def test_chunked_body_past_the_cap_is_413_over_real_http(tmp_path):
    """No Content-Length (chunked upload): the cap is enforced while reading."""
    import requests
    from werkzeug.serving import make_server

    backend = SQLiteBackend(tmp_path / "state.sqlite3")
    app = create_app(settings(MINBUMP_MAX_BODY="100000"), backend=backend, handler=Recorder())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/webhook"

        def chunks(n):
            for _ in range(n):
                yield b"x" * 10_000

        r = requests.post(url, data=chunks(11), headers=webhook_headers("pull_request", b"", SECRET), timeout=10)
        assert r.status_code == 413
        body = json.dumps(load_payload("pull_request.opened")).encode()
        r = requests.post(url, data=iter([body[:100], body[100:]]),
                          headers=webhook_headers("pull_request", body, SECRET), timeout=10)
        assert r.status_code == 202  # a chunked body under the cap is fine
    finally:
        server.shutdown()
    assert backend.pending_count() == 1


def test_ping_is_answered(setup):
    client, backend, _ = setup
    r = post(client, "ping", load_payload("ping"))
    assert r.status_code == 200 and r.json["pong"] is True
    assert backend.pending_count() == 0


@pytest.mark.parametrize("event,name", [
    ("installation", "installation.created"),
    ("pull_request", "pull_request.closed"),
    ("pull_request", "pull_request.edited_title"),
    ("check_run", "check_run.created"),
    ("push", "ping"),
])
def test_unhandled_events_get_2xx_and_no_job(setup, event, name):
    client, backend, _ = setup
    r = post(client, event, load_payload(name))
    assert r.status_code == 200 and r.json["ignored"]
    assert backend.pending_count() == 0


@pytest.mark.parametrize("name", ["pull_request.opened", "pull_request.synchronize",
                                  "pull_request.reopened", "pull_request.edited"])
def test_handled_pull_request_actions_are_queued(setup, name):
    client, backend, rec = setup
    r = post(client, "pull_request", load_payload(name))
    assert r.status_code == 202
    drain(backend, rec)
    spec = rec.specs[0]
    assert (spec.repo, spec.pr, spec.head_sha, spec.installation_id) == ("openstack/nova", 17, HEAD, 31415926)
    assert spec.clone_url == "https://github.com/openstack/nova.git" and spec.base_ref == "master"


def test_check_run_rerequested_is_queued(setup):
    client, backend, rec = setup
    assert post(client, "check_run", load_payload("check_run.rerequested")).status_code == 202
    drain(backend, rec)
    assert rec.specs[0].event == "check_run" and rec.specs[0].pr == 17 and rec.specs[0].head_sha == HEAD


def test_rerequest_of_another_apps_check_run_is_ignored(setup):
    client, backend, _ = setup
    p = load_payload("check_run.rerequested")
    p["check_run"]["name"] = "ci/tests"
    r = post(client, "check_run", p)
    assert r.status_code == 200 and r.json["ignored"] and backend.pending_count() == 0


def test_rerun_of_our_check_suite_is_queued_in_app_mode(tmp_path):
    backend = SQLiteBackend(tmp_path / "data" / "state.sqlite3")
    rec = Recorder()
    env = {"WEBHOOK_SECRET": SECRET, "APP_ID": "4242", "PRIVATE_KEY": "unused here",
           "MINBUMP_DATA_DIR": str(tmp_path / "data")}
    client = create_app(Settings.from_env(env), backend=backend, handler=rec).test_client()
    assert post(client, "check_suite", load_payload("check_suite.rerequested")).status_code == 202
    drain(backend, rec)
    spec = rec.specs[0]
    assert (spec.event, spec.action, spec.pr, spec.head_sha, spec.base_ref) == (
        "check_suite", "rerequested", 17, HEAD, "master")
    for mutate, why in ((lambda p: p["check_suite"]["app"].update(id=15368), "GitHub Actions' suite"),
                        (lambda p: p.update(action="requested"), "a push (pull_request covers it)")):
        p = load_payload("check_suite.rerequested")
        mutate(p)
        r = post(client, "check_suite", p)
        assert r.status_code == 200 and r.json["ignored"], why
    p = load_payload("check_suite.rerequested")
    p["check_suite"]["pull_requests"] = {"number": 17}
    r = post(client, "check_suite", p)
    assert r.status_code == 400 and r.json["error"] == "check_suite.pull_requests is not a list"
    assert backend.pending_count() == 0


def test_a_rerun_without_its_pull_request_is_queued_for_the_job_to_find_it(setup):
    """GitHub attaches no PR to a check run on a fork's PR: PR 0, base unknown, the job looks it up."""
    client, backend, rec = setup
    p = load_payload("check_run.rerequested")
    p["check_run"]["pull_requests"] = []
    assert post(client, "check_run", p).status_code == 202
    drain(backend, rec)
    assert (rec.specs[0].pr, rec.specs[0].base_ref, rec.specs[0].head_sha) == (0, "", HEAD)
    p = load_payload("pull_request.opened")
    p["pull_request"]["number"] = 0  # anywhere else PR 0 is still a bad payload
    assert post(client, "pull_request", p).status_code == 400


def test_check_suite_rerun_is_not_ours_in_token_mode(setup):
    client, backend, _ = setup  # token mode publishes commit statuses: no check suite of ours
    r = post(client, "check_suite", load_payload("check_suite.rerequested"))
    assert r.status_code == 200 and r.json["ignored"] == "check_suite.rerequested"


def test_form_encoded_delivery_is_accepted(setup):
    from urllib.parse import urlencode

    client, backend, rec = setup
    body = urlencode({"payload": json.dumps(load_payload("pull_request.opened"))}).encode()
    h = webhook_headers("pull_request", body, SECRET)
    h["Content-Type"] = "application/x-www-form-urlencoded"
    assert client.post("/webhook", data=body, headers=h).status_code == 202


def test_redelivery_is_2xx_and_runs_once(setup):
    client, backend, rec = setup
    p = load_payload("pull_request.opened")
    assert post(client, "pull_request", p, delivery="abc-1").status_code == 202
    r = post(client, "pull_request", p, delivery="abc-1")
    assert r.status_code == 200 and r.json["duplicate"] is True
    assert post(client, "pull_request", p, delivery="abc-2").status_code == 202
    drain(backend, rec)
    assert [s.delivery_id for s in rec.specs] == ["abc-1", "abc-2"]


def test_delivery_is_durable_before_202(tmp_path):
    """Accept with no worker, reopen the store (a restart): the job is there."""
    path = tmp_path / "state.sqlite3"
    app = create_app(settings(), backend=SQLiteBackend(path), handler=Recorder())
    assert post(app.test_client(), "pull_request", load_payload("pull_request.opened")).status_code == 202
    rec = Recorder()
    drain(SQLiteBackend(path), rec)
    assert len(rec.specs) == 1


def test_healthz_and_readyz(setup, tmp_path):
    client, backend, _ = setup
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json["ok"] is True
    # storage gone: not ready (healthz stays up: it has no dependencies)
    os.rename(backend.path, str(backend.path) + ".moved")
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json["ok"] is False and "missing" in r.json["error"]
    assert client.get("/healthz").status_code == 200


def test_readyz_fails_when_the_data_dir_is_unusable(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    app = create_app(settings(MINBUMP_DATA_DIR=str(blocker)), backend=SQLiteBackend(tmp_path / "state.sqlite3"),
                     handler=Recorder())
    r = app.test_client().get("/readyz")
    assert r.status_code == 503 and r.json["ok"] is False


def test_queue_failure_is_503_so_github_can_redeliver(tmp_path):
    import sqlite3

    path = tmp_path / "state.sqlite3"
    backend = SQLiteBackend(path, busy_timeout=0.2)
    client = create_app(settings(), backend=backend, handler=Recorder()).test_client()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        r = post(client, "pull_request", load_payload("pull_request.opened"), delivery="locked-1")
        assert r.status_code == 503
    finally:
        other.execute("ROLLBACK")
        other.close()
    # not marked seen: GitHub's redelivery is accepted
    assert post(client, "pull_request", load_payload("pull_request.opened"), delivery="locked-1").status_code == 202


def test_refuses_to_start_without_webhook_secret(capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_x_dummy_123")
    with pytest.raises(SystemExit) as exc:
        create_app()  # what gunicorn calls: settings from the environment
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minbump: WEBHOOK_SECRET") and "\n" not in err


def test_refuses_to_start_without_github_credentials(capsys, tmp_path):
    with pytest.raises(SystemExit):
        create_app(Settings.from_env({"WEBHOOK_SECRET": SECRET, "MINBUMP_DATA_DIR": str(tmp_path)}))
    err = capsys.readouterr().err.strip()
    assert "GITHUB_TOKEN" in err and "\n" not in err


def test_cli_serve_without_secret_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WEBHOOK_SECRET", "REDIS_URL")}
    env["MINBUMP_DATA_DIR"] = str(tmp_path)
    res = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--port", "0"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "WEBHOOK_SECRET" in res.stderr
    assert "Traceback" not in res.stderr


def test_gunicorn_refuses_to_start_without_secret(tmp_path):
    """The Procfile's web line: gunicorn exits instead of looping on worker boot."""
    env = {k: v for k, v in os.environ.items() if k not in ("WEBHOOK_SECRET", "REDIS_URL")}
    env["MINBUMP_DATA_DIR"] = str(tmp_path)
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    res = subprocess.run([gunicorn, "--worker-class", "gthread", "--preload", "--bind", "127.0.0.1:0",
                          "bot.service.wsgi:create_app()"], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    assert "minbump: WEBHOOK_SECRET is not set" in res.stderr
    assert "Traceback" not in res.stderr


def test_signature_helper_matches_github_example():
    # GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!"
    assert sign(b"Hello, World!", "It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")


def test_concurrent_deliveries_over_real_http_each_queued_once(tmp_path):
    """8 keep-alive clients at once, a third of the deliveries sent twice (GitHub's redelivery
    racing the original): every id is acknowledged 202 exactly once and queued exactly once."""
    import http.client

    from werkzeug.serving import make_server

    backend = SQLiteBackend(tmp_path / "state.sqlite3")
    app = create_app(settings(), backend=backend, handler=Recorder())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    body = json.dumps(load_payload("pull_request.opened")).encode()
    codes: dict[str, list[int]] = {}
    lock = threading.Lock()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        for i in range(15):
            n = k * 15 + i
            delivery = f"c-{n // 3 * 3}" if n % 3 == 1 else f"c-{n}"  # every third id twice
            conn.request("POST", "/webhook", body=body, headers=webhook_headers("pull_request", body, SECRET, delivery))
            resp = conn.getresponse()
            assert resp.getheader("Content-Type") == "application/json"
            payload = json.loads(resp.read())
            assert payload == ({"ok": True, "queued": True} if resp.status == 202 else {"ok": True, "duplicate": True})
            with lock:
                codes.setdefault(delivery, []).append(resp.status)
        conn.close()

    try:
        clients = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=60)
    finally:
        server.shutdown()
    assert sum(len(v) for v in codes.values()) == 120
    assert all(sorted(v) in ([202], [200, 202]) for v in codes.values())
    rec = Recorder()
    drain(backend, rec)
    assert sorted(s.delivery_id for s in rec.specs) == sorted(codes)


def test_webhook_is_an_ordinary_flask_route(setup):
    client, backend, _ = setup
    assert client.get("/webhook").status_code == 405  # Flask's routing, as for every route
    assert client.post("/webhook/").status_code in (308, 404)
    r = post(client, "pull_request", load_payload("pull_request.opened"), delivery="fast-1")
    assert r.status_code == 202 and r.mimetype == "application/json" and r.json == {"ok": True, "queued": True}
    assert r.headers["Content-Length"] == str(len(r.data))
    r = post(client, "pull_request", load_payload("pull_request.opened"), delivery="fast-1")
    assert r.status_code == 200 and r.json == {"ok": True, "duplicate": True}
    assert backend.pending_count() == 1


def test_bad_numeric_setting_is_one_line_at_start(tmp_path):
    env = {"PATH": os.environ["PATH"], "WEBHOOK_SECRET": "s", "GITHUB_TOKEN": "t",
           "MINBUMP_DATA_DIR": str(tmp_path), "MINBUMP_GITHUB_TIMEOUT": "soon"}
    out = subprocess.run([sys.executable, "-m", "bot", "serve", "--port", "0"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == "minbump: MINBUMP_GITHUB_TIMEOUT must be a number, not 'soon'"


# --- the sans-IO intake and the pure event routing -------------------------------------------------

def test_intake_is_usable_without_a_server(tmp_path):
    """Intake.handle(headers, body) is the whole contract; Flask only adapts it."""
    from bot.service.intake import Intake

    backend = SQLiteBackend(tmp_path / "state.sqlite3")
    intake = Intake(SECRET, backend)
    body = json.dumps(load_payload("pull_request.opened")).encode()
    headers = webhook_headers("pull_request", body, SECRET, "sans-io-1")
    assert intake.handle(headers, body) == (202, {"ok": True, "queued": True})
    assert intake.handle({k.lower(): v for k, v in headers.items()}, body) == (200, {"ok": True, "duplicate": True})
    assert intake.handle(headers, body + b" ")[0] == 401
    assert intake.handle(headers, None) == (413, {"error": "payload too large"})
    assert backend.pending_count() == 1


def test_job_for_is_pure_and_routes_by_event():
    from bot.service.events import ROUTES, job_for

    assert set(ROUTES) == {"pull_request", "check_run", "check_suite"}
    spec = job_for("pull_request", load_payload("pull_request.synchronize"), "d-1")
    assert (spec.event, spec.action, spec.repo, spec.pr, spec.head_sha) == (
        "pull_request", "synchronize", "openstack/nova", 17, HEAD)
    assert job_for("check_suite", load_payload("check_suite.rerequested"), "d-2") is None  # token mode
    assert job_for("check_suite", load_payload("check_suite.rerequested"), "d-2", app_id=4242).pr == 17
    assert job_for("push", {"ref": "refs/heads/x"}, "d-3") is None


@pytest.mark.parametrize("raw", [b"{", b'{"a": 1,}', b"\xff\xfe{}", b"NaN", b"", b'{"a": "\xc3"}',
                                 b'{"a": NaN}', b'{"a": Infinity}', b"[" * 100_000 + b"]" * 100_000])
def test_bodies_that_are_not_json_are_400(raw):
    """Was tests/test_jsonfast.py (orjson and json alike); now the one parser, the standard library's."""
    from bot.service.events import BadPayload
    from bot.service.intake import parse

    with pytest.raises(BadPayload, match="not valid JSON"):
        parse(raw, "application/json")


def test_parse_reads_json_and_the_form_field():
    from urllib.parse import urlencode

    from bot.service.intake import parse

    p = load_payload("pull_request.synchronize")
    raw = json.dumps(p).encode()
    assert parse(raw) == p == parse(urlencode({"payload": raw.decode()}).encode(),
                                    "application/x-www-form-urlencoded; charset=utf-8")
    assert parse('{"x": "caf\u00e9"}'.encode()) == {"x": "caf\u00e9"}


# --- hostile input: wrong types, big numbers, trailing newlines (nothing stored) --------------------

def _set(path: str, value):
    def mutate(p):
        obj = p
        *parents, last = path.split(".")
        for part in parents:
            obj = obj[part]
        obj[last] = value
    return mutate


@pytest.mark.parametrize("event,name,mutate", [
    ("pull_request", "pull_request.opened", _set("pull_request.head.sha", 123)),
    ("pull_request", "pull_request.opened", _set("pull_request.head.sha", [HEAD])),
    ("pull_request", "pull_request.opened", _set("pull_request.head.sha", {"sha": HEAD})),
    ("pull_request", "pull_request.opened", _set("repository.full_name", ["openstack", "nova"])),
    ("pull_request", "pull_request.opened", _set("repository.full_name", 7)),
    ("pull_request", "pull_request.opened", _set("repository.clone_url", ["https://github.com/x/y.git"])),
    ("pull_request", "pull_request.opened", _set("pull_request.base.ref", 5)),
    ("pull_request", "pull_request.opened", _set("pull_request.number", "17")),
    ("pull_request", "pull_request.opened", _set("pull_request.number", 17.0)),
    ("pull_request", "pull_request.opened", _set("pull_request.number", True)),
    ("pull_request", "pull_request.opened", _set("installation.id", "31415926")),
    ("pull_request", "pull_request.opened", _set("installation", [1])),
    ("pull_request", "pull_request.opened", _set("action", ["opened"])),
    ("pull_request", "pull_request.opened", _set("action", {"opened": 1})),
    ("check_run", "check_run.rerequested", _set("check_run.head_sha", 5)),
    ("check_run", "check_run.rerequested", _set("check_run.head_sha", None)),
    ("check_run", "check_run.rerequested", _set("action", ["rerequested"])),
    ("check_run", "check_run.rerequested", _set("repository.full_name", {"a": 1})),
])
def test_wrong_typed_fields_are_400_and_nothing_is_stored(setup, event, name, mutate):
    client, backend, _ = setup
    p = load_payload(name)
    mutate(p)
    r = post(client, event, p)
    assert r.status_code == 400 and r.json["error"]
    assert stored(backend) == 0


@pytest.mark.parametrize("number", [2**63, 2**63 - 1, 2**31, -1, 0, 10**30])
def test_pr_numbers_outside_the_32_bit_range_are_400_in_sqlite_mode(setup, number):
    client, backend, _ = setup
    p = load_payload("pull_request.opened")
    p["pull_request"]["number"] = number
    r = post(client, "pull_request", p)
    assert r.status_code == 400 and "pull request number" in r.json["error"]
    assert stored(backend) == 0


def test_the_largest_pr_number_is_accepted(setup):
    client, backend, rec = setup
    p = load_payload("pull_request.opened")
    p["pull_request"]["number"] = 2**31 - 1
    assert post(client, "pull_request", p).status_code == 202
    drain(backend, rec)
    assert rec.specs[0].pr == 2**31 - 1


def test_pr_numbers_outside_the_32_bit_range_are_400_in_redis_mode(tmp_path):
    from tests.support.redis_server import RedisServer, redis_env

    server = RedisServer(tmp_path / "redis").start()
    try:
        app = create_app(settings(**redis_env(server.url)), handler=Recorder())
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        keys = server.client().dbsize()
        for number in (2**63, 2**31, 0):
            p = load_payload("pull_request.opened")
            p["pull_request"]["number"] = number
            r = post(client, "pull_request", p)
            assert r.status_code == 400, number
        p = load_payload("pull_request.opened")
        p["repository"]["full_name"] = "openstack/nova\n"
        assert post(client, "pull_request", p).status_code == 400
        assert server.client().dbsize() == keys  # nothing stored
        app.extensions["minbump.backend"].close()
    finally:
        server.stop()


@pytest.mark.parametrize("path,value", [
    ("repository.full_name", "openstack/nova\n"),
    ("repository.full_name", "openstack/nova\r"),
    ("repository.full_name", "openstack/.."),
    ("repository.full_name", "openstack/nova/x"),
    ("pull_request.head.sha", HEAD + "\n"),
    ("pull_request.base.ref", "master\n"),
    ("pull_request.base.ref", "mas ter"),
    ("repository.clone_url", "https://github.com/openstack/nova.git\n"),
    ("repository.clone_url", "https://github.com/openstack/nova.git x"),
])
def test_ids_with_a_trailing_newline_or_whitespace_are_400(setup, path, value):
    """``$`` matches before a final newline: "octo/nova\\n" was another repository with its own cache dir."""
    client, backend, _ = setup
    p = load_payload("pull_request.opened")
    _set(path, value)(p)
    r = post(client, "pull_request", p)
    assert r.status_code == 400
    assert stored(backend) == 0


def test_delivery_and_event_headers_must_be_plain_ids(tmp_path):
    from bot.service.intake import Intake

    backend = SQLiteBackend(tmp_path / "state.sqlite3")
    intake = Intake(SECRET, backend)
    body = json.dumps(load_payload("pull_request.opened")).encode()
    for delivery, event in (("abc\n", "pull_request"), ("x" * 201, "pull_request"), ("a b", "pull_request"),
                            ("ok-1", "pull_request\n"), ("", "pull_request"), ("ok-1", "")):
        headers = webhook_headers(event, body, SECRET)
        headers.update({"X-GitHub-Delivery": delivery, "X-GitHub-Event": event})
        assert intake.handle(headers, body)[0] == 400, (delivery, event)
    assert stored(backend) == 0


# --- hostile input: readiness tries what intake does -----------------------------------------------

@contextlib.contextmanager
def unprivileged():
    """Run the block as an ordinary user: as root, file modes would not make anything read-only."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_readyz_fails_when_the_state_database_is_read_only():
    """The state database read-only, its directory writable: every delivery gets 503, so /readyz must too."""
    data = Path(tempfile.mkdtemp(prefix="minbump-ro-"))  # not under tmp_path: its parents are private
    try:
        data.chmod(0o777)
        SQLiteBackend(data / "state.sqlite3").close()
        (data / "state.sqlite3").chmod(0o444)
        backend = SQLiteBackend(data / "state.sqlite3")
        client = create_app(settings(MINBUMP_DATA_DIR=str(data)), backend=backend, handler=Recorder()).test_client()
        assert post(client, "ping", load_payload("ping")).status_code == 200  # imports done while privileged
        with unprivileged():
            r = post(client, "pull_request", load_payload("pull_request.opened"))
            ready = client.get("/readyz")
            backend.close()
        assert r.status_code == 503
        assert ready.status_code == 503 and ready.json["ok"] is False and "readonly" in ready.json["error"]
        assert stored(backend) == 0
    finally:
        shutil.rmtree(data, ignore_errors=True)


# --- hostile input: resource caps and slow clients (over real HTTP) -------------------------------

def _serve(app, read_timeout: float = 30.0):
    from bot.service.serving import make_server

    server = make_server("127.0.0.1", 0, app, read_timeout)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


def _head(delivery: str, length: int, signature: str | None, event: str = "pull_request") -> bytes:
    lines = ["POST /webhook HTTP/1.1", "Host: localhost", "Content-Type: application/json",
             f"X-GitHub-Event: {event}", f"X-GitHub-Delivery: {delivery}", f"Content-Length: {length}"]
    if signature is not None:
        lines.append(f"X-Hub-Signature-256: {signature}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket):
    import http.client

    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp


def test_unsigned_and_oversized_deliveries_are_refused_before_their_body_is_read(tmp_path):
    """16 concurrent deliveries each declaring 25 MB over the cap: every one is answered from its
    headers (no body byte is ever sent), so concurrent big bodies cost no memory."""
    backend = SQLiteBackend(tmp_path / "state.sqlite3")
    server = _serve(create_app(settings(MINBUMP_MAX_BODY="1000000"), backend=backend, handler=Recorder()))
    socks = []
    try:
        for i in range(16):
            s = socket.create_connection(("127.0.0.1", server.server_port), timeout=30)
            signed = i % 2 == 0
            s.sendall(_head(f"big-{i}", 1_000_000 + 25 * 1024 * 1024, "sha256=" + "0" * 64 if signed else None))
            socks.append((s, signed))
        s = socket.create_connection(("127.0.0.1", server.server_port), timeout=30)
        s.sendall(_head("unsigned-small", 500, None))  # the 500 bytes never come: not waited for
        socks.append((s, False))
        for s, signed in socks:
            resp = _response(s)
            assert resp.status == (413 if signed else 401)
            assert "close" in resp.getheader("Connection")  # not left open to drain 25 MB
    finally:
        for s, _ in socks:
            s.close()
        server.shutdown()
    assert stored(backend) == 0


def _trickle_until_closed(sock: socket.socket, data: bytes, within: float) -> bytes | None:
    """Send ``data`` a byte every 0.1 s (again and again) until the server answers or closes;
    what it sent back (b"" for a plain close), or None when it kept reading for ``within`` s."""
    import select

    deadline = time.monotonic() + within
    i = 0
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable:
            try:
                return sock.recv(65536)
            except ConnectionError:
                return b""
        try:
            sock.send(data[i % len(data):i % len(data) + 1])
        except OSError:
            return b""
        i += 1
    return None


def test_minbump_serve_drops_a_client_that_sends_its_request_slowly(tmp_path):
    """Slowloris: each byte comes in time for a per-read timeout, the request never completes.
    ``minbump serve``'s server reads a request within MINBUMP_READ_TIMEOUT (here 1 s) in all."""
    backend = SQLiteBackend(tmp_path / "state.sqlite3")
    app = create_app(settings(MINBUMP_READ_TIMEOUT="1"), backend=backend, handler=Recorder())
    assert app.extensions["minbump.settings"].read_timeout == 1.0
    server = _serve(app, read_timeout=1.0)
    addr = ("127.0.0.1", server.server_port)
    try:
        headers = socket.create_connection(addr, timeout=30)
        headers.sendall(b"POST /webhook HTTP/1.1\r\nHost: localhost\r\n")
        t0 = time.monotonic()
        answer = _trickle_until_closed(headers, b"X-Pad: " + b"a" * 50 + b"\r\n", within=60)
        assert answer is not None, "a slow header stream was read for 60 s"
        assert time.monotonic() - t0 < 30
        body = json.dumps(load_payload("pull_request.opened")).encode()
        slow_body = socket.create_connection(addr, timeout=30)
        slow_body.sendall(_head("slow-body", len(body), sign(body, SECRET)))
        answer = _trickle_until_closed(slow_body, body, within=60)
        assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer[:80]
        # the server still answers everyone else
        import requests

        r = requests.post(f"http://{addr[0]}:{addr[1]}/webhook", data=body,
                          headers=webhook_headers("pull_request", body, SECRET), timeout=30)
        assert r.status_code == 202
    finally:
        server.shutdown()
    assert backend.pending_count() == 1  # only the complete delivery


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    import requests

    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
        time.sleep(0.1)


def test_minbump_serve_command_reads_requests_under_its_deadline(tmp_path):
    """`minbump serve` wires MINBUMP_READ_TIMEOUT into its server."""
    from tests.support.redis_server import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({"WEBHOOK_SECRET": SECRET, "GITHUB_TOKEN": "ghp_x_dummy_123", "MINBUMP_DATA_DIR": str(tmp_path),
                "MINBUMP_READ_TIMEOUT": "1"})
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--no-worker", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=out)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"POST /webhook HTTP/1.1\r\nHost: localhost\r\n")
        t0 = time.monotonic()
        assert _trickle_until_closed(s, b"X-Pad: " + b"a" * 50 + b"\r\n", within=60) is not None
        assert time.monotonic() - t0 < 30
        s.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_procfile_gunicorn_drops_slow_clients_and_keeps_serving(tmp_path):
    """The Procfile's web server (gthread with bot.service.serving.ThreadWorker): more slow
    clients than threads, each sending a byte every 0.1 s, are dropped at --timeout; an ordinary
    delivery is then answered."""
    import shlex

    import requests

    from tests.support.redis_server import free_port

    procfile = Path(__file__).resolve().parent.parent / "Procfile"
    web = next(line for line in procfile.read_text().splitlines() if line.startswith("web:"))
    words = shlex.split(web.split(":", 1)[1])
    assert words[words.index("--worker-class") + 1] == "bot.service.serving.ThreadWorker"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({"WEBHOOK_SECRET": SECRET, "GITHUB_TOKEN": "ghp_x_dummy_123", "MINBUMP_DATA_DIR": str(tmp_path)})
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    with open(tmp_path / "gunicorn.log", "wb") as out:
        proc = subprocess.Popen([gunicorn, "--worker-class", "bot.service.serving.ThreadWorker", "--workers", "1",
                                 "--threads", "2", "--timeout", "3", "--bind", f"127.0.0.1:{port}",
                                 "bot.service.wsgi:create_app()"], env=env, stdout=subprocess.DEVNULL, stderr=out)
    url = f"http://127.0.0.1:{port}"
    slow = []
    try:
        _wait_healthy(url, proc, tmp_path / "gunicorn.log")
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(b"POST /webhook HTTP/1.1\r\nHost: localhost\r\n")
            slow.append(s)
        answers = [_trickle_until_closed(s, b"X-Pad: " + b"a" * 50 + b"\r\n", within=60) for s in slow]
        assert all(a is not None for a in answers), "a slow client was read for 60 s"
        body = json.dumps(load_payload("pull_request.opened")).encode()
        r = requests.post(url + "/webhook", data=body, headers=webhook_headers("pull_request", body, SECRET),
                          timeout=30)
        assert r.status_code == 202
    finally:
        for s in slow:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)


def test_bodies_read_at_once_are_bounded_by_the_memory_budget(tmp_path):
    """While one large body is being read, another that would pass MINBUMP_BODY_MEMORY is 503
    unread; small deliveries still fit; once the first is done, there is room again."""
    backend = SQLiteBackend(tmp_path / "state.sqlite3")
    app = create_app(settings(MINBUMP_MAX_BODY="1000000", MINBUMP_BODY_MEMORY="1500000"), backend=backend,
                     handler=Recorder())
    budget = app.extensions["minbump.body_budget"]
    server = _serve(app)
    addr = ("127.0.0.1", server.server_port)
    unsigned = "sha256=" + "0" * 64
    try:
        first = socket.create_connection(addr, timeout=30)
        first.sendall(_head("big-1", 1_000_000, unsigned) + b"x" * 10)  # the rest comes later
        deadline = time.monotonic() + 30
        while budget.used != 1_000_000:
            assert time.monotonic() < deadline, "the first body's room was never taken"
            time.sleep(0.01)
        second = socket.create_connection(addr, timeout=30)
        second.sendall(_head("big-2", 1_000_000, unsigned))
        resp = _response(second)
        assert resp.status == 503 and "close" in resp.getheader("Connection")
        body = json.dumps(load_payload("pull_request.opened")).encode()
        import requests

        r = requests.post(f"http://{addr[0]}:{addr[1]}/webhook", data=body,
                          headers=webhook_headers("pull_request", body, SECRET), timeout=30)
        assert r.status_code == 202  # 16 KB still fits beside the first
        first.sendall(b"x" * (1_000_000 - 10))
        assert _response(first).status == 401  # read in full, then its signature checked
        assert budget.used == 0
        third = socket.create_connection(addr, timeout=30)
        third.sendall(_head("big-3", 1_000_000, unsigned) + b"x" * 1_000_000)
        assert _response(third).status == 401  # room again
    finally:
        server.shutdown()
    assert backend.pending_count() == 1 and stored(backend) == 1
