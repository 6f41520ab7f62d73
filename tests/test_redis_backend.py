"""RedisBackend against a real redis-server: intake atomicity, per-PR state, retries, failed jobs.

The worker runs in-process here (a thread) with the probe handler; the
multi-process behaviour (SIGKILL, restart, many workers) is in test_redis_workers.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from bot.errors import MinbumpError
from bot.service.queue import JobSpec, PermanentFailure, RetryLater, get_backend
from bot.service.queue.redis import RedisBackend, RedisSettings
from tests.support.redis_server import RedisServer, free_port, probe_handler, redis_env, redis_server  # noqa: F401


def spec(delivery: str, pr: int = 1, sha: str = "a" * 40, repo: str = "octo/nova") -> JobSpec:
    return JobSpec(delivery_id=delivery, event="pull_request", action="synchronize", repo=repo, pr=pr,
                   head_sha=sha, base_ref="main", clone_url="http://127.0.0.1:1/octo/nova.git")


@pytest.fixture()
def backend(redis_server: RedisServer) -> Iterator[RedisBackend]:  # noqa: F811
    b = get_backend(redis_env(redis_server.url))
    assert isinstance(b, RedisBackend)
    yield b
    b.close()


def runs(b: RedisBackend) -> list[dict]:
    return [json.loads(x) for x in b.conn.lrange(f"{b.settings.prefix}:probe:runs", 0, -1)]


def run_until(b: RedisBackend, handler: Callable, done: Callable[[], bool], timeout: float = 20.0) -> int:
    """Run a worker in a thread until ``done()`` (or timeout); returns jobs processed."""
    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(b.run_worker(handler, stop=stop, poll=1.0)))
    t.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done():
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(timeout=15)
    assert not t.is_alive(), "worker did not stop within 15 s of the stop event"
    assert done(), "condition not reached before the timeout"
    return result[0]


# --- intake -------------------------------------------------------------------------------------


def test_submit_dedupes_by_delivery_with_a_ttl_of_days(backend: RedisBackend) -> None:
    assert backend.submit(spec("d1")) is True
    assert backend.submit(spec("d1")) is False
    assert backend.queue_depth() == 1
    ttl = backend.conn.ttl(f"{backend.settings.prefix}:delivery:d1")
    assert ttl > 7 * 86400
    job = backend.queue.jobs[0]
    assert job.kwargs == {"spec": spec("d1").to_dict()}  # ids only, JSON
    assert job.timeout == backend.settings.job_timeout + backend.settings.job_grace
    assert job.retries_left == backend.retry_policy.max_attempts - 1


def test_concurrent_submits_of_one_delivery_store_one_job(redis_server: RedisServer) -> None:  # noqa: F811
    env = redis_env(redis_server.url)
    backends = [RedisBackend.from_env(env) for _ in range(8)]  # as if 8 web processes
    barrier = threading.Barrier(len(backends))
    results: list[bool] = []

    def go(b: RedisBackend) -> None:
        barrier.wait()
        results.append(b.submit(spec("same")))

    threads = [threading.Thread(target=go, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert backends[0].queue_depth() == 1


def test_newest_head_follows_new_deliveries_not_redeliveries(backend: RedisBackend) -> None:
    backend.submit(spec("p1", sha="1" * 40))
    backend.submit(spec("p2", sha="2" * 40))
    assert backend.newest_head("octo/nova", 1) == "2" * 40
    backend.submit(spec("p1", sha="1" * 40))  # GitHub redelivers the older push
    assert backend.newest_head("octo/nova", 1) == "2" * 40
    assert backend.newest_head("octo/nova", 2) is None


def test_a_failed_enqueue_does_not_mark_the_delivery_seen(backend: RedisBackend) -> None:
    # Break the queue key (wrong type): the RPUSH inside EXEC fails while SET NX would succeed.
    backend.conn.set(backend.queue.key, "not a list")
    with pytest.raises(redis.ResponseError):
        backend.submit(spec("broken"))
    assert backend.conn.get(f"{backend.settings.prefix}:delivery:broken") is None
    backend.conn.delete(backend.queue.key)
    assert backend.submit(spec("broken")) is True  # the redelivery is accepted
    assert backend.queue_depth() == 1


def test_unreachable_redis_raises_and_stores_nothing() -> None:
    env = redis_env(f"redis://127.0.0.1:{free_port()}/0")
    b = RedisBackend.from_env(env)
    with pytest.raises(redis.ConnectionError):
        b.ready()
    with pytest.raises(redis.ConnectionError):
        b.submit(spec("lost"))


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(MinbumpError, match="REDIS_URL must start"):
        RedisSettings.from_env({"REDIS_URL": "localhost:6379"})
    with pytest.raises(MinbumpError, match="MINBUMP_LEASE_SECONDS='soon' is not a number"):
        RedisSettings.from_env({"REDIS_URL": "redis://x", "MINBUMP_LEASE_SECONDS": "soon"})


# --- per-PR state -------------------------------------------------------------------------------


def test_pr_lock_has_an_owner_and_expires(backend: RedisBackend) -> None:
    assert backend.acquire_pr_lock("octo/nova", 7, "w1", ttl=2)
    assert backend.acquire_pr_lock("octo/nova", 7, "w1", ttl=2)  # re-entrant for its owner (extends)
    assert not backend.acquire_pr_lock("octo/nova", 7, "w2", ttl=10)
    backend.release_pr_lock("octo/nova", 7, "w2")  # not the owner: no effect
    assert not backend.acquire_pr_lock("octo/nova", 7, "w2", ttl=10)
    assert backend.acquire_pr_lock("octo/nova", 8, "w2", ttl=10)  # other PR is independent
    time.sleep(2.2)  # (time passing, not a guess: the TTL is the promise under test)
    assert backend.acquire_pr_lock("octo/nova", 7, "w2", ttl=10)  # the dead holder's lock expired
    backend.release_pr_lock("octo/nova", 7, "w2")
    with backend.pr_lock("octo/nova", 7, "w3") as got:
        assert got
        with backend.pr_lock("octo/nova", 7, "w4") as other:
            assert not other
    assert backend.acquire_pr_lock("octo/nova", 7, "w4", ttl=10)


def test_comment_mapping_is_shared(backend: RedisBackend, redis_server: RedisServer) -> None:  # noqa: F811
    other = RedisBackend(backend.settings)  # another process, same Redis
    assert backend.get_comment_id("octo/nova", 3) is None
    backend.set_comment_id("octo/nova", 3, 12345)
    assert other.get_comment_id("octo/nova", 3) == 12345
    other.set_comment_id("octo/nova", 3, None)
    assert backend.get_comment_id("octo/nova", 3) is None


def test_lock_taken_inside_a_worker_lives_one_lease_and_is_renewed(backend: RedisBackend) -> None:
    """A long job keeps its PR lock; the lock's TTL stays short so a dead holder frees it quickly."""
    seen: dict[str, float] = {}

    def handler(s: JobSpec, b: RedisBackend) -> None:
        assert b.acquire_pr_lock(s.repo, s.pr, "me", ttl=900)
        key = b._pr_key("lock", s.repo, s.pr)
        seen["ttl_start"] = b.conn.pttl(key) / 1000
        time.sleep(b.settings.lease_seconds * 2)  # outlive the lease: renewal must keep it
        seen["still_mine"] = float(b.conn.get(key) == b"me")
        b.release_pr_lock(s.repo, s.pr, "me")

    backend.submit(spec("long"))
    run_until(backend, handler, lambda: "still_mine" in seen)
    assert seen["ttl_start"] <= backend.settings.lease_seconds
    assert seen["still_mine"] == 1.0


# --- worker: retries, permanent failures, failed registry ---------------------------------------


def test_transient_failure_is_retried_with_backoff(backend: RedisBackend) -> None:
    backend.conn.set(f"{backend.settings.prefix}:probe:fail:flaky", 1)
    backend.submit(spec("flaky"))
    done = lambda: backend.conn.llen(f"{backend.settings.prefix}:probe:done") == 1  # noqa: E731
    run_until(backend, probe_handler, done)
    r = runs(backend)
    assert [x["attempt"] for x in r] == [1, 2]
    assert r[1]["t"] - r[0]["t"] >= 0.2  # MINBUMP_RETRY_BASE
    assert backend.failed_jobs() == []


def test_exhausted_retries_land_in_failed_registry_and_can_be_retried_and_purged(backend: RedisBackend) -> None:
    backend.conn.set(f"{backend.settings.prefix}:probe:fail:bad", 3)  # fails all 3 attempts
    backend.submit(spec("bad"))
    run_until(backend, probe_handler, lambda: len(backend.failed_jobs()) == 1)
    [failed] = backend.failed_jobs()
    assert failed.job_id == RedisBackend.job_id_for("bad")
    assert failed.spec.delivery_id == "bad"
    assert failed.attempts == 3
    assert "probe failure for bad" in failed.error
    assert failed.failed_at > time.time() - 60
    # also visible to plain RQ tooling
    assert failed.job_id in backend._failed_registry().get_job_ids()

    assert backend.retry_failed(failed.job_id) is True
    assert backend.retry_failed("d-nope") is False
    done = lambda: backend.conn.llen(f"{backend.settings.prefix}:probe:done") == 1  # noqa: E731
    run_until(backend, probe_handler, done)
    assert backend.failed_jobs() == []
    assert runs(backend)[-1]["attempt"] == 1  # attempts were reset

    backend.conn.set(f"{backend.settings.prefix}:probe:permanent:p1", 1)
    backend.conn.set(f"{backend.settings.prefix}:probe:permanent:p2", 1)
    backend.submit(spec("p1"))
    backend.submit(spec("p2"))
    run_until(backend, probe_handler, lambda: len(backend.failed_jobs()) == 2)
    assert backend.purge_failed(RedisBackend.job_id_for("p1")) == 1
    assert [f.spec.delivery_id for f in backend.failed_jobs()] == ["p2"]
    assert backend.purge_failed() == 1
    assert backend.failed_jobs() == []


@pytest.mark.parametrize("exc", [PermanentFailure("no such repo"), MinbumpError("unknown ref 'x'"),
                                 ValueError("embedded null byte")])  # a bug: permanent too
def test_permanent_failures_are_not_retried(backend: RedisBackend, exc: Exception) -> None:
    calls: list[int] = []

    def handler(s: JobSpec, b: RedisBackend) -> None:
        calls.append(s.attempt)
        raise exc

    backend.submit(spec("perm"))
    run_until(backend, handler, lambda: len(backend.failed_jobs()) == 1)
    # failed, not scheduled: RQ would only keep it out of the failed registry for a retry
    assert backend.queue.scheduled_job_registry.count == 0 and backend.queue.count == 0
    assert calls == [1]
    assert backend.failed_jobs()[0].error.endswith(str(exc))


def test_retry_later_uncounted_does_not_use_attempts(backend: RedisBackend) -> None:
    calls: list[int] = []

    def handler(s: JobSpec, b: RedisBackend) -> None:
        calls.append(s.attempt)
        if len(calls) <= 4:  # more than MINBUMP_MAX_ATTEMPTS=3
            raise RetryLater("PR lock busy", delay=0.1, count=False)

    backend.submit(spec("busy"))
    run_until(backend, handler, lambda: len(calls) == 5)
    time.sleep(0.3)
    assert backend.failed_jobs() == []
    assert calls == [1, 1, 1, 1, 1]


def test_rq_hard_timeout_is_enforced_and_not_retried(redis_server: RedisServer) -> None:  # noqa: F811
    """The backstop behind the job's own limit (bot.service.job): RQ's timeout, job limit + grace."""
    b = RedisBackend.from_env(redis_env(redis_server.url, MINBUMP_JOB_TIMEOUT="1", MINBUMP_JOB_GRACE="0",
                                        MINBUMP_MAX_ATTEMPTS="3"))
    started: list[float] = []

    def handler(s: JobSpec, _: RedisBackend) -> None:
        started.append(time.monotonic())
        for _ in range(600):  # Python code: a worker thread's timer interrupts it between bytecodes
            time.sleep(0.05)

    b.submit(spec("slow"))
    t0 = time.monotonic()
    run_until(b, handler, lambda: len(b.failed_jobs()) == 1, timeout=30)
    assert time.monotonic() - t0 < 20  # the loop alone runs 30 s; the limit is 1 s
    assert "timeout" in b.failed_jobs()[0].error.lower() and len(started) == 1


def test_odd_delivery_ids_get_distinct_job_ids(backend: RedisBackend) -> None:
    assert RedisBackend.job_id_for("72d3162e-cc78-11e3-81ab-4c9367dc0958") == "d-72d3162e-cc78-11e3-81ab-4c9367dc0958"
    odd = ["a/b", "a_b", "a b", "x" * 150, "x" * 151]
    ids = {RedisBackend.job_id_for(d) for d in odd}
    assert len(ids) == len(odd)
    for d in odd:
        assert backend.submit(spec(d))
    assert backend.queue_depth() == len(odd)


def test_embedded_worker_threads_keep_their_own_locks(backend: RedisBackend) -> None:
    """`minbump serve --threads N` runs N workers on one backend: a job ending must not free another's lock."""
    seen: dict[str, bool] = {}

    def handler(s: JobSpec, b: RedisBackend) -> None:
        assert b.acquire_pr_lock(s.repo, s.pr, s.delivery_id, ttl=900)
        if s.delivery_id == "slow":
            time.sleep(1.5)  # meanwhile "quick" ends in the other thread
            seen["slow_still_locked"] = b.conn.get(b._pr_key("lock", s.repo, s.pr)) == b"slow"
        # no release: the worker releases what the job left behind

    stop = threading.Event()
    threads = [threading.Thread(target=backend.run_worker, args=(handler,), kwargs={"stop": stop, "poll": 1.0})
               for _ in range(2)]
    for t in threads:
        t.start()
    try:
        backend.submit(spec("slow", pr=1))
        time.sleep(0.3)
        backend.submit(spec("quick", pr=2))
        deadline = time.monotonic() + 15
        while "slow_still_locked" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    assert seen == {"slow_still_locked": True}
    assert backend.conn.get(backend._pr_key("lock", "octo/nova", 1)) is None  # released at the job's end
    assert backend.conn.get(backend._pr_key("lock", "octo/nova", 2)) is None


def test_burst_mode_waits_for_retries_due_soon(backend: RedisBackend) -> None:
    backend.conn.set(f"{backend.settings.prefix}:probe:fail:once", 1)
    backend.submit(spec("once"))
    backend.submit(spec("plain", pr=2))
    t0 = time.monotonic()
    processed = backend.run_worker(probe_handler, stop=threading.Event(), burst=True)
    assert processed == 3  # plain, once (failed), once (retried)
    assert backend.conn.llen(f"{backend.settings.prefix}:probe:done") == 2
    assert time.monotonic() - t0 < 60  # the retry is due in well under burst mode's 5 s horizon
