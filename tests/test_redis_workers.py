"""Worker processes against a real redis-server: a SIGKILLed worker loses nothing, Redis restarts.

Probe workers (``python -m tests.support.redis_server worker``) exercise the queue
machinery alone; the end-to-end burst through the real job and the fake
GitHub is in test_redis_e2e.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable

from bot.service.queue.redis import RedisBackend
from tests.support.redis_server import (  # noqa: F401
    REPO_ROOT,
    RedisServer,
    own_redis_server,
    probe_handler,
    redis_env,
    redis_server,
    start_worker,
    stop_process,
)
from tests.test_redis_backend import spec


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``cond()``; returns the seconds it took, fails the test with ``what`` otherwise."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def entries(b: RedisBackend, name: str) -> list[dict]:
    return [json.loads(x) for x in b.conn.lrange(f"{b.settings.prefix}:probe:{name}", 0, -1)]


def test_sigkilled_worker_job_is_run_again_by_the_other(redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    env = redis_env(redis_server.url)
    b = RedisBackend.from_env(env)
    workers = [start_worker(env, log_path=tmp_path / f"w{i}.log") for i in range(2)]
    try:
        b.conn.set(f"{b.settings.prefix}:probe:sleep:long", 60)
        b.submit(spec("long"))
        wait_for(lambda: len(entries(b, "runs")) == 1, 20, "a worker to start the long job")
        victim_pid = entries(b, "runs")[0]["pid"]
        [victim] = [w for w in workers if w.pid == victim_pid]
        [survivor] = [w for w in workers if w.pid != victim_pid]
        os.killpg(victim.pid, signal.SIGKILL)  # the whole process: nothing can clean up
        victim.wait()
        killed_at = time.monotonic()

        took = wait_for(lambda: len(entries(b, "done")) == 1, 90, "the killed job to be run again")
        [done] = entries(b, "done")
        assert done["delivery"] == "long"
        assert done["pid"] == survivor.pid
        assert done["attempt"] == 2
        # lease 2 s + sweep 0.5 s + retry backoff 0.2 s; generous slack for a loaded 2-core machine,
        # still far below stock RQ's abandoned-job detection (minutes)
        assert took < 45, f"re-run took {took:.1f}s"
        assert time.monotonic() - killed_at < 90
        assert b.failed_jobs() == []

        # the survivor keeps serving new work
        for i in range(5):
            b.submit(spec(f"after-{i}", pr=10 + i))
        wait_for(lambda: len(entries(b, "done")) == 6, 30, "jobs submitted after the kill")
        assert survivor.poll() is None
    finally:
        for w in workers:
            stop_process(w)


def test_worker_reconnects_after_redis_restart(own_redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    env = redis_env(own_redis_server.url)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log_path=log)
    try:
        b = RedisBackend.from_env(env)
        b.submit(spec("before"))
        wait_for(lambda: len(entries(b, "done")) == 1, 20, "the job before the restart")

        own_redis_server.restart(down_for=2.0)  # no persistence: Redis comes back empty
        time.sleep(1.0)
        assert worker.poll() is None, "worker exited while Redis was down:\n" + log.read_text()[-3000:]

        b.submit(spec("after"))
        wait_for(lambda: [e["delivery"] for e in entries(b, "done")] == ["after"], 30,
                 "the worker to reconnect and run a job submitted after the restart")
        assert entries(b, "done")[0]["pid"] == worker.pid
    finally:
        code = stop_process(worker)
    assert code == 0, log.read_text()[-3000:]


def test_sigterm_lets_the_running_job_finish(redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    env = redis_env(redis_server.url)
    b = RedisBackend.from_env(env)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log_path=log)
    try:
        b.conn.set(f"{b.settings.prefix}:probe:sleep:graceful", 1.5)
        b.submit(spec("graceful"))
        wait_for(lambda: len(entries(b, "runs")) == 1, 20, "the job to start")
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
    finally:
        code = stop_process(worker)
    assert code == 0, log.read_text()[-3000:]
    assert [e["delivery"] for e in entries(b, "done")] == ["graceful"]
    assert b.failed_jobs() == []


def test_worker_started_while_redis_is_down_waits_for_it(own_redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    """Exercises our own reconnect loop (RQ's only covers its blocking pop, not start-up)."""
    env = redis_env(own_redis_server.url)
    own_redis_server.stop()
    log = tmp_path / "worker.log"
    worker = start_worker(env, log_path=log)
    try:
        time.sleep(2.5)
        assert worker.poll() is None, "worker gave up while Redis was down:\n" + log.read_text()[-3000:]
        own_redis_server.start()
        b = RedisBackend.from_env(env)
        b.submit(spec("late"))
        wait_for(lambda: len(entries(b, "done")) == 1, 40, "the worker to connect and run the job")
    finally:
        code = stop_process(worker)
    assert code == 0, log.read_text()[-3000:]
    assert "worker.redis_unavailable" in log.read_text()


def test_sigterm_while_waiting_for_redis_exits_cleanly(tmp_path: Path) -> None:
    from tests.support.redis_server import free_port

    env = redis_env(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    log = tmp_path / "worker.log"
    worker = start_worker(env, log_path=log)
    time.sleep(2.0)
    assert worker.poll() is None
    code = stop_process(worker)
    assert code == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


def test_sigterm_while_redis_is_gone_stops_an_idle_worker(own_redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    """Redis goes away while the worker waits for jobs (RQ then retries its connection in a loop of its
    own): one SIGTERM still ends the worker, cleanly."""
    env = redis_env(own_redis_server.url)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log_path=log)
    try:
        b = RedisBackend.from_env(env)
        b.submit(spec("before"))
        wait_for(lambda: len(entries(b, "done")) == 1, 20, "the worker to run a job")
        own_redis_server.stop()
        wait_for(lambda: "could not connect" in log.read_text() or "redis_unavailable" in log.read_text(), 30,
                 "the worker to notice Redis is gone")
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=15)
    finally:
        stop_process(worker)
    assert code == 0, log.read_text()[-3000:]


def test_minbump_jobs_cli_lists_retries_and_purges_failed_jobs(redis_server: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    env = redis_env(redis_server.url)
    b = RedisBackend.from_env(env)
    for d in ("bad-1", "bad-2"):
        b.conn.set(f"{b.settings.prefix}:probe:permanent:{d}", 1)
        b.submit(spec(d, pr=int(d[-1])))
    b.run_worker(probe_handler, stop=threading.Event(), burst=True)

    def minbump(*args: str) -> subprocess.CompletedProcess[str]:
        full = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **env)
        return subprocess.run([sys.executable, "-m", "bot.cli", "jobs", *args], cwd=REPO_ROOT, env=full,
                              capture_output=True, text=True, timeout=60)

    listed = minbump("list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["d-bad-1", "d-bad-2"]
    assert "octo/nova#1" in lines[0] and "attempts=1" in lines[0] and "probe permanent failure" in lines[0]

    b.conn.delete(f"{b.settings.prefix}:probe:permanent:bad-1")
    assert minbump("retry", "d-bad-1").returncode == 0
    b.run_worker(probe_handler, stop=threading.Event(), burst=True)
    assert [json.loads(x)["delivery"] for x in b.conn.lrange(f"{b.settings.prefix}:probe:done", 0, -1)] == ["bad-1"]

    missing = minbump("retry", "d-nope")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert minbump("purge", "--all").stdout.strip() == "purged 1"
    assert minbump("list", "--json").stdout == ""
