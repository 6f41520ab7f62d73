"""Process entry points: ``minbump serve`` (web + embedded worker) and ``minbump worker``.

Why both: a single box needs one process and no server (SQLite queue, worker
threads inside the web process); production runs gunicorn for the web side
(``Procfile`` ``web:``) and any number of ``minbump worker`` processes. Both
stop on SIGTERM/SIGINT after the job in hand, which the queue's lease makes safe
even when a process is killed outright.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Mapping

from bot.errors import MinbumpError
from bot.logs import log, setup


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
    from werkzeug.serving import make_server

    from bot.web import create_app

    setup()
    config: dict[str, Any] = dict(env or {})
    config["embedded_worker"] = worker
    config["worker_threads"] = threads
    app = create_app(config)
    server = make_server(host, port, app, threaded=True)
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
    from bot.job import build_runner
    from bot.queue import get_backend

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


def main(argv: list[str] | None = None) -> None:
    """``python -m bot.serve [--host H] [--port P] [--no-worker]``: same as ``minbump serve``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bot.serve")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--no-worker", action="store_true", help="accept webhooks only; run jobs elsewhere")
    args = p.parse_args(argv)
    try:
        serve(args.host, args.port, worker=not args.no_worker)
    except MinbumpError as exc:
        print(f"minbump: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
