"""The webhook service: verify, deduplicate, queue durably, answer 202 fast.

Why the request path does so little: GitHub gives a delivery 10 seconds. The
handler verifies the HMAC over the raw body, extracts the few ids a job needs
(:class:`bot.service.queue.JobSpec`), and answers 202 only after the backend has stored
the job and marked the delivery id seen in one atomic step. Analysis and all
GitHub writes happen in the worker (embedded with ``minbump serve``, separate
with ``minbump worker``).

Why ``POST /webhook`` bypasses Flask (a small WSGI wrapper; every other route,
method and error still goes through Flask): Flask's per-request machinery
(contexts, routing, signals, the Response object) costs as much CPU as
everything the bare floor does, and the hot path needs none of it. Settings are
read once in :func:`create_app`, never per request.

Configuration is by environment (``config`` keys override it, for tests and
``minbump serve``): ``WEBHOOK_SECRET`` (required), ``GITHUB_TOKEN`` or
``APP_ID`` + ``PRIVATE_KEY``/``PRIVATE_KEY_PATH``, ``GITHUB_API_URL``,
``MINBUMP_DATA_DIR``, ``REDIS_URL``, ``PORT``.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import sys
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any, Mapping, NoReturn
from urllib.parse import parse_qs

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from bot.service import jsonfast
from bot.service.settings import env_int
from bot.errors import MinbumpError
from bot.service.github import CHECK_NAME
from bot.service.logs import error_text, log, register_secret, setup
from bot.service.queue import Backend, Handler, JobSpec, data_dir, get_backend

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
_SHA = re.compile(r"^[0-9a-f]{40}$")
PR_ACTIONS = {"opened", "synchronize", "reopened", "edited"}
RERUN_EVENTS = ("check_run", "check_suite")  # "Re-run": their jobs may have to find the PR (pr 0)


class BadPayload(Exception):
    """A delivery we cannot turn into a job: answered 400 with this one-line message."""


def _settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    env: dict[str, Any] = dict(os.environ)
    env.update(config or {})
    return env


def _fail_start(message: str) -> NoReturn:
    """Refuse to start with one line on stderr and exit status 2, never a traceback."""
    print(f"minbump: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask app. Refuses to start (exit 2, one line) without ``WEBHOOK_SECRET``.

    Extra ``config`` keys: ``backend`` (a Backend instance), ``job_handler`` (a
    Handler, instead of the real job), ``embedded_worker`` (bool: run jobs in
    threads of this process, as ``minbump serve`` does), ``worker_threads``.
    """
    setup()
    env = _settings(config)
    secret = env.get("WEBHOOK_SECRET") or ""
    if not secret:
        _fail_start("WEBHOOK_SECRET is not set; the service verifies every delivery with it")
    register_secret(secret)
    handler: Handler | None = env.get("job_handler")
    try:
        if handler is None and env.get("embedded_worker"):
            from bot.service.job import build_runner

            handler = build_runner(env).handler()
        elif handler is None:
            from bot.service.github import GitHubSettings

            GitHubSettings.from_env(env)  # fail at start, not at the first job
        backend: Backend = env.get("backend") or get_backend(env)
    except MinbumpError as exc:
        _fail_start(str(exc))
    except Exception as exc:  # e.g. an unwritable data dir
        _fail_start(error_text(exc))

    app = Flask("minbump")
    cap = env_int(env, "MINBUMP_MAX_BODY", MAX_BODY)
    app_id = str(env.get("APP_ID") or "")
    own_app = int(app_id) if app_id.isdigit() else None  # App mode: whose check suites are ours
    # One byte over the cap, so that a stream cut at the limit is told apart from one that fits.
    app.config["MAX_CONTENT_LENGTH"] = cap + 1
    app.extensions["minbump.backend"] = backend
    secret_b = secret.encode()

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(ok=True)

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        try:
            backend.ready()
            if not env.get("REDIS_URL"):  # SQLite mode: state and git cache share the data dir
                _probe_storage(data_dir(env))
        except Exception as exc:
            log("readyz.fail", level=logging.WARNING, error=error_text(exc))
            return jsonify(ok=False, error=error_text(exc)), 503
        return jsonify(ok=True), 200

    def deliver(environ: dict[str, Any]) -> tuple[int, bytes]:
        """One delivery, from the WSGI environ: (status, JSON body). The whole webhook contract."""
        t0 = time.monotonic()
        delivery = environ.get("HTTP_X_GITHUB_DELIVERY", "")
        event = environ.get("HTTP_X_GITHUB_EVENT", "")
        base = {"delivery": delivery or None, "event": event or None}
        length = _content_length(environ)
        if length is not None and length > cap:
            log("webhook.too_large", level=logging.WARNING, bytes=length, **base)
            return 413, _body(error="payload too large")
        if length is not None:  # what GitHub sends: read it in one call (the server bounds the stream)
            raw = environ["wsgi.input"].read(length) if length else b""
            if len(raw) != length:
                log("webhook.short_body", level=logging.WARNING, bytes=len(raw), expected=length, **base)
                return 400, _body(error="body shorter than its Content-Length")
        else:
            try:
                raw = _read_capped(get_input_stream(environ, max_content_length=cap + 1), cap)
            except RequestEntityTooLarge:
                raw = None
            if raw is None:  # a chunked body without Content-Length ran past the cap
                log("webhook.too_large", level=logging.WARNING, **base)
                return 413, _body(error="payload too large")
        sig = environ.get("HTTP_X_HUB_SIGNATURE_256", "")
        if not sig:
            log("webhook.unsigned", level=logging.WARNING, **base)
            return 401, _body(error="missing X-Hub-Signature-256")
        if not _signature_ok(secret_b, raw, sig):
            log("webhook.bad_signature", level=logging.WARNING, **base)
            return 401, _body(error="signature does not match")
        if not delivery or len(delivery) > 200 or not event:
            log("webhook.bad_headers", level=logging.WARNING, **base)
            return 400, _body(error="missing X-GitHub-Delivery or X-GitHub-Event")
        try:
            payload = _parse(raw, environ.get("CONTENT_TYPE", ""))
        except BadPayload as exc:
            log("webhook.bad_payload", level=logging.WARNING, error=str(exc), **base)
            return 400, _body(error=str(exc))
        if event == "ping":
            log("webhook.ping", hook_id=payload.get("hook_id"), **base)
            return 200, _body(ok=True, pong=True)
        try:
            spec = job_for(event, payload, delivery, own_app)
        except BadPayload as exc:
            log("webhook.bad_payload", level=logging.WARNING, error=str(exc), **base)
            return 400, _body(error=str(exc))
        if spec is None:
            action = payload.get("action") if isinstance(payload, dict) else None
            log("webhook.ignored", action=action, **base)
            return 200, _body(ok=True, ignored=f"{event}.{action}" if action else event)
        try:
            new = backend.submit(spec)
        except Exception as exc:
            # Not accepted: GitHub records the failed delivery and it can be redelivered.
            log("webhook.queue_unavailable", level=logging.ERROR, error=error_text(exc), **spec.log_fields())
            return 503, _body(error="queue unavailable, redeliver later")
        ms = round((time.monotonic() - t0) * 1000, 1)
        if not new:
            log("webhook.duplicate", ms=ms, **spec.log_fields())
            return 200, _DUPLICATE
        log("webhook.accepted", ms=ms, event=event, action=spec.action, **spec.log_fields())
        return 202, _QUEUED

    @app.post("/webhook")
    def webhook() -> Response:
        # Reached only when the fast path below is bypassed (e.g. app.wsgi_app wrapped by others).
        status, body = deliver(request.environ)
        return Response(body, status=status, mimetype="application/json")

    flask_wsgi = app.wsgi_app

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        """``POST /webhook`` without Flask's per-request machinery (request and app contexts,
        routing, signals, the Response object: about as much CPU as everything else in the
        bare floor); every other route, method and error goes through Flask as usual."""
        if environ.get("PATH_INFO") != "/webhook" or environ.get("REQUEST_METHOD") != "POST":
            return flask_wsgi(environ, start_response)
        try:
            status, body = deliver(environ)
        except Exception as exc:  # a bug, not the store (that is 503 above): answer like Flask would
            log("webhook.error", level=logging.ERROR, error=error_text(exc))
            status, body = 500, _body(error="internal error")
        start_response(_STATUS_LINES[status], [("Content-Type", "application/json"),
                                               ("Content-Length", str(len(body)))])
        return [body]

    app.wsgi_app = wsgi_app  # type: ignore[method-assign]

    if handler is not None and env.get("embedded_worker"):
        start_embedded_worker(app, backend, handler, env_int(env, "worker_threads", 1))
    return app


def start_embedded_worker(app: Flask, backend: Backend, handler: Handler, threads: int = 1) -> threading.Event:
    """Run jobs in daemon threads of this process (single box); set the returned event to stop."""
    stop = threading.Event()
    workers = []
    for i in range(max(1, threads)):
        t = threading.Thread(target=backend.run_worker, args=(handler,),
                             kwargs={"stop": stop}, name=f"minbump-worker-{i}", daemon=True)
        t.start()
        workers.append(t)
    app.extensions["minbump.worker_stop"] = stop
    app.extensions["minbump.workers"] = workers
    return stop


_STATUS_LINES = {code: f"{code} {HTTPStatus(code).phrase}" for code in (200, 202, 400, 401, 413, 500, 503)}


def _body(**fields: Any) -> bytes:
    """The same bytes as Flask's ``jsonify(**fields)`` (compact, sorted keys, newline)."""
    return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode() + b"\n"


# The two answers of the hot path, serialised once.
_QUEUED = _body(ok=True, queued=True)
_DUPLICATE = _body(ok=True, duplicate=True)


def _content_length(environ: Mapping[str, Any]) -> int | None:
    """``Content-Length`` as Werkzeug reads it: None when absent or malformed, never negative."""
    value = environ.get("CONTENT_LENGTH")
    if not value:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        return None


def _signature_ok(secret: bytes, raw: bytes, header: str) -> bool:
    """``sha256=<hex>`` over the raw body, compared in constant time (one-shot C HMAC, no hex string)."""
    scheme, _, hexdigest = header.strip().partition("=")
    if scheme != "sha256" or len(hexdigest) != 64:
        return False
    try:
        given = bytes.fromhex(hexdigest)
    except ValueError:
        return False
    return hmac.compare_digest(hmac.digest(secret, raw, "sha256"), given)


def _read_capped(stream: Any, cap: int) -> bytes | None:
    """The raw body, or None when it is longer than ``cap`` (also for chunked uploads)."""
    buf = bytearray()
    while True:
        chunk = stream.read(min(1 << 20, cap + 1 - len(buf)) or 1)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > cap:
            return None


def _probe_storage(path: Path) -> None:
    """The data dir (git cache, SQLite state) exists and takes a write."""
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".readyz-{os.getpid()}-{threading.get_ident()}"
    try:
        probe.write_bytes(b"ok")
    except OSError as exc:
        raise RuntimeError(f"data dir not writable: {exc.strerror}") from None
    finally:
        probe.unlink(missing_ok=True)


def _parse(raw: bytes, content_type: str) -> dict[str, Any]:
    """JSON body, or the ``payload=`` form field when the hook is set to form encoding."""
    try:
        if content_type.split(";")[0].strip() == "application/x-www-form-urlencoded":
            fields = parse_qs(raw.decode("utf-8"), strict_parsing=False)
            data = jsonfast.loads((fields.get("payload") or [""])[0])
        else:
            data = jsonfast.loads(raw)  # UTF-8 only, as GitHub sends (orjson checks it while parsing)
    except (UnicodeDecodeError, ValueError):
        raise BadPayload("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadPayload("body is not a JSON object")
    return data


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise BadPayload(f"payload lacks {path}")
        obj = obj[part]
    return obj


def _installation(payload: dict[str, Any]) -> int | None:
    inst = payload.get("installation")
    if isinstance(inst, dict) and isinstance(inst.get("id"), int):
        return inst["id"]
    return None


def _checked(spec: JobSpec) -> JobSpec:
    if not _SHA.match(spec.head_sha):
        raise BadPayload("head sha is not 40 hex characters")
    # A re-run on a PR from a fork comes without its PR: the job finds it (and its base) by head sha.
    find_pr = type(spec.pr) is int and spec.pr == 0 and spec.base_ref == "" and spec.event in RERUN_EVENTS
    if not find_pr and (not isinstance(spec.pr, int) or isinstance(spec.pr, bool) or spec.pr <= 0):
        raise BadPayload("pull request number is not a positive integer")
    if not re.match(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", spec.repo):
        raise BadPayload("repository.full_name is not owner/name")
    if not find_pr and (not isinstance(spec.base_ref, str) or not spec.base_ref):
        raise BadPayload("base ref is missing")
    if not isinstance(spec.clone_url, str) or not spec.clone_url.startswith(("https://", "http://")):
        raise BadPayload("repository.clone_url is not an http(s) URL")
    return spec


def job_for(event: str, payload: dict[str, Any], delivery: str, app_id: int | None = None) -> JobSpec | None:
    """The job a delivery asks for, or None when the event/action is not ours to handle.

    ``app_id`` is this service's GitHub App id (App mode): an App with checks
    permission is sent every app's ``check_suite`` events, and only its own
    suite's "Re-run all checks" concerns it. Without one (token mode, commit
    statuses) no check suite is ours.
    """
    action = payload.get("action")
    if event == "pull_request":
        if action not in PR_ACTIONS:
            return None
        if action == "edited" and not (isinstance(payload.get("changes"), dict) and "base" in payload["changes"]):
            return None  # title/body edits change nothing we check
        if _get(payload, "pull_request.state") != "open":
            return None
        return _checked(JobSpec(
            delivery_id=delivery, event=event, action=action,
            repo=_get(payload, "repository.full_name"), pr=_get(payload, "pull_request.number"),
            head_sha=_get(payload, "pull_request.head.sha"), base_ref=_get(payload, "pull_request.base.ref"),
            clone_url=_get(payload, "repository.clone_url"), installation_id=_installation(payload)))
    if event == "check_run":
        if action != "rerequested":
            return None
        run = _get(payload, "check_run")
        if isinstance(run, dict) and run.get("name") != CHECK_NAME:
            return None  # someone else's check run
        # No pull request attached: a PR from a fork (or none at all); the job looks it up.
        return _rerun(event, action, payload, delivery, _first_pr(run, "check_run"),
                      _get(payload, "check_run.head_sha"))
    if event == "check_suite":
        if action != "rerequested" or app_id is None:
            return None
        suite = _get(payload, "check_suite")
        app = suite.get("app") if isinstance(suite, dict) else None
        if not isinstance(app, dict) or app.get("id") != app_id:
            return None  # another app's suite (GitHub Actions, other CI)
        return _rerun(event, action, payload, delivery, _first_pr(suite, "check_suite"),
                      _get(payload, "check_suite.head_sha"))
    return None


def _first_pr(obj: Any, where: str) -> Any:
    """The first of a check run's or suite's ``pull_requests``; None when there is none."""
    prs = obj.get("pull_requests") if isinstance(obj, dict) else None
    if prs is None or prs == []:
        return None
    if not isinstance(prs, list):
        raise BadPayload(f"{where}.pull_requests is not a list")
    return prs[0]


def _rerun(event: str, action: str, payload: dict[str, Any], delivery: str, pr: Any, head_sha: Any) -> JobSpec:
    """A re-run asked for from a check run or suite: the job for its (first) pull request, or,
    when GitHub attached none (a PR from a fork), a job with PR number 0 that finds it."""
    number, base_ref = (_get(pr, "number"), _get(pr, "base.ref")) if pr is not None else (0, "")
    return _checked(JobSpec(
        delivery_id=delivery, event=event, action=action,
        repo=_get(payload, "repository.full_name"), pr=number,
        head_sha=head_sha, base_ref=base_ref,
        clone_url=_get(payload, "repository.clone_url"), installation_id=_installation(payload)))
