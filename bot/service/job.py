"""One webhook job: fetch, analyse base..head with the real analyzer, publish.

Why each step is here:

* the job only talks to :class:`bot.service.queue.PRState`, so SQLite and Redis are
  interchangeable;
* a job for a head that is no longer the PR's newest is dropped early (newest
  head wins), and again just before publishing by re-reading the PR's head
  through the API (a push during analysis makes the result stale);
* the config is read from the base side (``run_refs`` default, on the merge
  base of the PR), never from the head: a PR cannot loosen its own check;
* publishing is retried as a whole step, looking up the bot's comment before
  creating one, so a POST that failed after being applied is never repeated;
* the comment is written before the status: it is what the author waits for,
  and the status links to it;
* a warm fetch skips the tags (:mod:`bot.git.cache`); when the report relied on
  a previous-release tag the cache lacks, the tags are fetched and the
  analysis run again, so skipping them never changes a verdict.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from bot.core import publish as text
from bot.errors import MinbumpError
from bot.git.cache import Fetched, GitCache, GitFetchError, missing_tags
from bot.service.github import Clients, GitHubSettings, PublishState, Publisher, TransientGitHubError
from bot.service.logs import error_text, log
from bot.service.queue import Handler, JobSpec, PermanentFailure, PRState, RetryLater, backoff, data_dir
from bot.service.settings import env_float, env_int


IN_PROCESS_WAIT = 15.0  # seconds a publish retry may sleep in the worker before requeueing


def _comment_text(md: str, changed: bool, with_previous: bool, verdict: str, head_sha: str, previous: Any) -> str:
    """The comment's body, given the comment it replaces (its verdict is said when it changed)."""
    return text.comment_body(md, verdict, head_sha, changed, text.previous_verdict(previous) if with_previous else None)


@dataclass(frozen=True)
class JobSettings:
    """Worker-side settings (environment); tests shrink the delays."""

    data_dir: Path
    github: GitHubSettings
    git_timeout: float = 600.0  # a first fetch of a big repository (nova) takes minutes
    publish_attempts: int = 4
    publish_backoff: float = 2.0
    ref_lag_delay: float = 3.0
    lock_ttl: float = 60.0  # like the job lease: a dead worker's lock must not outlive its lease
    tag_fetch_interval: float = 600.0  # tags are refetched at least this often (new release tags)
    job_timeout: float = 120.0  # wall-clock limit on a job's analysis; then an error report is published

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobSettings:
        limit = env_float(env, "MINBUMP_JOB_TIMEOUT", cls.job_timeout)
        if limit <= 0:
            raise MinbumpError(f"MINBUMP_JOB_TIMEOUT must be a positive number of seconds, not {limit:g}")
        return cls(
            data_dir=data_dir(env),
            github=GitHubSettings.from_env(env),
            git_timeout=env_float(env, "MINBUMP_GIT_TIMEOUT", cls.git_timeout),
            publish_attempts=env_int(env, "MINBUMP_PUBLISH_ATTEMPTS", cls.publish_attempts),
            publish_backoff=env_float(env, "MINBUMP_PUBLISH_BACKOFF", cls.publish_backoff),
            lock_ttl=env_float(env, "MINBUMP_LEASE_SECONDS", cls.lock_ttl),
            ref_lag_delay=env_float(env, "MINBUMP_REF_LAG_DELAY", cls.ref_lag_delay),
            tag_fetch_interval=env_float(env, "MINBUMP_TAG_FETCH_INTERVAL", cls.tag_fetch_interval),
            job_timeout=limit,
        )


class JobRunner:
    """Holds what jobs share in one process: GitHub clients and the git cache."""

    def __init__(self, settings: JobSettings) -> None:
        self.settings = settings
        self.clients = Clients(settings.github)
        self.cache = GitCache(settings.data_dir / "git", timeout=settings.git_timeout,
                              tag_interval=settings.tag_fetch_interval)
        self.analyses = 0  # counted for tests and metrics: "no second analysis"
        self._count_lock = threading.Lock()

    def handler(self) -> Handler:
        return self.run

    def run(self, spec: JobSpec, backend: PRState) -> None:
        """The job. Raises RetryLater for transient failures (GitHub, network), nothing else is retried.

        Anything else that goes wrong is permanent: the PR still gets an error report
        where one can be written, and the exception becomes a PermanentFailure the
        queue records in its failed list.
        """
        fetched: list[Fetched] = []
        try:
            self._run(spec, backend, fetched)
        except RetryLater:
            raise
        except TransientGitHubError as exc:
            raise RetryLater(str(exc), delay=exc.delay) from None
        except Exception as exc:  # noqa: BLE001 - permanent by rule; reported, then failed
            self._publish_failure(spec, backend, exc, fetched[0] if fetched else None)
            if isinstance(exc, MinbumpError):
                raise
            raise PermanentFailure(error_text(exc)) from exc

    def _run(self, spec: JobSpec, backend: PRState, fetched: list[Fetched]) -> None:
        if spec.pr == 0:  # a re-run on a PR from a fork: GitHub did not say which PR
            found = self._find_pull(spec)
            if found is None:
                log("job.no_pull_request", **spec.log_fields())
                return
            spec = dataclasses.replace(spec, pr=found[0], base_ref=found[1])
        fields = spec.log_fields()
        newest = backend.newest_head(spec.repo, spec.pr)
        if newest and newest != spec.head_sha and self._still_head(spec) is False:
            # Another delivery recorded a different head and GitHub agrees ours is gone.
            # (The record alone is not trusted: deliveries can arrive out of order.)
            log("job.superseded", newest=newest, **fields)
            return
        owner = f"{spec.delivery_id}:{uuid.uuid4().hex[:8]}"
        with backend.pr_lock(spec.repo, spec.pr, owner, ttl=self.settings.lock_ttl) as got:
            if not got:
                raise RetryLater("another job holds this pull request", delay=2.0, count=False)
            self._run_locked(spec, backend, owner, fields, fetched)

    def _publish_failure(self, spec: JobSpec, backend: PRState, exc: Exception, fetched: Fetched | None) -> None:
        """Best effort: tell the PR the check failed (a bug, a refused GitHub call); never raises."""
        if spec.pr == 0:
            return
        fields = spec.log_fields()
        owner = f"{spec.delivery_id}:{uuid.uuid4().hex[:8]}"
        try:
            with backend.pr_lock(spec.repo, spec.pr, owner, ttl=self.settings.lock_ttl) as got:
                if got:
                    problem = f"the check failed: {error_text(exc)}"
                    self._publish(spec, backend, owner, fields, None, problem, False,
                                  error_rule=self._error_rule(fetched))
        except Exception as pub_exc:  # noqa: BLE001 - the failure itself is what the queue records
            log("publish.error_report_failed", level=logging.WARNING, error=error_text(pub_exc), **fields)

    def _find_pull(self, spec: JobSpec) -> tuple[int, str] | None:
        """The open PR whose head is ``spec.head_sha``: (number, base branch), or None."""
        try:
            session = self.clients.session(spec.installation_id)
            return Publisher(session, spec.repo, 0).open_pull_with_head(spec.head_sha)
        except TransientGitHubError as exc:
            raise RetryLater(str(exc), delay=exc.delay) from None

    def _still_head(self, spec: JobSpec) -> bool | None:
        """Is ``spec.head_sha`` the PR's head now? None when GitHub could not say."""
        try:
            session = self.clients.session(spec.installation_id)
            return Publisher(session, spec.repo, spec.pr).head_sha() == spec.head_sha
        except (TransientGitHubError, MinbumpError):
            return None

    def _run_locked(self, spec: JobSpec, backend: PRState, owner: str, fields: dict[str, Any],
                    fetched_out: list[Fetched]) -> None:
        try:
            session = self.clients.session(spec.installation_id)
            token = session.git_token()
        except TransientGitHubError as exc:
            raise RetryLater(str(exc), delay=exc.delay) from None
        t0 = time.monotonic()
        try:
            fetched = self.cache.fetch(spec.repo, spec.clone_url, spec.base_ref, spec.pr, token)
        except GitFetchError as exc:
            log("git.fetch_failed", level=logging.WARNING, error=error_text(exc), **fields)
            raise RetryLater(str(exc)) from None
        fetched_out.append(fetched)
        log("git.fetched", seconds=round(time.monotonic() - t0, 3), base_sha=fetched.base_sha,
            pull_sha=fetched.pull_sha, tags=fetched.tags_fetched, partial=fetched.partial, **fields)
        if fetched.pull_sha != spec.head_sha:
            if self._still_head(spec) is not False:
                # GitHub updates refs/pull/N/head a moment after the push's webhook: fetch again soon.
                log("git.pull_ref_lags", level=logging.WARNING, pull_sha=fetched.pull_sha, **fields)
                raise RetryLater("refs/pull/N/head is not at the PR head yet", delay=self.settings.ref_lag_delay)
            # The PR moved before we started: the newer head has (or will get) its own delivery.
            log("job.stale_head", level=logging.WARNING, pull_sha=fetched.pull_sha, **fields)
            return
        base = self._merge_base(fetched.path, fetched.base_sha, spec.head_sha)
        t1 = time.monotonic()
        try:
            report, problem, not_configured = self._within_limit(
                lambda: self._analyse_fetching_tags(spec, fetched, base, token, fields))
        except GitFetchError as exc:  # fetching the blobs a partial cache lacked
            log("git.fetch_failed", level=logging.WARNING, error=error_text(exc), **fields)
            raise RetryLater(str(exc)) from None
        log("analysis.done", seconds=round(time.monotonic() - t1, 3), base=base,
            verdict=report.verdict if report else None, problem=problem,
            watched_changed=report.watched_changed if report else None, **fields)
        rule = None if report is not None or not_configured else self._error_rule(fetched)
        self._publish(spec, backend, owner, fields, report, problem, not_configured, error_rule=rule)

    def _analyse_fetching_tags(self, spec: JobSpec, fetched: Fetched, base: str, token: str,
                               fields: dict[str, Any]) -> tuple[Any, str | None, bool]:
        report, problem, not_configured = self._analyse(spec, fetched, base, token)
        absent = missing_tags(fetched.path, self._previous_tags(report)) if not fetched.tags_fetched else []
        if absent:
            # The report relied on a release tag this cache has not fetched yet: fetch the tags, analyse again.
            try:
                seconds = self.cache.fetch_tags(spec.repo, spec.clone_url, token)
            except GitFetchError as exc:
                log("git.fetch_failed", level=logging.WARNING, error=error_text(exc), **fields)
                raise RetryLater(str(exc)) from None
            log("git.tags_fetched", seconds=round(seconds, 3), missing=absent[:5], **fields)
            report, problem, not_configured = self._analyse(spec, fetched, base, token)
        return report, problem, not_configured

    def _within_limit(self, analyse: Any) -> tuple[Any, str | None, bool]:
        """Run ``analyse`` in a thread for at most ``job_timeout`` seconds.

        Why: the analysis reads what a PR's author and the repository control, and a
        hostile input must not hold a worker (or ``minbump serve``) for ever. Past the
        limit the thread is sent :class:`AnalysisTimeout` (delivered at its next Python
        bytecode; code inside one C call finishes that call first) and the job goes on
        to publish an error report.
        """
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = analyse()
            except BaseException as exc:  # noqa: BLE001 - handed to the job's thread below
                box["error"] = exc

        worker = threading.Thread(target=target, name="minbump-analysis", daemon=True)
        worker.start()
        worker.join(self.settings.job_timeout)
        if worker.is_alive():
            _interrupt(worker)
            return None, (f"the analysis did not finish within {self.settings.job_timeout:g} s "
                          "(MINBUMP_JOB_TIMEOUT)"), False
        if "error" in box:
            error = box["error"]
            if isinstance(error, AnalysisTimeout):  # the limit hit just as it was ending
                return None, f"the analysis did not finish within {self.settings.job_timeout:g} s", False
            raise error
        return box["value"]

    def _error_rule(self, fetched: Fetched | None) -> str:
        """The repository's ``strictness.error`` (from the base branch's config), or its default."""
        from bot.core.config import DEFAULT_STRICTNESS

        default = DEFAULT_STRICTNESS["error"]
        if fetched is None:
            return default
        try:
            from bot.data.config import from_text
            from bot.git.read import GitRepo
            from bot.core.config import CONFIG_PATH

            with GitRepo(fetched.path) as g:
                data = g.read(fetched.base_sha, CONFIG_PATH)
            return from_text(data, CONFIG_PATH).strictness.get("error", default) if data else default
        except Exception:  # noqa: BLE001 - an unreadable config is what the report may be about
            return default

    def _analyse(self, spec: JobSpec, fetched: Fetched, base: str, token: str | None) -> tuple[Any, str | None, bool]:
        """(report or None, problem, not configured) of the real analyzer on the cache.

        An input the analysis cannot read (MinbumpError, or a hostile file's
        RecursionError/MemoryError) is a problem to report, not a failure to retry.
        The cache's reader fetches the blobs a partial cache lacks (GitFetchError: retry).
        """
        from bot.git.gather import NotConfigured, run_refs

        report = None
        problem: str | None = None
        not_configured = False
        try:
            with self.cache.reader(spec.repo, spec.clone_url, token) as g:
                report = run_refs(g, base, spec.head_sha, today=date.today(), config_ref=fetched.base_sha)
        except NotConfigured as exc:
            not_configured, problem = True, str(exc)
        except MinbumpError as exc:
            problem = f"could not read the input: {exc}"
        except RecursionError:
            problem = "could not read the input: an expression is nested too deeply to parse"
        except MemoryError:
            problem = "could not read the input: it needs more memory than the bot allows"
        with self._count_lock:
            self.analyses += 1
        return report, problem, not_configured

    @staticmethod
    def _previous_tags(report: Any) -> list[str]:
        """The previous-release tags the one-cycle rule looked up (empty when it had no reason to)."""
        if report is None:
            return []
        return [d["previous_release"] for d in getattr(report, "deprecation", None) or []
                if isinstance(d, dict) and d.get("previous_release")]

    @staticmethod
    def _merge_base(path: Path, base_sha: str, head_sha: str) -> str:
        """Diff from where the PR forked, as GitHub's "Files changed" does."""
        res = subprocess.run(["git", "-C", str(path), "merge-base", "--end-of-options", base_sha, head_sha],
                             capture_output=True, text=True)
        return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else base_sha

    def _publish(self, spec: JobSpec, backend: PRState, owner: str, fields: dict[str, Any],
                 report: Any, problem: str | None, not_configured: bool, error_rule: str | None = None) -> None:
        """Comment (created only when a watched file changed, or for an error report), then status.

        Retried here as one step (with :func:`backoff`) because ``PublishState``
        carries what the earlier tries wrote; long waits go back to the queue.
        """
        from bot.core.report import render_markdown

        session = self.clients.session(spec.installation_id)
        pub = Publisher(session, spec.repo, spec.pr)
        state = PublishState()
        attempts = max(1, self.settings.publish_attempts)
        for attempt in range(1, attempts + 1):
            try:
                current = pub.head_sha()
                if current != spec.head_sha:
                    log("publish.stale_dropped", level=logging.WARNING, current=current, **fields)
                    return
                if not backend.acquire_pr_lock(spec.repo, spec.pr, owner, self.settings.lock_ttl):
                    raise RetryLater("lost the pull request lock while analysing", delay=1.0, count=False)
                anns: list[dict[str, Any]] = []
                comment: tuple[str, bool, bool] | None  # markdown, watched files changed, say the previous verdict
                if report is not None:
                    report.link_base = f"{pub.repo.html_url}/blob/{spec.head_sha}/"  # links to the head's lines
                    # the comment has its own footer
                    md, verdict = render_markdown(report, footer=False), report.verdict
                    title = text.report_title(verdict, report.summary)
                    comment = (md, bool(report.watched_changed), True)
                    allow_create, summary = bool(report.watched_changed), md + f"\n\nHead `{spec.head_sha}`.\n"
                    anns = text.annotations_for(report)
                elif not_configured:
                    verdict, title, comment = "neutral", text.not_configured_title(problem or ""), None
                    allow_create, summary = False, title
                else:  # an error report: what could not be read, at the repository's strictness.error
                    verdict = error_rule or "neutral"
                    md = text.error_markdown(problem or "unknown error", verdict)
                    title = text.error_title(problem or "unknown error")
                    comment = (md, True, False)
                    allow_create, summary = True, md
                action = "none"
                if comment is not None:
                    body_for = functools.partial(_comment_text, *comment, verdict, spec.head_sha)
                    action = pub.upsert_comment(body_for, allow_create=allow_create, state=state,
                                                hint=backend.get_comment_id(spec.repo, spec.pr))
                    if state.comment_id and action != "none":
                        backend.set_comment_id(spec.repo, spec.pr, state.comment_id)
                kind = pub.publish_status(spec.head_sha, verdict, title, summary, anns, state,
                                          target_url=state.comment_url)
                log("publish.done", comment=action, comment_id=state.comment_id, status=kind,
                    verdict=verdict, annotations=len(anns), attempt=attempt, **fields)
                return
            except TransientGitHubError as exc:
                delay = exc.delay if exc.delay is not None else backoff(attempt, self.settings.publish_backoff, 2.0)
                log("publish.retry", level=logging.WARNING, error=str(exc), attempt=attempt,
                    delay=delay, **fields)
                if attempt == attempts or delay > IN_PROCESS_WAIT:
                    # Long waits (a primary rate limit's reset) go back to the queue, freeing the worker.
                    raise RetryLater(f"publishing failed: {exc}", delay=exc.delay) from None
                time.sleep(delay)


class AnalysisTimeout(BaseException):
    """Sent into an analysis thread past ``MINBUMP_JOB_TIMEOUT`` (a BaseException, so that no
    ``except Exception`` in the analysis swallows it)."""


def _interrupt(thread: threading.Thread) -> None:
    """Raise :class:`AnalysisTimeout` in ``thread`` (CPython's async exception, as RQ's timer does)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(AnalysisTimeout))


def build_runner(env: Mapping[str, str]) -> JobRunner:
    """A runner from the environment; raises ConfigurationError (one line) if incomplete."""
    return JobRunner(JobSettings.from_env(env))
