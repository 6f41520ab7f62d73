"""The SQLite backend: atomic intake, leases, retries with backoff, failed jobs, per-PR state, CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

from bot.errors import MinbumpError
from bot.queue import JobSpec, PermanentFailure, RetryLater, RetryPolicy, get_backend
from bot.sqlitequeue import SQLiteBackend

SHA_A = "a" * 40
SHA_B = "b" * 40


def spec(delivery: str = "d1", pr: int = 1, sha: str = SHA_A, repo: str = "o/r") -> JobSpec:
    return JobSpec(delivery_id=delivery, event="pull_request", action="opened", repo=repo, pr=pr,
                   head_sha=sha, base_ref="main", clone_url="https://example.org/o/r.git")


@pytest.fixture
def be(tmp_path):
    return SQLiteBackend(tmp_path / "state.sqlite3", retry_policy=RetryPolicy(max_attempts=3, base=0.05),
                         lease_seconds=0.3)


def run(be, handler) -> int:
    return be.run_worker(handler, stop=threading.Event(), burst=True, poll=0.01)


def test_factory_picks_sqlite_without_redis_url(tmp_path):
    b = get_backend({"MINBUMP_DATA_DIR": str(tmp_path)})
    assert isinstance(b, SQLiteBackend) and b.path == tmp_path / "state.sqlite3"


def test_submit_dedupes_by_delivery_and_records_newest_head(be):
    assert be.submit(spec("d1", sha=SHA_A)) is True
    assert be.submit(spec("d1", sha=SHA_A)) is False
    assert be.submit(spec("d2", sha=SHA_B)) is True
    assert be.pending_count() == 2 and be.newest_head("o/r", 1) == SHA_B


def _submit_many(path: str, start: int, n: int, q) -> None:
    b = SQLiteBackend(path)
    q.put(sum(b.submit(spec(f"d{i}")) for i in range(start, start + n)))


def test_concurrent_submitters_never_double_accept(tmp_path):
    """Two processes deliver overlapping ids: each id is accepted exactly once."""
    path = str(tmp_path / "state.sqlite3")
    SQLiteBackend(path)
    q = multiprocessing.get_context("spawn").Queue()
    procs = [multiprocessing.get_context("spawn").Process(target=_submit_many, args=(path, s, 40, q))
             for s in (0, 20)]
    for p in procs:
        p.start()
    accepted = sum(q.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert accepted == 60 and SQLiteBackend(path).pending_count() == 60


def test_jobs_survive_reopening(tmp_path):
    path = tmp_path / "state.sqlite3"
    SQLiteBackend(path).submit(spec())
    seen = []
    run(SQLiteBackend(path), lambda s, b: seen.append(s.delivery_id))
    assert seen == ["d1"]


def test_expired_lease_is_reclaimed_with_next_attempt(be):
    be.submit(spec())
    first = be.claim("dead-worker")
    assert first is not None and first.spec.attempt == 1
    assert be.claim("w2") is None  # still leased
    time.sleep(0.35)
    again = be.claim("w2")
    assert again is not None and again.job_id == first.job_id and again.spec.attempt == 2
    be.complete(again)
    be.complete(first)  # the dead worker coming back cannot touch it
    assert be.pending_count() == 0


def test_heartbeat_keeps_a_long_job_leased(be):
    be.submit(spec())
    seen = []

    def slow(s, b):
        time.sleep(0.8)  # longer than the 0.3 s lease: the heartbeat must extend it
        assert b.claim("intruder") is None
        seen.append(s.attempt)

    run(be, slow)
    assert seen == [1] and be.failed_jobs() == []


def test_lease_expired_on_last_attempt_goes_to_failed(be):
    be.submit(spec())
    for _ in range(3):
        assert be.claim("dies-every-time") is not None
        time.sleep(0.35)
    assert be.claim("w") is None
    failed = be.failed_jobs()
    assert len(failed) == 1 and "lease expired" in failed[0].error


def test_transient_errors_retry_with_backoff_then_fail(be):
    be.submit(spec())
    times = []

    def flaky(s, b):
        times.append(time.monotonic())
        raise RetryLater("GitHub 502")

    run(be, flaky)
    assert len(times) == 3
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.15  # 0.05, then 0.05 * 3
    failed = be.failed_jobs()
    assert len(failed) == 1 and failed[0].attempts == 3 and "502" in failed[0].error


def test_permanent_errors_fail_at_once_and_retry_requeues(be):
    be.submit(spec("d1"))
    be.submit(spec("d2", pr=2))
    calls = []

    def handler(s, b):
        calls.append(s.delivery_id)
        if s.delivery_id == "d1":
            raise MinbumpError("not a branch name: '--x'")
        raise PermanentFailure("no installation")

    run(be, handler)
    assert calls == ["d1", "d2"]
    failed = {f.spec.delivery_id: f for f in be.failed_jobs()}
    assert set(failed) == {"d1", "d2"}
    assert be.retry_failed(failed["d1"].job_id) is True
    assert be.retry_failed("999999") is False
    run(be, lambda s, b: calls.append("ok:" + s.delivery_id))
    assert calls[-1] == "ok:d1"
    assert be.purge_failed(failed["d2"].job_id) == 1 and be.failed_jobs() == []


def test_uncounted_retry_does_not_use_attempts(be):
    be.submit(spec())
    n = []

    def busy_then_ok(s, b):
        n.append(s.attempt)
        if len(n) < 5:
            raise RetryLater("pr busy", delay=0.0, count=False)

    run(be, busy_then_ok)
    assert n == [1, 1, 1, 1, 1] and be.failed_jobs() == []


def test_jobs_of_one_pr_never_run_concurrently(tmp_path):
    be = SQLiteBackend(tmp_path / "s.sqlite3", lease_seconds=5)
    for i in range(6):
        be.submit(spec(f"d{i}", pr=1 + i % 2))
    running: dict[int, int] = {1: 0, 2: 0}
    peak = {1: 0, 2: 0}
    lock = threading.Lock()

    def handler(s, b):
        with lock:
            running[s.pr] += 1
            peak[s.pr] = max(peak[s.pr], running[s.pr])
        time.sleep(0.05)
        with lock:
            running[s.pr] -= 1

    threads = [threading.Thread(target=run, args=(be, handler)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert peak == {1: 1, 2: 1} and be.pending_count() == 0


def test_pr_lock_and_comment_mapping(be):
    assert be.acquire_pr_lock("o/r", 1, "a", ttl=0.2)
    assert not be.acquire_pr_lock("o/r", 1, "b", ttl=0.2)
    assert be.acquire_pr_lock("o/r", 2, "b", ttl=0.2)  # other PRs are independent
    be.release_pr_lock("o/r", 1, "b")  # not the owner: no effect
    assert not be.acquire_pr_lock("o/r", 1, "b", ttl=0.2)
    time.sleep(0.25)
    assert be.acquire_pr_lock("o/r", 1, "b", ttl=5)  # expired holder
    with be.pr_lock("o/r", 3, "c") as got:
        assert got
        with be.pr_lock("o/r", 3, "d") as got2:
            assert not got2
    assert be.get_comment_id("o/r", 1) is None
    be.set_comment_id("o/r", 1, 123)
    assert be.get_comment_id("o/r", 1) == 123
    be.set_comment_id("o/r", 1, None)
    assert be.get_comment_id("o/r", 1) is None


def test_jobs_cli_list_retry_purge(tmp_path):
    be = SQLiteBackend(tmp_path / "state.sqlite3")
    be.submit(spec("d1"))
    be.submit(spec("d2", pr=2))
    run(be, lambda s, b: (_ for _ in ()).throw(PermanentFailure(f"boom {s.delivery_id}")))
    env = {**os.environ, "MINBUMP_DATA_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bot.cli", "jobs", *args], env=env,
                              capture_output=True, text=True, timeout=30)

    res = cli("list", "--json")
    assert res.returncode == 0
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert {r["spec"]["delivery_id"] for r in rows} == {"d1", "d2"}
    ids = {r["spec"]["delivery_id"]: r["id"] for r in rows}
    assert "boom d1" in cli("list").stdout
    assert cli("retry", ids["d1"]).returncode == 0
    res = cli("retry", "424242")
    assert res.returncode == 2 and res.stderr.startswith("minbump: no failed job") and "Traceback" not in res.stderr
    assert cli("purge").returncode == 2  # neither id nor --all
    assert cli("purge", "--all").stdout.strip() == "purged 1"
    assert be.pending_count() == 1 and be.failed_jobs() == []
