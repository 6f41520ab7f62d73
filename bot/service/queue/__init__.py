"""The job queue and service state interface shared by the web app and the worker.

Why an interface: the single-box default keeps everything in SQLite under
``MINBUMP_DATA_DIR`` (no server to run), while production can switch to RQ +
Redis by setting ``REDIS_URL``. The webhook handler and the job code only talk
to :class:`Backend`, so either implementation drops in without touching them.

Contract every backend keeps:

* ``submit`` marks the delivery id seen and queues the job in one atomic step,
  and only returns after the job is durable: the web app answers 202 only
  after that, so an accepted delivery survives a crash or restart, and a
  redelivery (same ``X-GitHub-Delivery``) is recognised and not re-run.
* A job held by a worker that died is run again (leases in SQLite, RQ's
  abandoned-job handling in Redis).
* Transient failures are retried with backoff; permanent ones (and retries
  exhausted) land in a failed-job record an operator can list/retry/purge.
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
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

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
    def from_dict(cls, data: Mapping[str, Any]) -> "JobSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def with_attempt(self, attempt: int) -> "JobSpec":
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


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff is ``base * factor**(attempt-1)`` capped at ``cap``; tests use tiny values."""

    max_attempts: int = 5
    base: float = 5.0
    factor: float = 3.0
    cap: float = 600.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.base * self.factor ** max(0, attempt - 1))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RetryPolicy":
        return cls(
            max_attempts=env_int(env, "MINBUMP_MAX_ATTEMPTS", cls.max_attempts),
            base=env_float(env, "MINBUMP_RETRY_BASE", cls.base),
        )


class RetryLater(Exception):
    """Raised by a job handler for a transient failure (GitHub 5xx, network).

    ``delay`` overrides the backoff (e.g. a rate limit's reset time).
    ``count`` False means "not the job's fault" (PR lock busy): no attempt used.
    """

    def __init__(self, message: str, delay: float | None = None, count: bool = True) -> None:
        super().__init__(message)
        self.delay = delay
        self.count = count


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help: the job goes straight to failed."""


Handler = Callable[[JobSpec, "Backend"], None]


class Backend(abc.ABC):
    """What the web app, the worker and ``minbump jobs`` need from a queue/state store."""

    retry_policy: RetryPolicy = RetryPolicy()

    # --- intake -------------------------------------------------------------
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

    # --- worker -------------------------------------------------------------
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
        """Run jobs with ``handler`` until ``stop`` is set (or, with ``burst``, the queue is empty).

        The handler raises :class:`RetryLater` for transient failures,
        :class:`PermanentFailure` or ``bot.errors.MinbumpError`` for permanent ones;
        any other exception is treated as transient until attempts run out.
        Returns the number of jobs processed.
        """

    # --- failed jobs (operator) ---------------------------------------------
    @abc.abstractmethod
    def failed_jobs(self) -> list[FailedJob]:
        """Jobs that gave up, oldest first."""

    @abc.abstractmethod
    def retry_failed(self, job_id: str) -> bool:
        """Queue a failed job again (attempts reset); False when no such failed job."""

    @abc.abstractmethod
    def purge_failed(self, job_id: str | None = None) -> int:
        """Forget one failed job, or all with ``None``; returns how many were removed."""

    # --- per-PR state -------------------------------------------------------
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
        """``with backend.pr_lock(...) as got:``; ``got`` False means another worker holds it."""
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

    def close(self) -> None:
        """Release connections; the default does nothing."""


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
    "JobSpec",
    "Lease",
    "PermanentFailure",
    "RetryLater",
    "RetryPolicy",
    "data_dir",
    "get_backend",
]
