"""Publishing to GitHub through PyGithub: one comment per PR and a status on the head.

Why it is shaped like this:

* **Identity.** The bot's comment is the one carrying :data:`MARKER` *and*
  written by the bot itself (anyone can paste a marker): the authenticated user
  (``GET /user``) in token mode, ``<app-slug>[bot]`` (``GET /app``) in App mode.
* **Idempotent writes.** PyGithub's transport retry is restricted to GET/HEAD/
  PATCH (idempotent here); a POST that failed after being applied must not be
  sent twice, so the job retries the *whole* publish step, which looks the
  comment up again before creating one, and after a create whose outcome is
  unknown keeps looking for a while (:meth:`Publisher.await_write`): GitHub
  may apply a request after the client has given up on it.
* **What is written** (comment text, titles, annotations) is built by the pure
  :mod:`bot.core.publish`; this module only sends it.
* **Pacing.** GitHub asks integrators to leave about 1 s between *many*
  writes by one client. PyGithub's own pacing (``seconds_between_writes=1``,
  ``seconds_between_requests=0.25``) also makes a job's very first requests
  wait: our job does two GETs, then a comment write and a status write, and the
  comment showed up ~0.5 s after the analysis. So PyGithub's pacing is off and
  :class:`WritePacer` (one per installation, shared by that installation's
  jobs) lets a burst of ``write_burst`` writes (2: one job's comment and
  status) go at once and spaces every further write ``write_interval`` (1 s)
  apart; a steady stream of jobs is paced exactly as before. GETs are not
  paced by default (``MINBUMP_GITHUB_REQUEST_INTERVAL`` > 0 turns PyGithub's
  spacing of all requests back on).
* **Limits.** Comment bodies stay under 65,536 characters and check-run
  summaries under 65,535 (the report is truncated with a note); annotations go
  in batches of 50 per request; status descriptions in 140.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping

import requests
from github import Auth, Github, GithubException, GithubIntegration, GithubRetry
from github.GithubException import RateLimitExceededException

from bot.core.publish import MARKER, STATUS_LIMIT, SUMMARY_LIMIT, truncate
from bot.errors import MinbumpError
from bot.service.logs import log, register_secret
from bot.service.settings import env_float, env_int

STATUS_CONTEXT = "minbump"
CHECK_NAME = "minbump"
ANNOTATION_BATCH = 50


class ConfigurationError(MinbumpError):
    """The service's environment is incomplete or contradictory."""


class TransientGitHubError(Exception):
    """A GitHub failure worth retrying (5xx, rate limit, network); ``delay`` from Retry-After."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True)
class GitHubSettings:
    """How to reach and authenticate to GitHub; from the environment like GitHub App frameworks."""

    api_url: str = "https://api.github.com"
    token: str | None = None
    app_id: str | None = None
    private_key: str | None = None
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    secondary_rate_wait: float = 60.0
    request_interval: float = 0.0  # spacing of every request (PyGithub's); off: see "Pacing" above
    write_interval: float = 1.0  # GitHub asks for ~1 s between many writes
    write_burst: int = 2  # writes allowed at once after a quiet spell (one job's comment + status)
    unsure_wait: float = 15.0  # after a create whose outcome is unknown: how long to look for it

    @property
    def mode(self) -> str:
        return "app" if self.app_id else "token"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubSettings:
        api = (env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", api):
            raise ConfigurationError(f"GITHUB_API_URL is not an http(s) URL: {api!r}")
        token = env.get("GITHUB_TOKEN") or None
        app_id = env.get("APP_ID") or None
        key = env.get("PRIVATE_KEY") or None
        key_path = env.get("PRIVATE_KEY_PATH") or None
        if app_id:
            if not app_id.isdigit():
                raise ConfigurationError(f"APP_ID must be the numeric App id, got {app_id!r}")
            if not key and key_path:
                try:
                    with open(key_path, encoding="utf-8") as fh:
                        key = fh.read()
                except OSError as exc:
                    raise ConfigurationError(f"PRIVATE_KEY_PATH: cannot read {key_path}: {exc.strerror}") from None
            if not key:
                raise ConfigurationError("APP_ID is set but neither PRIVATE_KEY nor PRIVATE_KEY_PATH is")
            key = key.replace("\\n", "\n").strip() + "\n"  # one-line env values carry literal \n
            if "PRIVATE KEY-----" not in key:
                raise ConfigurationError("PRIVATE_KEY is not a PEM private key")
        elif not token:
            raise ConfigurationError("set GITHUB_TOKEN (token mode) or APP_ID with PRIVATE_KEY/PRIVATE_KEY_PATH "
                                     "(App mode)")
        register_secret(token)
        register_secret(key)
        return cls(
            api_url=api, token=token, app_id=app_id, private_key=key,
            timeout=env_float(env, "MINBUMP_GITHUB_TIMEOUT", cls.timeout),
            retries=env_int(env, "MINBUMP_GITHUB_RETRIES", cls.retries),
            backoff=env_float(env, "MINBUMP_GITHUB_BACKOFF", cls.backoff),
            secondary_rate_wait=env_float(env, "MINBUMP_SECONDARY_RATE_WAIT", cls.secondary_rate_wait),
            request_interval=env_float(env, "MINBUMP_GITHUB_REQUEST_INTERVAL", cls.request_interval),
            write_interval=env_float(env, "MINBUMP_GITHUB_WRITE_INTERVAL", cls.write_interval),
            write_burst=env_int(env, "MINBUMP_GITHUB_WRITE_BURST", cls.write_burst),
            unsure_wait=env_float(env, "MINBUMP_GITHUB_UNSURE_WAIT", cls.unsure_wait),
        )

    def retry(self) -> GithubRetry:
        """Transport retries we control: idempotent methods only, short backoff, Retry-After honoured."""
        return GithubRetry(
            total=self.retries,
            backoff_factor=self.backoff,
            backoff_max=30,
            allowed_methods=frozenset({"GET", "HEAD", "PATCH"}),
            secondary_rate_wait=self.secondary_rate_wait,
            max_rate_limit_wait=30,  # longer waits go back to the queue instead of holding a worker
        )


class WritePacer:
    """Spacing of one client's writes: a burst of ``burst`` at once, then one per ``interval`` s.

    A token bucket in its GCRA form (one "theoretical arrival time"): each
    write reserves the next slot under the lock and sleeps outside it, so
    concurrent jobs of one installation queue up in order instead of all
    waking together. ``interval`` 0 turns pacing off.
    """

    def __init__(self, interval: float = 1.0, burst: int = 2,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = max(0.0, interval)
        self.burst = max(1, burst)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tat = 0.0  # when the bucket is full again

    def reserve(self) -> float:
        """Take the next write slot; returns how long to wait before sending (0: now)."""
        if self.interval <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            allowed = tat - (self.burst - 1) * self.interval
            self._tat = tat + self.interval
            return max(0.0, allowed - now)

    def wait(self) -> float:
        """Block until a write may be sent; returns the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
        return delay


@dataclass
class Session:
    """An authenticated client for one installation (or the token), plus who "we" are."""

    gh: Github
    mode: str
    login: str
    git_token: Callable[[], str]
    app_id: str | None = None
    pacer: WritePacer = field(default_factory=lambda: WritePacer(0.0))
    unsure_wait: float = 15.0  # see GitHubSettings.unsure_wait and Publisher.await_write

    def write(self, fn: Callable[[], Any]) -> Any:
        """One GitHub write, paced (see :class:`WritePacer`) and error-mapped by :func:`call`."""
        self.pacer.wait()
        return call(fn)


class Clients:
    """Process-wide cache of GitHub clients: one per installation, bot login looked up once."""

    def __init__(self, settings: GitHubSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._sessions: dict[int | None, Session] = {}
        self._integration: GithubIntegration | None = None
        self._app_login: str | None = None

    def _kwargs(self) -> dict[str, Any]:
        s = self.settings
        return {"base_url": s.api_url, "timeout": int(max(1, s.timeout)), "retry": s.retry(), "per_page": 100,
                # Writes are paced by WritePacer, not by PyGithub (which would delay the first ones too).
                "lazy": True, "seconds_between_requests": s.request_interval or None,
                "seconds_between_writes": None}

    def _pacer(self) -> WritePacer:
        return WritePacer(self.settings.write_interval, self.settings.write_burst)

    def session(self, installation_id: int | None) -> Session:
        with self._lock:
            if self.settings.mode == "token":
                installation_id = None
            cached = self._sessions.get(installation_id)
            if cached is not None:
                return cached
            sess = self._token_session() if self.settings.mode == "token" else self._app_session(installation_id)
            self._sessions[installation_id] = sess
            return sess

    def _token_session(self) -> Session:
        token = self.settings.token or ""
        gh = Github(auth=Auth.Token(token), **self._kwargs())
        login = call(lambda: gh.get_user().login)
        return Session(gh, "token", login, lambda: token, pacer=self._pacer(),
                       unsure_wait=self.settings.unsure_wait)

    def _app_session(self, installation_id: int | None) -> Session:
        if not installation_id:
            raise MinbumpError("App mode needs the payload's installation id; the delivery has none")
        app_auth = Auth.AppAuth(int(self.settings.app_id or 0), self.settings.private_key or "")
        if self._integration is None:
            self._integration = GithubIntegration(auth=app_auth, **self._kwargs())
        if self._app_login is None:
            slug = call(lambda: self._integration.get_app().slug)  # type: ignore[union-attr]
            self._app_login = f"{slug}[bot]"
        inst_auth = app_auth.get_installation_auth(int(installation_id))
        gh = call(lambda: Github(auth=inst_auth, **self._kwargs()))

        def token() -> str:
            value = call(lambda: inst_auth.token)  # refreshed by PyGithub when it expires
            register_secret(value)
            return value

        register_secret(token())
        return Session(gh, "app", self._app_login, token, app_id=self.settings.app_id, pacer=self._pacer(),
                       unsure_wait=self.settings.unsure_wait)


def call(fn: Callable[[], Any]) -> Any:
    """Run one GitHub call; map errors to TransientGitHubError (retry) or MinbumpError (don't)."""
    try:
        return fn()
    except RateLimitExceededException as exc:
        delay = getattr(exc, "wait", None) or _retry_after(exc.headers)
        raise TransientGitHubError(f"GitHub rate limit ({exc.status})", delay) from None
    except GithubException as exc:
        headers = exc.headers or {}
        if exc.status is not None and (exc.status >= 500 or exc.status == 429):
            raise TransientGitHubError(f"GitHub {exc.status}", _retry_after(headers)) from None
        if exc.status == 403 and _retry_after(headers) is not None:
            raise TransientGitHubError("GitHub secondary rate limit", _retry_after(headers)) from None
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        raise MinbumpError(f"GitHub {exc.status}: {message or 'request refused'}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientGitHubError(f"GitHub unreachable: {type(exc).__name__}") from None
    except Exception as exc:
        # urllib3 gives up with MaxRetryError wrapped by requests as RetryError
        if type(exc).__name__ in ("RetryError", "MaxRetryError"):
            raise TransientGitHubError("GitHub kept failing (transport retries exhausted)") from None
        raise


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    lower = {str(k).lower(): v for k, v in headers.items()}
    value = lower.get("retry-after")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    if str(lower.get("x-ratelimit-remaining", "")) == "0" and lower.get("x-ratelimit-reset"):
        try:
            return max(0.0, float(lower["x-ratelimit-reset"]) - time.time() + 1)
        except ValueError:
            return None
    return None


# --- publishing -------------------------------------------------------------------------

@dataclass
class PublishState:
    """What survives between retries of one publish step (so retries never duplicate)."""

    comment_id: int | None = None
    comment_url: str | None = None
    check_run_id: int | None = None
    check_run: Any = None
    check_run_unsure: bool = False  # a create failed in a way that may have been applied
    comment_unsure: bool = False  # likewise for the comment
    annotations_sent: int = 0
    status_done: bool = False


def _completed(obj: Any) -> Any:
    """Force a lazy PyGithub object to load now, inside :func:`call`'s error mapping."""
    _ = obj.body
    return obj


class Publisher:
    """The GitHub writes of one job, for one (repo, PR)."""

    def __init__(self, session: Session, repo: str, pr: int) -> None:
        self.s = session
        self.repo_name = repo
        self.pr = pr
        self._repo: Any = None

    @property
    def repo(self) -> Any:
        if self._repo is None:
            self._repo = call(lambda: self.s.gh.get_repo(self.repo_name))
        return self._repo

    def head_sha(self) -> str:
        """The PR's head now (re-read before publishing; a moved head makes our result stale)."""
        return call(lambda: self.repo.get_pull(self.pr).head.sha)

    def open_pull_with_head(self, sha: str) -> tuple[int, str] | None:
        """(number, base branch) of the open PR whose head is ``sha``, or None.

        For a re-run on a PR from a fork, whose check run or suite GitHub sends
        without its pull request. ``commits/{sha}/pulls`` does not know a fork's
        commits, so the open PRs are listed and matched by head sha.
        """
        def find() -> tuple[int, str] | None:
            for pull in self.repo.get_pulls(state="open"):
                if pull.head.sha == sha:
                    return pull.number, pull.base.ref
            return None

        return call(find)

    def find_comment(self, hint: int | None) -> Any | None:
        """Our comment: marker and our login; try the remembered id first, then all pages."""
        if hint:
            try:
                c = call(lambda: _completed(self.repo.get_issue(self.pr).get_comment(hint)))
                if self._ours(c) and c.issue_url.rstrip("/").endswith(f"/issues/{self.pr}"):
                    return c
            except MinbumpError:
                pass  # deleted, or not ours any more: search all pages
        comments = call(lambda: list(self.repo.get_issue(self.pr).get_comments()))
        ours = [c for c in comments if self._ours(c)]
        return ours[0] if ours else None

    def _ours(self, c: Any) -> bool:
        return MARKER in (c.body or "") and c.user is not None and c.user.login == self.s.login

    def await_write(self, what: str, find: Callable[[], Any]) -> Any:
        """After a create whose outcome is unknown (timeout, reset connection, 5xx): look for it
        again, polling for up to ``unsure_wait`` seconds, before anyone creates a second one.

        GitHub may apply a request after the client gave up on it, and its lists may show the
        new item only a moment later; the first lookup (already done by the caller) proves nothing.
        """
        deadline = time.monotonic() + max(0.0, self.s.unsure_wait)
        poll = min(1.0, max(0.05, self.s.unsure_wait / 10))
        tries = 0
        while time.monotonic() < deadline:
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
            tries += 1
            found = find()
            if found is not None:
                log("publish.unsure_write_found", what=what, lookups=tries, repo=self.repo_name, pr=self.pr)
                return found
        log("publish.unsure_write_absent", what=what, lookups=tries, repo=self.repo_name, pr=self.pr)
        return None

    def upsert_comment(self, body_for: Callable[[str | None], str], allow_create: bool,
                       state: PublishState, hint: int | None) -> str:
        """Edit our comment in place (not when unchanged) or create it; returns the action."""
        existing = self.find_comment(state.comment_id or hint)
        if existing is None and state.comment_unsure:
            existing = self.await_write("comment", lambda: self.find_comment(None))
        if existing is None:
            if not allow_create:
                return "none"
            body = body_for(None)
            state.comment_unsure = True  # until GitHub answers: a failure may have been applied
            created = self.s.write(lambda: self.repo.get_issue(self.pr).create_comment(body))
            state.comment_unsure = False
            state.comment_id, state.comment_url = created.id, created.html_url
            return "created"
        state.comment_id, state.comment_url = existing.id, existing.html_url
        body = body_for(existing.body)
        if body == existing.body:
            return "unchanged"
        self.s.write(lambda: existing.edit(body))
        return "edited"

    def publish_status(self, head_sha: str, verdict: str, title: str, summary_md: str,
                       annotations: list[dict[str, Any]], state: PublishState,
                       target_url: str | None = None) -> str:
        """A commit status (token mode) or a check run with annotations (App mode)."""
        if self.s.mode == "token":
            if not state.status_done:
                st = "failure" if verdict == "fail" else "success"
                commit = self.repo.get_commit(head_sha)
                kwargs: dict[str, Any] = {"state": st, "description": title[:STATUS_LIMIT], "context": STATUS_CONTEXT}
                if target_url:
                    kwargs["target_url"] = target_url
                self.s.write(lambda: commit.create_status(**kwargs))
                state.status_done = True
            return "status"
        conclusion = {"fail": "failure", "neutral": "neutral"}.get(verdict, "success")
        note = "_Truncated to fit GitHub's check-run limit; see the PR comment or run `minbump dry-run`._"
        output = {"title": title[:255], "summary": truncate(summary_md, SUMMARY_LIMIT - 100, note)}
        if state.check_run_id is None and state.check_run_unsure:
            # The last create may have been applied before failing: adopt it rather than add a second.
            found = self._latest_own_check_run(head_sha) or self.await_write(
                "check_run", lambda: self._latest_own_check_run(head_sha))
            if found is not None:  # it carried the first batch of annotations
                state.check_run_id, state.check_run = found.id, found
                state.annotations_sent = min(ANNOTATION_BATCH, len(annotations))
        if state.check_run_id is None:
            first = annotations[:ANNOTATION_BATCH]
            state.check_run_unsure = True
            run = self.s.write(lambda: self.repo.create_check_run(
                name=CHECK_NAME, head_sha=head_sha, status="completed", conclusion=conclusion,
                output={**output, "annotations": first}))
            state.check_run_id, state.check_run = run.id, run
            state.check_run_unsure = False
            state.annotations_sent = len(first)
        while state.annotations_sent < len(annotations):
            batch = annotations[state.annotations_sent: state.annotations_sent + ANNOTATION_BATCH]
            self.s.write(functools.partial(state.check_run.edit, output={**output, "annotations": batch}))
            state.annotations_sent += len(batch)
        return "check_run"

    def _latest_own_check_run(self, head_sha: str) -> Any | None:
        runs = call(lambda: [r for r in self.repo.get_commit(head_sha).get_check_runs(check_name=CHECK_NAME)
                             if r.app is not None and str(r.app.id) == str(self.s.app_id)])
        return max(runs, key=lambda r: r.id) if runs else None
