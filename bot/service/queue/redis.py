"""The RQ + Redis backend: selected by ``REDIS_URL``, for running on many machines.

Why RQ rather than our own queue: an organisation-wide install needs a job
engine operators already know (``rq info``, the failed registry, dashboards).
RQ gives us the queue, retries with backoff (``rq.Retry``), job timeouts and
the failed registry. What stock RQ lacks for this bot lives here:

* **Atomic intake.** ``submit`` WATCHes the delivery's dedupe key and, in one
  MULTI/EXEC, sets it (``SET NX`` with a TTL of days), stores the RQ job and
  records the PR's newest head. Either all of it happens or none does, so a
  delivery is never marked seen without its job, and a webhook answered 503
  (Redis unreachable) is processed when GitHub redelivers it.
* **Fast recovery from dead workers.** Stock RQ only notices an abandoned job
  a minute or more after its worker died (a hard-coded ``+60`` in its
  heartbeat TTL, a 10 minute maintenance interval). :class:`MinbumpWorker`
  uses a short lease (``MINBUMP_LEASE_SECONDS``) as the heartbeat TTL, renews it
  from a thread while the job runs, and every worker runs a sweeper thread
  that hands expired jobs to RQ's own abandoned-job handling (retry, or the
  failed registry when retries are used up) and enqueues due retries. A job
  whose worker was SIGKILLed runs again after about lease + sweep interval
  + first retry delay (seconds in tests, under a minute with the defaults).
* **Per-PR state** shared by all workers: a PR lock (set-if-absent with an
  owner token and a TTL, re-entrant for its owner, renewed with the job's
  lease, released by compare-and-delete), the
  newest head, and the PR -> comment id mapping.
* **Surviving Redis restarts.** ``run_worker`` wraps RQ's work loop and starts
  it again with backoff after a connection error instead of exiting.

The job function (:func:`perform`) receives only the :class:`JobSpec` ids; it
runs in the worker process itself (RQ's ``SimpleWorker`` model), which is what
makes a SIGKILL of ``minbump worker`` kill the job too rather than orphan it.
It runs the handler through the shared :func:`bot.service.queue.run_job` and
tells RQ the outcome by raising RetryLater (retried) or PermanentFailure (not).

RQ 3 through its public API: ``Queue.enqueue_call``/``enqueue_job``, the
registries and ``clean_registries``, ``Worker.work(max_idle_time=...)`` (an idle
worker returns, so the loop here sees its stop event), and the worker methods
a subclass may override (``execute_job``, ``get_heartbeat_ttl``,
``subscribe``). One private hook remains, ``_install_signal_handlers``: see
:meth:`MinbumpWorker._install_signal_handlers` for why.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

import redis
from rq import Queue, Retry
from rq.exceptions import AbandonedJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, get_current_job
from rq.registry import FailedJobRegistry, clean_registries
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from rq.worker import SimpleWorker
from rq.worker_registration import clean_worker_registry

from bot.errors import MinbumpError
from bot.service.logs import error_text
from bot.service.logs import log as slog
from bot.service.queue import (
    Backend,
    FailedJob,
    Handler,
    JobSpec,
    PermanentFailure,
    RetryLater,
    RetryPolicy,
    backoff,
    run_job,
)

log = logging.getLogger("minbump.redisq")

JOB_FUNC = "bot.service.queue.redis.perform"

# Take the lock, or extend it when ``owner`` already holds it (re-entrant per owner, as the
# job re-checks its lock before publishing), else refuse.
_ACQUIRE_LUA = """
local cur = redis.call('get', KEYS[1])
if not cur then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
# Compare-and-expire / compare-and-delete: only the owner may renew or release.
_REFRESH_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def _env_number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    """Read a numeric setting; a bad value is the operator's mistake: one line, no traceback."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise MinbumpError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise MinbumpError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


@dataclass(frozen=True)
class RedisSettings:
    """Every knob of the Redis mode, from the environment (see docs/DEPLOY.md)."""

    url: str
    prefix: str = "minbump"
    queue_name: str = "minbump"
    job_timeout: int = 120  # the job's own limit on its analysis (see bot.service.job)
    job_grace: int = 600  # RQ's hard limit is job_timeout + this: fetch and publishing have their own
    lease_seconds: int = 30
    sweep_seconds: float = 10.0
    dedupe_ttl: int = 14 * 86400
    state_ttl: int = 90 * 86400
    result_ttl: int = 3600
    failure_ttl: int = 30 * 86400
    connect_timeout: float = 3.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisSettings:
        url = env.get("REDIS_URL", "")
        if not url:
            raise MinbumpError("REDIS_URL is not set")
        if not re.match(r"^(redis|rediss|unix)://", url):
            raise MinbumpError("REDIS_URL must start with redis://, rediss:// or unix://")
        lease = int(_env_number(env, "MINBUMP_LEASE_SECONDS", cls.lease_seconds, 1))
        return cls(
            url=url,
            prefix=env.get("MINBUMP_REDIS_PREFIX") or cls.prefix,
            queue_name=env.get("MINBUMP_RQ_QUEUE") or cls.queue_name,
            job_timeout=int(_env_number(env, "MINBUMP_JOB_TIMEOUT", cls.job_timeout, 1)),
            job_grace=int(_env_number(env, "MINBUMP_JOB_GRACE", cls.job_grace, 0)),
            lease_seconds=lease,
            sweep_seconds=_env_number(env, "MINBUMP_SWEEP_SECONDS", min(cls.sweep_seconds, max(1.0, lease / 3)), 0.1),
            dedupe_ttl=int(_env_number(env, "MINBUMP_DEDUPE_DAYS", cls.dedupe_ttl / 86400, 1) * 86400),
            result_ttl=int(_env_number(env, "MINBUMP_RESULT_TTL", cls.result_ttl, 0)),
            failure_ttl=int(_env_number(env, "MINBUMP_FAILURE_TTL_DAYS", cls.failure_ttl / 86400, 1) * 86400),
        )


@dataclass
class _Runtime:
    """What :func:`perform` needs, set by ``run_worker`` in the worker process."""

    handler: Handler
    backend: RedisBackend
    processed: int = 0


# Per worker thread: ``minbump serve`` may run several embedded workers in one process.
_RUNTIMES: dict[int, _Runtime] = {}


def perform(spec: dict[str, Any]) -> str:
    """The RQ job function: rebuild the :class:`JobSpec` and call the worker's handler.

    The attempt number is kept in the job's meta so the handler can log it and
    ``minbump jobs list`` can show it (RQ's ``retries_left`` is also changed by
    our retry classification, so it is not a count of attempts).
    """
    runtime = _RUNTIMES.get(threading.get_ident())
    if runtime is None:
        raise PermanentFailure("bot.service.queue.redis.perform only runs inside `minbump worker` "
                               "(RedisBackend.run_worker)")
    job = get_current_job()
    attempt = 1
    if job is not None:
        attempt = int(job.meta.get("attempts", 0)) + 1
        job.meta["attempts"] = attempt
        job.save_meta()
    job_spec = JobSpec.from_dict(spec).with_attempt(attempt)
    try:
        outcome = run_job(runtime.handler, job_spec, runtime.backend,
                          transient=(redis.ConnectionError, redis.TimeoutError),
                          job=job.id if job is not None else None)
    finally:
        runtime.processed += 1
    # RQ learns the outcome from an exception: _classify_failure maps these onto its retries.
    if outcome.state == "retry":
        raise RetryLater(outcome.error or "", delay=outcome.delay, count=outcome.count)
    if outcome.state == "failed":
        raise PermanentFailure(outcome.error or "")
    return "done"


def _override_next_interval(job: Job, seconds: float) -> None:
    """Make RQ's next retry of ``job`` wait ``seconds`` (RQ picks intervals by retries left)."""
    intervals: list[float] = list(job.retry_intervals or [0])
    left = job.retries_left or 0
    index = max(len(intervals) - left, 0)
    if index >= len(intervals):
        intervals.append(seconds)
    else:
        intervals[index] = seconds
    job.retry_intervals = intervals  # type: ignore[assignment]  # rq annotates ints; it waits timedelta(seconds=x)


def _classify_failure(job: Job, exc_type: type | None, exc_value: BaseException | None, tb: Any) -> bool:
    """RQ exception handler, run before RQ decides whether to retry: map our contract onto RQ.

    RetryLater (which :func:`perform` raises for everything :func:`run_job` calls
    transient): retry after its ``delay``; with ``count=False`` without using an
    attempt. A job whose worker died (AbandonedJobError, from RQ's registry
    cleanup) keeps RQ's retries: that is the SIGKILL/OOM case. Anything else
    (PermanentFailure, RQ's own job timeout): no retry, straight to the failed
    registry. Returns True to let RQ log it too.
    """
    if isinstance(exc_value, AbandonedJobError):
        return True
    if not isinstance(exc_value, RetryLater):
        job.retries_left = 0
        return True
    else:
        if not exc_value.count:
            job.retries_left = (job.retries_left or 0) + 1
            job.meta["attempts"] = max(0, int(job.meta.get("attempts", 1)) - 1)
        if job.retries_left:
            delay = exc_value.delay
            if delay is None and not exc_value.count:
                delay = 1.0
            if delay is not None:
                _override_next_interval(job, max(0.0, float(delay)))
    return True


class _IdleStop(SystemExit):
    """Raised by the signal handler of an idle worker: RQ's loop and redis-py re-raise SystemExit
    (a plain exception raised there can be swallowed and retried); ``run_worker`` ends on it."""


class MinbumpWorker(SimpleWorker):
    """RQ's in-process worker with a short, renewed lease and a stop event.

    Why in-process: a killed ``minbump worker`` must not leave an orphaned
    work-horse publishing behind the back of the worker that re-runs the job.
    """

    def __init__(self, *args: Any, backend: RedisBackend, stop: threading.Event, **kwargs: Any) -> None:
        self.minbump_backend = backend
        self.minbump_stop = stop
        self._current: Job | None = None
        self._current_guard = threading.Lock()
        super().__init__(*args, **kwargs)
        if threading.current_thread() is not threading.main_thread():
            # SIGALRM-based job timeouts only work in the main thread.
            self.death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        """The one private hook left. RQ's ``work`` installs SIGTERM/SIGINT handlers
        unconditionally (Python allows that only in the main thread; ``minbump serve`` runs
        workers in threads), and its handler raises StopRequested from wherever the main thread
        is, e.g. inside a Redis read, where it can be lost (seen after a Redis restart: the
        worker never stopped). Ours only sets the stop event: the job in hand finishes, and an
        idle ``work`` returns within its ``max_idle_time``; a second signal exits at once."""
        if threading.current_thread() is not threading.main_thread():
            return
        stop = self.minbump_stop

        def on_signal(signum: int, frame: Any) -> None:
            if stop.is_set():
                raise SystemExit(1)
            slog("worker.stopping", signal=signal.Signals(signum).name)
            stop.set()
            with self._current_guard:
                idle = self._current is None
            if idle:  # no job in hand (maybe RQ is waiting out a Redis outage): leave its loop now
                raise _IdleStop()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

    def subscribe(self) -> None:
        """No command channel: RQ's listener thread reads with a 60 s timeout, and with redis-py 8
        stopping it waits out that read, so every worker stop (and every idle restart of
        :meth:`RedisBackend.run_worker`'s loop) could take a minute. Workers stop on SIGTERM/SIGINT
        or their stop event instead of ``rq``'s shutdown command."""

    # A short heartbeat TTL is the lease: RQ's default adds 60 s to it.
    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self.minbump_backend.settings.lease_seconds

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job here while the renewer thread keeps its lease (and its PR locks) alive."""
        self._ensure_renewer()
        with self._current_guard:
            self._current = job
        try:
            super().execute_job(job, queue)
        finally:
            with self._current_guard:
                self._current = None
            # A handler that took a PR lock without releasing it must not keep it renewed forever.
            self.minbump_backend.release_held_locks()

    def _ensure_renewer(self) -> None:
        """One renewer thread per worker (not per job: thread start-up showed in the per-job cost)."""
        if getattr(self, "_renewer", None) is not None:
            return
        self._renew_stop = threading.Event()
        interval = max(0.2, self.minbump_backend.settings.lease_seconds / 3)

        def renew() -> None:
            while not self._renew_stop.wait(interval):
                with self._current_guard:
                    current = self._current
                execution = self.execution if current is not None else None
                if current is None or execution is None:
                    continue
                try:
                    self.maintain_heartbeats(current, execution)
                    self.minbump_backend.refresh_held_locks()
                except redis.RedisError as exc:
                    slog("job.lease_renewal_failed", level=logging.WARNING, job=current.id,
                         error=error_text(exc))

        self._renewer: threading.Thread | None = threading.Thread(target=renew, name=f"lease-{self.name}", daemon=True)
        self._renewer.start()

    def teardown(self) -> None:
        renewer = getattr(self, "_renewer", None)
        if renewer is not None:
            self._renew_stop.set()
            renewer.join(timeout=5)
            self._renewer = None
        super().teardown()


class RedisBackend(Backend):
    """:class:`bot.service.queue.Backend` on RQ + Redis; web processes and workers share only Redis."""

    def __init__(self, settings: RedisSettings, retry_policy: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.retry_policy = retry_policy or RetryPolicy()
        self.conn = redis.Redis.from_url(
            settings.url,
            socket_connect_timeout=settings.connect_timeout,
            socket_timeout=4.0,  # with the connect timeout, a 503 comes well within GitHub's 10 s
            health_check_interval=15,
        )
        self.queue = Queue(settings.queue_name, connection=self.conn, serializer=JSONSerializer)
        self._acquire = self.conn.register_script(_ACQUIRE_LUA)
        self._refresh = self.conn.register_script(_REFRESH_LUA)
        self._release = self.conn.register_script(_RELEASE_LUA)
        self._held: dict[int, dict[str, str]] = {}  # worker thread -> {lock key: owner}
        self._held_guard = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisBackend:
        return cls(RedisSettings.from_env(env), RetryPolicy.from_env(env))

    # --- keys ---------------------------------------------------------------
    def _key(self, kind: str, *parts: object) -> str:
        return ":".join([self.settings.prefix, kind, *(str(p) for p in parts)])

    def _pr_key(self, kind: str, repo: str, pr: int) -> str:
        return self._key(kind, f"{repo}#{int(pr)}")

    @staticmethod
    def job_id_for(delivery_id: str) -> str:
        """RQ job id of a delivery: ``d-<delivery id>`` so logs and ``rq info`` match GitHub's delivery log.

        An id that is not a plain token (GitHub's are GUIDs) is hashed instead, so
        two distinct deliveries can never share (and overwrite) one job.
        """
        if re.fullmatch(r"[A-Za-z0-9_.-]{1,120}", delivery_id):
            return "d-" + delivery_id
        return "h-" + hashlib.sha256(delivery_id.encode("utf-8", "surrogateescape")).hexdigest()[:40]

    def _retry(self) -> Retry | None:
        """RQ Retry from our policy: attempts - 1 retries, intervals base * factor**n."""
        retries = self.retry_policy.max_attempts - 1
        if retries < 1:
            return None
        # rq annotates the intervals as ints; seconds as floats work (it waits timedelta(seconds=x))
        intervals: list = [self.retry_policy.delay(n) for n in range(1, retries + 1)]
        return Retry(max=retries, interval=intervals)

    # --- intake -------------------------------------------------------------
    def submit(self, spec: JobSpec) -> bool:
        """Dedupe + enqueue + newest head in one MULTI/EXEC (WATCH makes the check-then-set atomic)."""
        seen_key = self._key("delivery", spec.delivery_id)
        job_id = self.job_id_for(spec.delivery_id)
        with self.conn.pipeline() as pipe:
            try:
                pipe.watch(seen_key)
                if pipe.exists(seen_key):
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.set(seen_key, job_id, nx=True, ex=self.settings.dedupe_ttl)
                self.queue.enqueue_call(
                    JOB_FUNC,
                    kwargs={"spec": spec.to_dict()},
                    job_id=job_id,
                    timeout=self.settings.job_timeout + self.settings.job_grace,
                    result_ttl=self.settings.result_ttl,
                    failure_ttl=self.settings.failure_ttl,
                    description=f"{spec.repo}#{spec.pr}@{spec.head_sha[:12]} {spec.event}.{spec.action}",
                    retry=self._retry(),
                    meta={"attempts": 0, "delivery": spec.delivery_id},
                    pipeline=pipe,
                )
                pipe.set(self._pr_key("head", spec.repo, spec.pr), spec.head_sha, ex=self.settings.state_ttl)
                pipe.execute()
            except redis.WatchError:
                # Another web process stored this delivery between our WATCH and EXEC.
                return False
            except redis.ResponseError:
                # EXEC ran but a command in it failed (Redis transactions do not roll back),
                # e.g. a queue key of the wrong type: un-mark the delivery so that the
                # redelivery GitHub sends after our 503 is not taken for a duplicate.
                self._release(keys=[seen_key], args=[job_id])
                raise
        return True

    def ready(self) -> None:
        """Reachable and writable (a read-only replica fails here, not at the next webhook)."""
        self.conn.set(self._key("ready"), "1", ex=60)

    # --- worker -------------------------------------------------------------
    def _worker_connection(self) -> redis.Redis:
        """A separate pool: RQ raises the socket timeout of its connection for blocking pops."""
        return redis.Redis.from_url(
            self.settings.url, socket_connect_timeout=self.settings.connect_timeout, health_check_interval=15
        )

    def run_worker(
        self,
        handler: Handler,
        *,
        stop: threading.Event,
        worker_id: str | None = None,
        burst: bool = False,
        poll: float = 0.5,
    ) -> int:
        """Run RQ's work loop; after a Redis outage start it again (backoff up to 30 s) instead of exiting."""
        runtime = _Runtime(handler=handler, backend=self)
        _RUNTIMES[threading.get_ident()] = runtime
        base_name = worker_id or f"{socket.gethostname()}.{os.getpid()}"
        outages = 0  # consecutive failed starts: the wait before the next is backoff(outages, 0.5, 2, 30)
        previous = self._install_idle_signal_handlers(stop)
        finished = threading.Event()
        sweeper = threading.Thread(
            target=self._sweep_loop, args=(stop, finished), name="minbump-sweeper", daemon=True
        )
        sweeper.start()
        idle = max(1, int(math.ceil(poll)))
        worker: MinbumpWorker | None = None
        try:
            while not stop.is_set():
                try:
                    if worker is None:
                        worker = self._new_worker(f"{base_name}.{uuid.uuid4().hex[:6]}", poll, stop)
                    # RQ's own loop; it returns when idle for ``idle`` s (so a stop request, from
                    # a signal or the embedding app, is seen within that and after the job in
                    # hand), with ``burst`` when the queue is empty, or after a failure it could
                    # not handle (Redis went away mid-job).
                    try:
                        worker.work(burst=burst, max_idle_time=None if burst else idle,
                                    logging_level="WARNING")  # our job.* lines are the log
                    except _IdleStop:
                        break
                    if stop.is_set():
                        break
                    worker.connection.ping()  # an outage shows here, and takes the backoff below
                    outages = 0
                except redis.RedisError as exc:
                    worker, outages = None, outages + 1
                    wait = backoff(outages, 0.5, 2.0, 30.0)
                    unavailable = isinstance(exc, (redis.ConnectionError, redis.TimeoutError))
                    slog("worker.redis_unavailable" if unavailable else "worker.redis_error",
                         level=logging.WARNING, error=error_text(exc), retry_in=wait)
                    stop.wait(wait)
                    continue
                if burst:
                    if not self._pending_soon():
                        break
                    stop.wait(0.2)
                    self.sweep()  # moves retries that fell due to the queue
        finally:
            for signum, handler_before in previous.items():
                signal.signal(signum, handler_before)
            finished.set()
            sweeper.join(timeout=5)
            _RUNTIMES.pop(threading.get_ident(), None)
        return runtime.processed

    def _new_worker(self, name: str, poll: float, stop: threading.Event) -> MinbumpWorker:
        conn = self._worker_connection()
        worker = MinbumpWorker(
            [Queue(self.settings.queue_name, connection=conn, serializer=JSONSerializer)],
            name=name,
            connection=conn,
            serializer=JSONSerializer,
            exception_handlers=[_classify_failure],
            worker_ttl=max(20, int(poll) + 15),
            maintenance_interval=max(1, int(self.settings.sweep_seconds)),
            job_monitoring_interval=max(1, self.settings.lease_seconds // 3),
            default_result_ttl=self.settings.result_ttl,
            backend=self,
            stop=stop,
        )
        worker.max_connection_wait_time = 10.0
        return worker

    def _pending_soon(self, within: float = 5.0) -> bool:
        """Burst mode drains retries due within a few seconds too (as the SQLite backend does)."""
        scheduled = self.queue.scheduled_job_registry
        return bool(scheduled.get_jobs_to_schedule(int(time.time() + within))) or self.queue.count > 0

    @staticmethod
    def _install_idle_signal_handlers(stop: threading.Event) -> dict[int, Any]:
        """SIGTERM/SIGINT while no RQ worker runs (e.g. waiting for Redis): just stop.

        Returns the handlers that were installed before, to restore on exit.
        """
        if threading.current_thread() is not threading.main_thread():
            return {}
        before: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            before[signum] = signal.signal(signum, lambda *_: stop.set())
        return before

    def _sweep_loop(self, stop: threading.Event, finished: threading.Event) -> None:
        """Every ``sweep_seconds``, even while this worker is busy with a long job."""
        while not finished.wait(self.settings.sweep_seconds) and not stop.is_set():
            try:
                self.sweep()
            except redis.RedisError as exc:
                log.debug("sweep skipped: %s", exc)  # the work loop reports the outage
            except Exception as exc:  # noqa: BLE001 - a sweeper bug must not kill the worker
                slog("worker.sweep_failed", level=logging.ERROR, error=error_text(exc))

    def sweep(self) -> bool:
        """One maintenance pass, by at most one worker at a time (a lock that expires by itself).

        Expired leases go through RQ's abandoned-job handling (retry or failed
        registry); retries whose backoff elapsed are moved to the queue. (RQ's
        own maintenance, which also cleans its intermediate queue, runs in each
        worker's loop beside this.) Returns False when another worker holds the
        sweep lock.
        """
        lock_key = self._key("sweep-lock")
        token = uuid.uuid4().hex
        ttl_ms = max(100, int(self.settings.sweep_seconds * 900))
        if not self.conn.set(lock_key, token, nx=True, px=ttl_ms):
            return False
        try:
            clean_registries(self.queue)
            self._enqueue_due_retries(self.queue)
            clean_worker_registry(self.queue)
        finally:
            self._release(keys=[lock_key], args=[token])
        return True

    def _enqueue_due_retries(self, queue: Queue) -> int:
        """What RQ's scheduler process does, without a separate process that could outlive its worker."""
        registry = queue.scheduled_job_registry
        due = registry.get_jobs_to_schedule(int(time.time()))
        if not due:
            return 0
        jobs = Job.fetch_many(due, connection=self.conn, serializer=JSONSerializer)
        with self.conn.pipeline() as pipe:
            for job_id, job in zip(due, jobs):
                if job is not None:
                    queue.enqueue_job(job, pipeline=pipe)
                registry.remove(job_id, pipeline=pipe)
            pipe.execute()
        return len(due)

    # --- failed jobs (operator) ---------------------------------------------
    def _failed_registry(self) -> FailedJobRegistry:
        return FailedJobRegistry(self.settings.queue_name, connection=self.conn, serializer=JSONSerializer)

    def failed_jobs(self) -> list[FailedJob]:
        registry = self._failed_registry()
        ids = registry.get_job_ids()
        out: list[FailedJob] = []
        for job_id, job in zip(ids, Job.fetch_many(ids, connection=self.conn, serializer=JSONSerializer)):
            if job is None:
                continue
            try:
                spec = JobSpec.from_dict(job.kwargs.get("spec", {}))
            except Exception:  # noqa: BLE001 - a foreign job in our queue: show it, don't crash the listing
                continue
            result = job.latest_result()
            text = (result.exc_string if result is not None else None) or job.exc_info or ""
            lines = [line for line in text.strip().splitlines() if line.strip()]
            ended = job.ended_at.timestamp() if job.ended_at else (result.created_at.timestamp() if result else 0.0)
            out.append(
                FailedJob(
                    job_id=job_id,
                    spec=spec,
                    error=lines[-1] if lines else "unknown error",
                    attempts=int(job.meta.get("attempts", 0)),
                    failed_at=ended,
                )
            )
        out.sort(key=lambda f: f.failed_at)
        return out

    def retry_failed(self, job_id: str) -> bool:
        registry = self._failed_registry()
        try:
            job = Job.fetch(job_id, connection=self.conn, serializer=JSONSerializer)
        except NoSuchJobError:
            return False
        retry = self._retry()
        job.retries_left = retry.max if retry else None
        job.retry_intervals = retry.intervals if retry else None
        job.meta["attempts"] = 0
        job.save()
        try:
            registry.requeue(job)
        except InvalidJobOperation:
            return False
        return True

    def purge_failed(self, job_id: str | None = None) -> int:
        registry = self._failed_registry()
        ids = registry.get_job_ids() if job_id is None else [job_id]
        removed = 0
        for jid in ids:
            if not registry.remove(jid):
                continue
            removed += 1
            try:
                Job.fetch(jid, connection=self.conn, serializer=JSONSerializer).delete()
            except NoSuchJobError:
                pass
        return removed

    # --- per-PR state -------------------------------------------------------
    def acquire_pr_lock(self, repo: str, pr: int, owner: str, ttl: float) -> bool:
        """Inside a worker the lock lives one lease and is renewed with the job's lease,
        so a SIGKILLed holder blocks the PR for seconds, not for ``ttl``."""
        key = self._pr_key("lock", repo, pr)
        in_worker = threading.get_ident() in _RUNTIMES
        effective = min(ttl, self.settings.lease_seconds) if in_worker else ttl
        got = bool(self._acquire(keys=[key], args=[owner, max(1, int(effective * 1000))]))
        if got and in_worker:
            with self._held_guard:
                self._held.setdefault(threading.get_ident(), {})[key] = owner
        return got

    def release_pr_lock(self, repo: str, pr: int, owner: str) -> None:
        key = self._pr_key("lock", repo, pr)
        with self._held_guard:
            mine = self._held.get(threading.get_ident(), {})
            if mine.get(key) == owner:
                del mine[key]
        self._release(keys=[key], args=[owner])

    def refresh_held_locks(self) -> None:
        """Called with each lease renewal (renews the locks of every job in this process, all alive);
        a lock found lost is logged (the job's head check before each write guards the rest)."""
        with self._held_guard:
            held = [item for locks in self._held.values() for item in locks.items()]
        ms = self.settings.lease_seconds * 1000
        for key, owner in held:
            if not self._refresh(keys=[key], args=[owner, ms]):
                slog("pr_lock.lost", level=logging.WARNING, key=key, owner=owner)

    def release_held_locks(self) -> None:
        """Release every PR lock the calling worker thread still holds (end of its job)."""
        with self._held_guard:
            held = list(self._held.pop(threading.get_ident(), {}).items())
        for key, owner in held:
            try:
                self._release(keys=[key], args=[owner])
            except redis.RedisError as exc:
                slog("pr_lock.release_failed", level=logging.WARNING, key=key, error=error_text(exc))

    def newest_head(self, repo: str, pr: int) -> str | None:
        value = self.conn.get(self._pr_key("head", repo, pr))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def get_comment_id(self, repo: str, pr: int) -> int | None:
        value = self.conn.get(self._pr_key("comment", repo, pr))
        return int(value) if value is not None else None

    def set_comment_id(self, repo: str, pr: int, comment_id: int | None) -> None:
        key = self._pr_key("comment", repo, pr)
        if comment_id is None:
            self.conn.delete(key)
        else:
            self.conn.set(key, int(comment_id), ex=self.settings.state_ttl)

    # --- operator helpers ---------------------------------------------------
    def queue_depth(self) -> int:
        """Jobs waiting (not counting running or scheduled retries)."""
        return self.queue.count

    def close(self) -> None:
        self.conn.close()
