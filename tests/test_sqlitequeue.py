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
from bot.service.queue import JobSpec, PermanentFailure, RetryLater, RetryPolicy, get_backend
from bot.service.queue.sqlite import SQLiteBackend

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


def test_heartbeat_keeps_a_long_job_leased(tmp_path):
    be = SQLiteBackend(tmp_path / "state.sqlite3", lease_seconds=1.5)  # a beat every 0.5 s
    be.submit(spec())
    seen = []

    def slow(s, b):
        time.sleep(4.0)  # longer than the lease: the heartbeat must extend it
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


def test_a_bug_in_a_handler_is_permanent(be):
    """Only RetryLater (and the store's own errors) are transient: a plain exception fails at once."""
    be.submit(spec("bug"))
    calls = []

    def handler(s, b):
        calls.append(s.attempt)
        raise ValueError("embedded null byte")

    run(be, handler)
    assert calls == [1]
    (failed,) = be.failed_jobs()
    assert failed.attempts == 1 and failed.error == "ValueError: embedded null byte"


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
    assert be.acquire_pr_lock("o/r", 1, "a", ttl=2)
    assert not be.acquire_pr_lock("o/r", 1, "b", ttl=2)
    assert be.acquire_pr_lock("o/r", 2, "b", ttl=2)  # other PRs are independent
    be.release_pr_lock("o/r", 1, "b")  # not the owner: no effect
    assert not be.acquire_pr_lock("o/r", 1, "b", ttl=2)
    time.sleep(2.1)  # time passing, not a guess: the TTL is the promise under test
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


# --- intake: concurrency, pruning, fork safety, the WAL -------------------------------

def _jobs_by_delivery(be) -> dict[str, int]:
    rows = be._conn().execute("SELECT spec FROM jobs").fetchall()
    out: dict[str, int] = {}
    for r in rows:
        d = json.loads(r["spec"])["delivery_id"]
        out[d] = out.get(d, 0) + 1
    return out


def test_concurrent_submits_from_threads_store_each_delivery_once(be):
    """8 threads, overlapping delivery ids (redeliveries racing the first delivery)."""
    results: dict[str, list[bool]] = {}
    lock = threading.Lock()

    def submitter(k: int) -> None:
        for i in range(k * 10, k * 10 + 30):  # each id is sent by up to 3 threads
            new = be.submit(spec(f"t{i}", pr=1 + i % 4))
            with lock:
                results.setdefault(f"t{i}", []).append(new)

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 100
    assert all(v.count(True) == 1 for v in results.values()), "every id accepted exactly once"
    jobs = _jobs_by_delivery(be)
    assert set(jobs) == set(results) and set(jobs.values()) == {1}
    assert be.pending_count() == 100


def test_a_locked_store_fails_every_waiting_submit_and_marks_nothing_seen(tmp_path):
    import sqlite3

    path = tmp_path / "state.sqlite3"
    be = SQLiteBackend(path, busy_timeout=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # something outside minbump holds the database
    errors: list[BaseException] = []

    def submit(d: str) -> None:
        try:
            be.submit(spec(d))
        except Exception as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=submit, args=(f"x{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(errors) == 4 and all("locked" in str(e) for e in errors)
    assert [be.submit(spec(f"x{i}")) for i in range(4)] == [True] * 4


def test_expired_deliveries_are_pruned_at_most_once_a_minute_with_the_index(be):
    import bot.service.queue.sqlite as sq

    db = be._conn()
    plan = " ".join(str(r[-1]) for r in db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE state = 'done' AND run_after < ?", (1.0,)))
    assert "jobs_ready" in plan
    old = time.time() - sq.DELIVERY_TTL - 60

    def finished(delivery: str, ended: float) -> None:
        db.execute("INSERT INTO jobs(delivery_id, spec, repo, pr, head, state, run_after, created_at,"
                   " updated_at) VALUES (?, '{}', 'o/r', 9, ?, 'done', ?, ?, ?)",
                   (delivery, SHA_A, ended, ended, ended))

    for i in range(50):
        finished(f"old{i}", old)
    finished("recent", time.time() - 3600)
    be.submit(spec("queued-long-ago"))
    db.execute("UPDATE jobs SET created_at = ? WHERE delivery_id = 'queued-long-ago'", (old,))
    be._last_prune = 0.0
    assert be.submit(spec("p1")) is True  # due: prunes
    left = {r[0] for r in db.execute("SELECT delivery_id FROM jobs")}
    assert left == {"recent", "queued-long-ago", "p1"}  # a job not yet run is never pruned
    finished("old-late", old)
    assert be.submit(spec("p2")) is True  # within the minute: no prune on this submit
    assert db.execute("SELECT count(*) FROM jobs WHERE delivery_id='old-late'").fetchone()[0] == 1
    assert be.submit(spec("old3")) is True  # a pruned id is a new delivery again
    assert be.submit(spec("recent")) is False  # a remembered one is not


def test_finished_and_purged_jobs_still_dedupe_and_keep_the_newest_head(be):
    assert be.submit(spec("n1", sha=SHA_A)) is True
    assert run(be, lambda s, b: None) == 1
    assert be.pending_count() == 0
    assert be.submit(spec("n1", sha=SHA_A)) is False  # GitHub's redelivery of a finished job
    assert be.newest_head("o/r", 1) == SHA_A  # from the finished row
    assert be.submit(spec("n2", sha=SHA_B)) is True
    assert be.newest_head("o/r", 1) == SHA_B
    run(be, lambda s, b: (_ for _ in ()).throw(PermanentFailure("no")))
    assert be.purge_failed() == 1 and be.failed_jobs() == []
    assert be.submit(spec("n2", sha=SHA_B)) is False
    assert be.newest_head("o/r", 1) == SHA_B and be.newest_head("o/r", 2) is None


# What minbump wrote before schema 1 (user_version 0), verbatim.
_SCHEMA_0 = """
CREATE TABLE deliveries (delivery_id TEXT PRIMARY KEY, received_at REAL NOT NULL);
CREATE INDEX deliveries_received ON deliveries(received_at);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, spec TEXT NOT NULL, repo TEXT NOT NULL, pr INTEGER NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, run_after REAL NOT NULL, lease_owner TEXT,
    lease_expires REAL, error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX jobs_ready ON jobs(state, run_after);
CREATE INDEX jobs_pr ON jobs(repo, pr, state);
CREATE TABLE pr_state (repo TEXT NOT NULL, pr INTEGER NOT NULL, newest_head TEXT, comment_id INTEGER,
    lock_owner TEXT, lock_expires REAL, PRIMARY KEY (repo, pr));
"""


def test_a_schema_0_database_is_migrated_without_losing_a_job_or_a_delivery_id(tmp_path):
    import sqlite3

    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_SCHEMA_0)
    now = time.time()
    for jid, s, state, attempts in ((7, spec("q1", pr=1, sha=SHA_A), "queued", 0),
                                    (9, spec("f1", pr=2, sha=SHA_B), "failed", 3)):
        db.execute("INSERT INTO jobs(id, spec, repo, pr, state, attempts, run_after, error, created_at,"
                   " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (jid, json.dumps(s.to_dict()), s.repo, s.pr, state, attempts, now, "boom", now, now))
    db.executemany("INSERT INTO deliveries VALUES (?, ?)", [("q1", now), ("f1", now), ("done-long-ago", now)])
    db.executemany("INSERT INTO pr_state(repo, pr, newest_head, comment_id) VALUES (?, ?, ?, ?)",
                   [("o/r", 1, SHA_A, None), ("o/r", 3, SHA_B, 555)])
    db.close()

    be = SQLiteBackend(path, retry_policy=RetryPolicy(max_attempts=3, base=0.05))
    version = be._conn().execute("PRAGMA user_version").fetchone()[0]
    assert version == 1
    assert [(f.job_id, f.spec.delivery_id, f.attempts) for f in be.failed_jobs()] == [("9", "f1", 3)]
    for delivery in ("q1", "f1", "done-long-ago"):
        assert be.submit(spec(delivery)) is False, delivery
    assert be.newest_head("o/r", 3) == SHA_B and be.get_comment_id("o/r", 3) == 555
    seen = []
    assert run(be, lambda s, b: seen.append((s.delivery_id, s.head_sha))) == 1
    assert seen == [("q1", SHA_A)]
    assert be.submit(spec("new-1", pr=3, sha=SHA_A)) is True and be.newest_head("o/r", 3) == SHA_A
    SQLiteBackend(path)  # opening a migrated database again changes nothing
    assert be.pending_count() == 1


def test_a_database_from_a_newer_minbump_is_refused_in_one_line(tmp_path):
    import sqlite3

    path = tmp_path / "state.sqlite3"
    SQLiteBackend(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=7")
    db.close()
    with pytest.raises(MinbumpError, match=r"state schema 7, newer than this minbump's 1"):
        SQLiteBackend(path)


def test_sync_mode_defaults_to_normal_and_full_is_an_env_switch(tmp_path):
    def level(b) -> int:
        with b._tx() as db:  # the write connection is the one whose commits matter
            return db.execute("PRAGMA synchronous").fetchone()[0]

    assert level(SQLiteBackend.from_env({"MINBUMP_DATA_DIR": str(tmp_path / "a")})) == 1  # NORMAL
    full = SQLiteBackend.from_env({"MINBUMP_DATA_DIR": str(tmp_path / "b"), "MINBUMP_SQLITE_SYNC": "full"})
    assert level(full) == 2
    with pytest.raises(MinbumpError):
        SQLiteBackend.from_env({"MINBUMP_DATA_DIR": str(tmp_path / "c"), "MINBUMP_SQLITE_SYNC": "fast"})


def test_forked_child_opens_its_own_connection(tmp_path):
    """gunicorn --preload forks after the backend exists: the child must not reuse the parent's."""
    be = SQLiteBackend(tmp_path / "state.sqlite3")
    assert be.submit(spec("parent-1")) is True  # the parent now holds a connection
    parent_db = be._conn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report, never return into pytest
        try:
            ok = be.submit(spec("child-1")) is True and be._conn() is not parent_db
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1" and status == 0
    os.close(r)
    assert be.submit(spec("parent-2")) is True and be._conn() is parent_db
    assert set(_jobs_by_delivery(be)) == {"parent-1", "child-1", "parent-2"}


def test_the_wal_stays_bounded_under_sustained_submits(tmp_path):
    """Submits that never pause must not grow the WAL without bound (SQLite's automatic, passive
    checkpoint never catches up with them: 126 MB after 30,000 submits): the periodic RESTART
    checkpoint (sqlite.CHECKPOINT_EVERY) starts it over."""
    be = SQLiteBackend(tmp_path / "state.sqlite3")
    wal = tmp_path / "state.sqlite3-wal"
    stop = threading.Event()
    biggest = [0]
    done = [0]

    def submitter(k: int) -> None:
        i = 0
        while not stop.is_set() and i < 3000:
            be.submit(spec(f"s{k}-{i}", pr=i % 32 + 1))
            i += 1
            if wal.exists():
                biggest[0] = max(biggest[0], wal.stat().st_size)
        done[0] += i

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    assert be.pending_count() == done[0] > 1500, "too few submits to tell"
    # ~5 pages of 4 KB per commit: without a reset the WAL would reach commits * 20 KB (> 30 MB);
    # with one every 250 commits it stays near 5 MB
    assert biggest[0] < 12 * 1024 * 1024, (biggest[0], done[0])


def test_a_submit_waits_out_another_processs_write_lock(tmp_path):
    """SQLite's busy handler waits (up to busy_timeout) while another process holds the write lock."""
    import sqlite3

    path = tmp_path / "state.sqlite3"
    be = SQLiteBackend(path)
    assert be._conn().execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    outcome: list[object] = []
    t = threading.Thread(target=lambda: outcome.append(be.submit(spec("while-locked"))))
    t.start()
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        assert outcome == [] and t.is_alive()  # still waiting, neither failed nor through
        time.sleep(0.02)
    other.execute("COMMIT")
    other.close()
    t.join(timeout=30)
    assert outcome == [True] and be.pending_count() == 1
