"""A real ``redis-server`` on loopback for the Redis-mode tests, plus a probe worker.

Why a real server: the properties under test (MULTI/EXEC atomicity, key TTLs,
blocking pops, reconnecting after a restart) are Redis behaviour; a fake
would prove only itself. Set ``MINBUMP_TEST_REDIS_URL`` to use a server you
run yourself (then :meth:`RedisServer.restart` is unavailable).

Without ``redis-server`` the tests skip with a reason, except under CI (``CI``
set), where they fail so that CI can never pass by skipping them.

``python -m tests.support.redis_server worker`` runs a worker with :func:`probe_handler`
(used to test the queue machinery without git or GitHub).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis

if TYPE_CHECKING:
    from bot.service.queue import JobSpec
    from bot.service.queue.redis import RedisBackend

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now (good enough for a test server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """Path of ``redis-server``; skip (or fail under CI) when it is not installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    reason = "redis-server is not installed (apt-get install -y redis-server); Redis-mode tests need a real server"
    if os.environ.get("CI"):
        pytest.fail(reason + " -- CI is set, so this is a failure, not a skip")
    pytest.skip(reason)
    raise AssertionError("unreachable")


class RedisServer:
    """One ``redis-server`` process without persistence; restartable on the same port."""

    def __init__(self, workdir: Path, port: int | None = None, external_url: str | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.external_url = external_url
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.external_url or f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def start(self) -> RedisServer:
        if self.external_url:
            self.wait_ready()
            return self
        binary = redis_server_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.workdir}/redis.log")
            try:
                if self.client().ping():
                    return
            except redis.RedisError as exc:
                last = exc
            time.sleep(0.05)
        raise RuntimeError(f"redis at {self.url} did not answer PING within {timeout}s: {last}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop and start again on the same port (all data is lost: no persistence)."""
        if self.external_url:
            pytest.skip("MINBUMP_TEST_REDIS_URL points at an external server; it cannot be restarted by the tests")
        self.stop()
        time.sleep(down_for)
        self.start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The shared server for the session (tests isolate themselves with a key prefix)."""
    external = os.environ.get("MINBUMP_TEST_REDIS_URL")
    server = RedisServer(tmp_path_factory.mktemp("redis"), external_url=external or None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private server for tests that stop or restart it."""
    if os.environ.get("MINBUMP_TEST_REDIS_URL"):
        redis_server_binary()  # an external server cannot be restarted; a local binary is still needed
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def redis_env(url: str, **extra: str) -> dict[str, str]:
    """Environment for a backend/worker isolated by a fresh key prefix and queue name, with fast timings."""
    tag = "t" + uuid.uuid4().hex[:10]
    env = {
        "REDIS_URL": url,
        "MINBUMP_REDIS_PREFIX": tag,
        "MINBUMP_RQ_QUEUE": tag,
        "MINBUMP_LEASE_SECONDS": "2",
        "MINBUMP_SWEEP_SECONDS": "0.5",
        "MINBUMP_RETRY_BASE": "0.2",
        "MINBUMP_MAX_ATTEMPTS": "3",
    }
    env.update(extra)
    return env


# --- the probe worker ---------------------------------------------------------------------------


def probe_handler(spec: JobSpec, backend: RedisBackend) -> None:
    """Record each run in Redis; obey per-delivery instructions the test left in Redis.

    ``<prefix>:probe:sleep:<delivery>`` seconds for the next run to sleep (a long job);
    ``<prefix>:probe:fail:<delivery>`` how many runs should fail transiently (RetryLater) first;
    ``<prefix>:probe:bug:<delivery>`` set: the run raises a plain exception (a bug: not retried).
    """
    from bot.service.queue import PermanentFailure, RetryLater

    conn = backend.conn
    prefix = backend.settings.prefix
    run = {"delivery": spec.delivery_id, "pid": os.getpid(), "attempt": spec.attempt, "t": time.time(),
           "sha": spec.head_sha}
    conn.rpush(f"{prefix}:probe:runs", json.dumps(run))
    fail = conn.decr(f"{prefix}:probe:fail:{spec.delivery_id}")
    if fail >= 0:
        raise RetryLater(f"probe failure for {spec.delivery_id}")
    if conn.get(f"{prefix}:probe:bug:{spec.delivery_id}"):
        raise RuntimeError(f"probe bug in {spec.delivery_id}")
    conn.delete(f"{prefix}:probe:fail:{spec.delivery_id}")
    if conn.get(f"{prefix}:probe:permanent:{spec.delivery_id}"):
        raise PermanentFailure("probe permanent failure")
    sleep = conn.getdel(f"{prefix}:probe:sleep:{spec.delivery_id}")  # only the first run sleeps
    if sleep:
        time.sleep(float(sleep))
    conn.rpush(f"{prefix}:probe:done", json.dumps(run))


def start_worker(env: dict[str, str], *args: str, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """A ``python -m tests.support.redis_server worker`` subprocess in its own session (killable as a unit)."""
    full = dict(os.environ)
    full.update(env)
    full["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + full.get("PYTHONPATH", "")
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.redis_server", "worker", *args],
            cwd=REPO_ROOT, env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit: returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # probe workers dump their stacks to their log
            time.sleep(0.5)
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def _worker_main() -> int:
    import faulthandler
    import logging

    faulthandler.register(signal.SIGUSR1)  # a test that finds the worker stuck can ask where

    from bot.service.queue.redis import RedisBackend

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    backend = RedisBackend.from_env(os.environ)
    stop = threading.Event()
    processed = backend.run_worker(probe_handler, stop=stop, poll=1.0)
    print(f"probe worker stopped after {processed} jobs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        raise SystemExit(_worker_main())
    print("usage: python -m tests.support.redis_server worker", file=sys.stderr)
    raise SystemExit(2)
