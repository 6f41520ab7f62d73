"""The Flask app: adapts HTTP to :class:`bot.service.intake.Intake`, plus health checks.

Every route, ``POST /webhook`` included, is an ordinary Flask view. The webhook
view asks intake whether the headers alone refuse the delivery (no signature,
a declared length over the cap) before it reads a byte of the body, then reads
at most the cap and hands headers and body over.

``create_app()`` with no arguments (gunicorn: ``'bot.service.wsgi:create_app()'``)
reads :class:`~bot.service.settings.Settings` from the environment once; tests and
``minbump serve`` pass the settings and their collaborators instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from collections.abc import Callable, Iterator

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import ClientDisconnected

from bot.errors import MinbumpError
from bot.service.intake import Intake
from bot.service.logs import error_text, log, register_secret, setup
from bot.service.queue import Backend, Handler, get_backend
from bot.service.settings import Settings

T = TypeVar("T")
routes = Blueprint("minbump", __name__)


def started(make: Callable[[], T]) -> T:
    """``make()``, or exit 2 with one line on stderr (never a traceback): bad settings, an
    unwritable data dir, missing credentials stop the process at start, not at the first job."""
    try:
        return make()
    except MinbumpError as exc:
        _fail_start(str(exc))
    except Exception as exc:
        _fail_start(error_text(exc))


def _fail_start(message: str) -> NoReturn:
    print(f"minbump: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def create_app(settings: Settings | None = None, *, backend: Backend | None = None,
               handler: Handler | None = None) -> Flask:
    """The web app. ``settings`` default to the environment's; ``backend`` to the one they name;
    ``handler`` is the job a worker will run: None means the real one, whose GitHub credentials
    are checked here so that a misconfigured process refuses to start."""
    setup()
    settings = settings or started(lambda: Settings.from_env(os.environ))
    register_secret(settings.webhook_secret)
    if handler is None:
        from bot.service.github import GitHubSettings

        started(lambda: GitHubSettings.from_env(settings.env))
    store = backend or started(lambda: get_backend(settings.env))
    intake = started(lambda: Intake(settings.webhook_secret, store, max_body=settings.max_body,
                                    app_id=settings.app_id))
    app = Flask("minbump")
    app.extensions.update({"minbump.settings": settings, "minbump.backend": store, "minbump.intake": intake,
                           "minbump.body_budget": BodyBudget(settings.body_memory)})
    app.register_blueprint(routes)
    return app


class BodyBudget:
    """Bytes of request bodies this process holds at once. Why: with the cap alone, every server
    thread may hold a 25 MB body before its signature is checked; past the budget a delivery is
    answered 503 unread (GitHub shows it failed; redeliver it). A body always fits when no other
    is held, so the budget never refuses a lone delivery."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def room(self, size: int) -> Iterator[bool]:
        """``with budget.room(n) as ok``: ``ok`` False means no room now (nothing was taken)."""
        with self._lock:
            ok = self.used == 0 or self.used + size <= self.limit
            if ok:
                self.used += size
        try:
            yield ok
        finally:
            if ok:
                with self._lock:
                    self.used -= size


@routes.post("/webhook")
def webhook() -> Response:
    intake: Intake = current_app.extensions["minbump.intake"]
    answer = intake.refuse_early(request.headers, request.content_length)
    if answer is None:
        size = intake.max_body + 1 if request.content_length is None else request.content_length
        with current_app.extensions["minbump.body_budget"].room(size) as ok:
            answer = _read_and_handle(intake) if ok else _busy(size)
    status, fields = answer
    response = jsonify(fields)
    response.status_code = status
    if status in (401, 408, 413, 503):  # the body may be unread: close rather than drain it for keep-alive
        response.headers["Connection"] = "close"
    return response


def _busy(size: int) -> tuple[int, dict[str, Any]]:
    log("webhook.busy", level=logging.WARNING, bytes=size, delivery=request.headers.get("X-GitHub-Delivery"))
    return 503, {"error": "too many large deliveries at once, redeliver later"}


def _read_and_handle(intake: Intake) -> tuple[int, dict[str, Any]]:
    """Read the body (at most the cap + 1 bytes) and let intake answer."""
    try:
        body = _read_capped(request.stream, intake.max_body)
    except (ClientDisconnected, TimeoutError) as exc:
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
            # the server's read deadline (bot.service.serving) passed
            log("webhook.slow_body", level=logging.WARNING, expected=request.content_length)
            return 408, {"error": "body not received in time"}
        log("webhook.short_body", level=logging.WARNING, expected=request.content_length)
        return 400, {"error": "body shorter than its Content-Length"}
    return intake.handle(request.headers, body)


@routes.get("/healthz")
def healthz() -> Response:
    return jsonify(ok=True)


@routes.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready when intake would succeed: the backend takes a write (SQLite: one rolled back; Redis:
    a key set), and in SQLite mode the data dir (state and git cache) takes a file."""
    settings: Settings = current_app.extensions["minbump.settings"]
    try:
        current_app.extensions["minbump.backend"].ready()
        if not settings.redis_url:
            _probe_storage(settings.data_dir)
    except Exception as exc:
        log("readyz.fail", level=logging.WARNING, error=error_text(exc))
        return jsonify(ok=False, error=error_text(exc)), 503
    return jsonify(ok=True), 200


def _read_capped(stream: Any, cap: int) -> bytes | None:
    """The raw body, or None when it is longer than ``cap`` (a chunked upload has no length to refuse
    early): at most ``cap`` + 1 bytes are ever held."""
    buf = bytearray()
    while True:
        chunk = stream.read(min(1 << 20, cap + 1 - len(buf)))
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
