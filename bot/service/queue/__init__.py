"""The job queue and service state interface shared by the web app and the worker.

Why an interface: the single-box default keeps everything in SQLite under
``MINBUMP_DATA_DIR`` (no server to run), while production can switch to RQ +
Redis by setting ``REDIS_URL``. Two roles, one store: :class:`JobQueue`
(intake with dedupe, the worker loop, failed-job admin: what the web app and
``minbump jobs`` use) and :class:`PRState` (newest head, lock, comment id: all
the job itself sees). :class:`Backend` is a store that plays both, so either
implementation drops in without touching the web app or the job.

Contract every backend keeps:

* ``submit`` marks the delivery id seen and queues the job in one atomic step,
  and only returns after the job is durable: the web app answers 202 only
  after that, so an accepted delivery survives a crash or restart, and a
  redelivery (same ``X-GitHub-Delivery``) is recognised and not re-run.
* A job held by a worker that died is run again (leases in SQLite, RQ's
  abandoned-job handling in Redis).
* Only transient failures (:class:`RetryLater`, the store's own connection
  errors) are retried, with :func:`backoff`; anything else is permanent, and it
  and retries exhausted land in a failed-job record an operator can
  list/retry/purge. :func:`run_job` is that classification, shared by both.
* Per pull request: a lock so two workers never publish for the same PR at
  once, a "newest head" record so a job for a superseded head is dropped, and
  the PR -> comment id mapping so a retried publish edits instead of posting.

:class:`JobSpec` carries only identifiers; the job re-reads everything else
(PR state, config, git objects) itself, so a queued job never acts on stale or
attacker-shaped payload content beyond these ids.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
import os
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator, Mapping

from bot.errors import MinbumpError
from bot.service.logs import error_text, log, scrub
from bot.service.settings import env_float, env_int


@dataclass(frozen=True)
class JobSpec:
    """One unit of work: analyse (repo, PR, head sha) and publish.

    Only ids and the clone URL; serialisable as JSON for any backend.
    """

    delivery_id: str
    event: str
    action: str
    repo: str  # "owner/name"
    pr: int
    head_sha: str
    base_ref: str
    clone_url: str
    installation_id: int | None = None
    attempt: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def with_attempt(self, attempt: int) -> JobSpec:
        return dataclasses.replace(self, attempt=attempt)

    def log_fields(self) -> dict[str, Any]:
        """The keys every structured log line of this job carries."""
        return {"delivery": self.delivery_id, "repo": self.repo, "pr": self.pr, "sha": self.head_sha}


@dataclass(frozen=True)
class Lease:
    """A job claimed by one worker until ``expires_at`` (epoch seconds)."""

    job_id: str
    spec: JobSpec
    worker_id: str
    expires_at: float


@dataclass(frozen=True)
class FailedJob:
    """A job that will not be retried automatically: shown by ``minbump jobs list``."""

    job_id: str
    spec: JobSpec
    error: str
    attempts: int
    failed_at: float


def backoff(attempt: int, base: float, factor: float = 3.0, cap: float = 600.0) -> float:
    """The one backoff rule: ``base * factor**(attempt-1)``, capped (job retries, publish retries)."""
    return min(cap, base * factor ** max(0, attempt - 1))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon the queue runs a job again; tests use tiny values."""

    max_attempts: int = 5
    base: float = 5.0
    factor: float = 3.0
    cap: float = 600.0

    def delay(self, attempt: int) -> float:
        return backoff(attempt, self.base, self.factor, self.cap)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        return cls(
            max_attempts=env_int(env, "MINBUMP_MAX_ATTEMPTS", cls.max_attempts),
            base=env_float(env, "MINBUMP_RETRY_BASE", cls.base),
        )


class RetryLater(Exception):
    """Raised by a job handler for a transient failure (GitHub 5xx, network): the only retried kind.

    ``delay`` overrides the backoff (e.g. a rate limit's reset time).
    ``count`` False means "not the job's fault" (PR lock busy): no attempt used.
    """

    def __init__(self, message: str, delay: float | None = None, count: bool = True) -> None:
        super().__init__(message)
        self.delay = delay
        self.count = count


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help: the job goes straight to failed."""


Handler = Callable[[JobSpec, "PRState"], None]


@dataclass(frozen=True)
class Outcome:
    """What became of one run of a job: ``done``, ``retry`` (after ``delay``) or ``failed``."""

    state: str
    error: str | None = None
    delay: float | None = None
    count: bool = True


def run_job(handler: Handler, spec: JobSpec, state: PRState, transient: tuple[type[BaseException], ...] = (),
            **fields: Any) -> Outcome:
    """Run ``handler`` once and classify how it ended (the one except/log ladder of both backends).

    Only :class:`RetryLater` (the job's word that GitHub or the network failed)
    and the store's own connection errors (``transient``) are retried. Every
    other exception is permanent: retrying a bug or a hostile input only
    repeats it, and the job has already published an error report where it could.
    """
    fields = {**fields, "attempt": spec.attempt, **spec.log_fields()}
    log("job.start", **fields)
    try:
        handler(spec, state)
    except RetryLater as exc:
        log("job.retry", level=logging.WARNING, error=error_text(exc), counted=exc.count, **fields)
        return Outcome("retry", error_text(exc), exc.delay, exc.count)
    except transient as exc:
        log("job.retry", level=logging.WARNING, error=error_text(exc), counted=True, **fields)
        return Outcome("retry", error_text(exc))
    except (PermanentFailure, MinbumpError) as exc:
        cause = exc.__cause__  # a handler that wrapped a bug: keep where it happened for the operator
        extra = {} if cause is None or isinstance(cause, MinbumpError) else {
            "traceback": scrub("".join(traceback.format_exception(cause)))}
        log("job.failed", level=logging.ERROR, error=error_text(exc), **extra, **fields)
        return Outcome("failed", error_text(exc))
    except Exception as exc:  # a bug: permanent, with its (scrubbed) traceback for the operator
        log("job.failed", level=logging.ERROR, error=error_text(exc),
            traceback=scrub(traceback.format_exc()), **fields)
        return Outcome("failed", error_text(exc))
    log("job.done", **fields)
    return Outcome("done")


class PRState(abc.ABC):
    """Per pull request state shared by every worker: newest head, a lock, the bot's comment id."""

    @abc.abstractmethod
    def acquire_pr_lock(self, repo: str, pr: int, owner: str, ttl: float) -> bool:
        """Take the PR's lock for ``ttl`` seconds (expires if the holder dies).

        Taking it again with the same ``owner`` succeeds and extends it: the job
        holds it across analysis and takes it once more around publishing.
        """

    @abc.abstractmethod
    def release_pr_lock(self, repo: str, pr: int, owner: str) -> None:
        """Release the lock if ``owner`` still holds it."""

    @contextlib.contextmanager
    def pr_lock(self, repo: str, pr: int, owner: str, ttl: float = 900.0) -> Iterator[bool]:
        """``with state.pr_lock(...) as got:``; ``got`` False means another worker holds it."""
        got = self.acquire_pr_lock(repo, pr, owner, ttl)
        try:
            yield got
        finally:
            if got:
                self.release_pr_lock(repo, pr, owner)

    @abc.abstractmethod
    def newest_head(self, repo: str, pr: int) -> str | None:
        """The head sha of the most recently submitted job for the PR."""

    @abc.abstractmethod
    def get_comment_id(self, repo: str, pr: int) -> int | None:
        """The id of the bot's comment on the PR, if one was recorded."""

    @abc.abstractmethod
    def set_comment_id(self, repo: str, pr: int, comment_id: int | None) -> None:
        """Remember (or forget, with None) the bot's comment id for the PR."""


class JobQueue(abc.ABC):
    """Intake, the worker loop and the failed-job admin (``minbump jobs``)."""

    retry_policy: RetryPolicy = RetryPolicy()

    @abc.abstractmethod
    def submit(self, spec: JobSpec) -> bool:
        """Atomically mark ``spec.delivery_id`` seen and enqueue ``spec`` durably.

        Returns False (and enqueues nothing) when the delivery was seen before,
        so GitHub's redeliveries cause no second analysis or write. Also records
        ``spec.head_sha`` as the PR's newest head (newest head wins).
        """

    @abc.abstractmethod
    def ready(self) -> None:
        """Raise (any exception, one-line message) unless the store is reachable and writable."""

    @abc.abstractmethod
    def run_worker(
        self,
        handler: Handler,
        *,
        stop: threading.Event,
        worker_id: str | None = None,
        burst: bool = False,
        poll: float = 0.5,
    ) -> int:
        """Run jobs with ``handler`` (through :func:`run_job`) until ``stop`` is set (or, with
        ``burst``, the queue is empty and no retry is due within seconds). Returns jobs run."""

    @abc.abstractmethod
    def failed_jobs(self) -> list[FailedJob]:
        """Jobs that gave up, oldest first."""

    @abc.abstractmethod
    def retry_failed(self, job_id: str) -> bool:
        """Queue a failed job again (attempts reset); False when no such failed job."""

    @abc.abstractmethod
    def purge_failed(self, job_id: str | None = None) -> int:
        """Forget one failed job, or all with ``None``; returns how many were removed."""

    def close(self) -> None:  # noqa: B027  (an optional hook, not an abstract one)
        """Release connections; the default does nothing."""


class Backend(JobQueue, PRState):
    """One store that serves both: the queue and the PR state live side by side (one SQLite
    file, or one Redis), so a submit records the job and the PR's newest head atomically."""


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``MINBUMP_DATA_DIR`` or ``./.minbump-data``: state database and git cache live here."""
    env = os.environ if env is None else env
    return Path(env.get("MINBUMP_DATA_DIR") or ".minbump-data")


def get_backend(env: Mapping[str, str] | None = None) -> Backend:
    """SQLite under the data dir by default; RQ + Redis when ``REDIS_URL`` is set."""
    env = os.environ if env is None else env
    if env.get("REDIS_URL"):
        from bot.service.queue.redis import RedisBackend  # written for issue 5

        return RedisBackend.from_env(env)
    from bot.service.queue.sqlite import SQLiteBackend

    return SQLiteBackend.from_env(env)


__all__ = [
    "Backend",
    "FailedJob",
    "Handler",
    "JobQueue",
    "JobSpec",
    "Outcome",
    "PRState",
    "Lease",
    "PermanentFailure",
    "RetryLater",
    "RetryPolicy",
    "backoff",
    "data_dir",
    "get_backend",
    "run_job",
]
