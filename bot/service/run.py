"""Process entry points: ``minbump serve`` (web + embedded worker) and ``minbump worker``.

Why both: a single box needs one process and no server (SQLite queue, worker
threads inside the web process); production runs gunicorn for the web side
(``Procfile`` ``web:``) and any number of ``minbump worker`` processes. Both
stop on SIGTERM/SIGINT after the job in hand, which the queue's lease makes safe
even when a process is killed outright.

In ``minbump serve`` with the SQLite queue the web app and the worker threads
share a process, so a successful ``submit`` wakes an idle worker at once
(:class:`WakeableStop`) instead of leaving the job for the next poll (0.5 s:
up to half the end-to-end budget). Polling stays as the fallback for jobs
queued by other processes and for retries coming due. The Redis mode is left
as it is: its workers block on Redis, not on a poll.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Mapping

from bot.service.logs import log, setup

if TYPE_CHECKING:
    from flask import Flask

    from bot.service.queue import Backend, Handler


class WakeableStop(threading.Event):
    """The worker's stop event whose ``wait`` also returns when :meth:`wake` is called.

    ``Backend.run_worker`` sleeps with ``stop.wait(poll)`` between empty claims;
    waking it makes the next claim happen now. Each worker thread remembers the
    last wake it saw (a generation count), so a wake between a thread's empty
    claim and its wait is not lost, and every idle thread wakes, not just one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._wake = threading.Condition()
        self._generation = 0
        self._seen = threading.local()

    def wake(self) -> None:
        with self._wake:
            self._generation += 1
            self._wake.notify_all()

    def mark(self) -> None:
        """Call in a worker thread before its first claim: wakes from now on count for it."""
        with self._wake:
            self._seen.generation = self._generation

    def set(self) -> None:
        super().set()
        with self._wake:
            self._wake.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        with self._wake:
            seen = getattr(self._seen, "generation", self._generation)
            self._wake.wait_for(lambda: self.is_set() or self._generation != seen, timeout)
            self._seen.generation = self._generation
        return self.is_set()


def wake_on_submit(backend: Backend, stop: WakeableStop) -> Backend:
    """Wrap ``backend.submit`` (on this instance) so that a job newly queued wakes the workers."""
    submit: Callable[..., bool] = backend.submit

    def submit_and_wake(spec: Any) -> bool:
        new = submit(spec)
        if new:
            stop.wake()
        return new

    backend.submit = submit_and_wake  # type: ignore[method-assign]
    return backend


def build_app(env: Mapping[str, Any] | None = None, worker: bool = True, threads: int = 1,
              poll: float | None = None) -> Flask:
    """The web app, with ``threads`` embedded worker threads (woken on submit in SQLite mode).

    ``poll`` (default ``MINBUMP_WORKER_POLL`` or 0.5 s) is the fallback poll.
    """
    from bot.service.queue import get_backend
    from bot.service.settings import Settings
    from bot.service.wsgi import create_app, started

    settings = started(lambda: Settings.from_env({**os.environ, **(env or {})}))
    if not worker:
        return create_app(settings)
    from bot.service.job import build_runner

    handler = started(lambda: build_runner(settings.env).handler())
    backend = started(lambda: get_backend(settings.env))
    app = create_app(settings, backend=backend, handler=handler)
    stop = WakeableStop()
    if not settings.redis_url:  # Redis workers block on Redis, not on a poll
        wake_on_submit(backend, stop)
    app.extensions["minbump.worker_stop"] = stop
    app.extensions["minbump.workers"] = start_workers(backend, handler, stop, threads,
                                                      settings.worker_poll if poll is None else poll)
    return app


def start_workers(backend: Backend, handler: Handler, stop: WakeableStop, threads: int,
                  poll: float) -> list[threading.Thread]:
    """Daemon worker threads on ``backend`` that sleep on ``stop`` (woken on submit)."""

    def run() -> None:
        stop.mark()
        backend.run_worker(handler, stop=stop, poll=poll)

    workers = []
    for i in range(max(1, threads)):
        t = threading.Thread(target=run, name=f"minbump-worker-{i}", daemon=True)
        t.start()
        workers.append(t)
    return workers


def _stop_on_signals(stop: threading.Event, extra: Any = None) -> None:
    def handler(signum: int, frame: Any) -> None:
        log("process.stopping", signal=signal.Signals(signum).name)
        stop.set()
        if extra is not None:
            threading.Thread(target=extra, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def serve(host: str, port: int, env: Mapping[str, str] | None = None, worker: bool = True,
          threads: int = 1) -> None:
    """Run the webhook app (threaded WSGI server) with ``threads`` embedded worker threads."""
    from bot.service.serving import make_server

    setup()
    app = build_app(env, worker=worker, threads=threads)
    server = make_server(host, port, app, app.extensions["minbump.settings"].read_timeout)
    stop = app.extensions.get("minbump.worker_stop") or threading.Event()
    _stop_on_signals(stop, server.shutdown)
    log("serve.listening", host=host, port=server.server_port, embedded_worker=worker)
    try:
        server.serve_forever()
    finally:
        stop.set()
        for t in app.extensions.get("minbump.workers", []):
            t.join(timeout=30)
        log("serve.stopped")


def worker(env: Mapping[str, str] | None = None, burst: bool = False) -> int:
    """Run jobs from the configured backend until stopped (or the queue drains, with ``burst``)."""
    from bot.service.job import build_runner
    from bot.service.queue import get_backend

    setup()
    env = dict(os.environ if env is None else env)
    runner = build_runner(env)
    backend = get_backend(env)
    stop = threading.Event()
    _stop_on_signals(stop)
    log("worker.start", burst=burst, backend=type(backend).__name__)
    done = backend.run_worker(runner.handler(), stop=stop, burst=burst)
    log("worker.stopped", jobs=done)
    return done
