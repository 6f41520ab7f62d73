"""Jobs that must end, and say so on the PR: the time limit, unreadable input, bugs.

Real parts: a git repository with dated commits served by the fake GitHub, the
real queue (SQLite, or Redis on a real redis-server), the real job runner.
Each test feeds one input and asserts one comment + one status, and that the
job was not retried.
"""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from bot.service.queue import JobSpec
from tests.support.fakegithub import NOVA_DRIVER, Harness, fast_env, nova_repo
from tests.support.nova import CONFIG, driver
from tests.support.redis_server import redis_env, redis_server  # noqa: F401

REPO, PR = "octo/nova", 17
BOT = "minbump-bot"


def host(gh, tmp_path, head_files=None, config=CONFIG):
    """The nova bump (or ``head_files`` instead of its head), the base's config being ``config``."""
    work, base, head = nova_repo(tmp_path / "nova", head_files=head_files)
    if config != CONFIG:  # rewrite the base's config (the bot reads it from the base branch)
        work.commit({".github/minbump.yml": config}, date="2016-09-02T10:00:00+00:00")
        work.checkout("bump")
        work.git("rebase", "-q", "main")
        head = work.git("rev-parse", "HEAD").strip()
        work.checkout("main")
    gh.add_repo(REPO, work)
    gh.add_pull(REPO, PR, head, "main", "bump")
    return head


def harness(gh, tmp_path, backend_env=None, **extra):
    env = fast_env(gh, tmp_path / "data", GITHUB_TOKEN=gh.add_token(BOT), **extra)
    backend = None
    if backend_env is not None:
        from bot.service.queue.redis import RedisBackend

        env.update(backend_env)
        backend = RedisBackend.from_env(env)
    return Harness(gh, tmp_path / "data", env, backend=backend)


def ours(gh):
    return [c for c in gh.pr_comments(REPO, PR) if c["user"]["login"] == BOT]


def one_report(gh, head, state):
    """Exactly one comment and one status on the head, with the expected state."""
    comments = ours(gh)
    assert len(comments) == 1, comments
    assert [s["state"] for s in gh.commit_statuses(REPO, head)] == [state]
    return comments[0]["body"], gh.commit_statuses(REPO, head)[0]["description"]


@pytest.mark.parametrize("mode", ["sqlite", "redis"])
def test_a_job_past_its_time_limit_publishes_an_error_report(tmp_path, fake_github, monkeypatch, mode, request):
    """An analysis that never ends (what a hostile input can cause) is stopped at MINBUMP_JOB_TIMEOUT
    and the PR gets an error report; the job is not retried."""
    import bot.git.gather as gather

    head = host(fake_github, tmp_path)
    interrupted = threading.Event()

    def endless(*args, **kwargs):
        try:
            while True:  # Python bytecode, as a backtracking or quadratic parse would be
                pass
        except BaseException:
            interrupted.set()
            raise

    monkeypatch.setattr(gather, "run_refs", endless)
    backend_env = None
    if mode == "redis":
        server = request.getfixturevalue("redis_server")
        backend_env = redis_env(server.url)
    svc = harness(fake_github, tmp_path, backend_env, MINBUMP_JOB_TIMEOUT="1")
    svc.deliver("pull_request.opened", REPO, PR, head)
    t0 = time.monotonic()
    svc.work(timeout=60)
    assert time.monotonic() - t0 < 30  # the limit is 1 s; the rest is slack for a busy machine
    body, description = one_report(fake_github, head, "success")  # strictness.error: neutral
    assert "did not finish within 1 s" in body and "cannot check" in description
    assert svc.runner.analyses == 0 and svc.backend.failed_jobs() == []
    deadline = time.monotonic() + 30
    while not interrupted.is_set():  # the runaway analysis thread is stopped, not left spinning
        assert time.monotonic() < deadline, "the analysis thread was not interrupted"
        time.sleep(0.05)


DEEP = "MIN_QEMU_VERSION = " + "+".join(["1"] * 5000) + "\n"


@pytest.mark.parametrize("config, state", [(CONFIG, "success"),
                                           (CONFIG + "strictness:\n  error: fail\n", "failure")])
def test_a_deeply_nested_expression_is_reported_at_strictness_error(tmp_path, fake_github, config, state):
    """A watched file the analysis cannot read (5,000-term expression: RecursionError in the
    parser, or the project's one-line error) is an input error: reported, verdict from
    strictness.error (default neutral), not retried."""
    head = host(fake_github, tmp_path, head_files={NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)", extra=DEEP)},
                config=config)
    svc = harness(fake_github, tmp_path)
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    body, description = one_report(fake_github, head, state)
    assert "could not read the input" in body and "could not read the input" in description
    assert svc.runner.analyses == 1 and svc.backend.failed_jobs() == []


def test_a_bug_in_a_job_is_reported_and_not_retried(tmp_path, fake_github, monkeypatch, caplog):
    """Not a transient GitHub/network fault, so permanent: one error report, one failed-job record
    after one attempt (a NUL byte reaching a subprocess argument, as a hostile ref once did)."""
    from bot.service.job import JobRunner

    head = host(fake_github, tmp_path)
    calls = []

    def merge_base(path, base_sha, head_sha):
        calls.append(head_sha)
        return subprocess.run(["git", "-C", str(path), "merge-base", base_sha, head_sha + "\x00"])

    monkeypatch.setattr(JobRunner, "_merge_base", staticmethod(merge_base))
    svc = harness(fake_github, tmp_path, MINBUMP_MAX_ATTEMPTS="5")
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    assert calls == [head]
    (failed,) = svc.backend.failed_jobs()
    assert failed.attempts == 1 and "embedded null byte" in failed.error
    body, description = one_report(fake_github, head, "success")
    assert "the check failed: ValueError: embedded null byte" in body
    [line] = [r.getMessage() for r in caplog.records if '"job.failed"' in r.getMessage()]
    assert "Traceback" in line and "merge_base" in line  # where the bug is, for the operator


def test_a_nul_byte_in_a_queued_ref_fails_once(tmp_path, fake_github):
    """A job spec carrying a NUL byte (stored before intake validated it) is refused at once."""
    head = host(fake_github, tmp_path)
    svc = harness(fake_github, tmp_path, MINBUMP_MAX_ATTEMPTS="5")
    svc.backend.submit(JobSpec(delivery_id="nul-1", event="pull_request", action="opened", repo=REPO, pr=PR,
                               head_sha=head, base_ref="main\x00evil", clone_url=fake_github.clone_url(REPO)))
    svc.work()
    (failed,) = svc.backend.failed_jobs()
    assert failed.attempts == 1


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_bad_job_timeout_is_a_one_line_error(value):
    from bot.errors import MinbumpError
    from bot.service.job import JobSettings

    with pytest.raises(MinbumpError, match="MINBUMP_JOB_TIMEOUT"):
        JobSettings.from_env({"GITHUB_TOKEN": "t", "MINBUMP_JOB_TIMEOUT": value})
