"""The webhook job end to end: real git over smart HTTP, the real analyzer, PyGithub against the fake.

Scenario: the Ocata-era nova bump (MIN_LIBVIRT_VERSION 1.2.1 -> 1.2.9, commits
dated 2016) drops still-supported Ubuntu 14.04 without a warning: verdict fail.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time

import pytest

from bot.service.github import MARKER
from tests.support.fakegithub import (
    NOVA_DRIVER,
    SECRET,
    FakeGitHub,
    Harness,
    fast_env,
    nova_repo,
)
from tests.support.nova import CONFIG, driver

REPO = "octo/nova"
PR = 17


@pytest.fixture
def nova(tmp_path, fake_github):
    work, base, head = nova_repo(tmp_path / "nova")
    fake_github.add_repo(REPO, work)
    work.git("branch", "-D", "bump")  # like a fork: the head exists only as refs/pull/N/head
    fake_github.sync(REPO)
    subprocess.run(["git", "-C", str(fake_github.repos[REPO].bare), "update-ref", "-d", "refs/heads/bump"],
                   check=True)
    fake_github.add_pull(REPO, PR, head, "main", "bump")
    return work, base, head


@pytest.fixture
def token_env(tmp_path, fake_github):
    return fast_env(fake_github, tmp_path / "data", GITHUB_TOKEN=fake_github.add_token("minbump-bot"))


@pytest.fixture
def svc(fake_github, nova, token_env, tmp_path):
    return Harness(fake_github, tmp_path / "data", token_env)


def _ours(gh: FakeGitHub, login: str = "minbump-bot") -> list[dict]:
    return [c for c in gh.pr_comments(REPO, PR) if c["user"]["login"] == login and MARKER in c["body"]]


def _push(gh: FakeGitHub, work, files: dict, date: str, parent: str) -> str:
    """A new PR head on top of ``parent`` (pushed only as refs/pull/N/head)."""
    work.git("checkout", "-q", "--detach", parent)
    sha = work.commit(files, date=date)
    work.checkout("main")
    gh.set_head(REPO, PR, sha)
    return sha


def test_opened_fails_with_one_comment_and_failure_status(svc, fake_github, nova, token_env):
    work, base, head = nova
    r = svc.deliver("pull_request.opened", REPO, PR, head)
    assert r.status_code == 202
    assert svc.work() == 1
    ours = _ours(fake_github)
    assert len(ours) == 1
    body = ours[0]["body"]
    assert "minbump: fail" in body and "Ubuntu 14.04" in body and head in body
    statuses = fake_github.commit_statuses(REPO, head)
    assert [s["state"] for s in statuses] == ["failure"] and statuses[0]["context"] == "minbump"
    assert len(statuses[0]["description"]) <= 140
    # git went over smart HTTP with the token as a header, never in the URL
    git_reqs = [q for q in fake_github.requests if q.kind == "git"]
    assert git_reqs and all(q.auth == "token:minbump-bot" for q in git_reqs)
    assert svc.runner.analyses == 1 and svc.backend.failed_jobs() == []


def test_redelivery_is_acknowledged_and_not_rerun(svc, fake_github, nova):
    _, _, head = nova
    assert svc.deliver("pull_request.opened", REPO, PR, head, delivery="d-1").status_code == 202
    svc.work()
    writes = len(fake_github.writes())
    again = svc.deliver("pull_request.opened", REPO, PR, head, delivery="d-1")
    assert again.status_code == 200 and again.json["duplicate"] is True
    assert svc.work() == 0
    assert len(fake_github.writes()) == writes and svc.runner.analyses == 1


def test_synchronize_edits_the_comment_then_resolves(svc, fake_github, nova):
    work, base, head = nova
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    first = _ours(fake_github)[0]
    # a new push, still failing: the same comment is edited and names the new head
    head2 = _push(fake_github, work, {NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)") + "# tweak\n"},
                  "2016-11-21T10:00:00+00:00", head)
    assert svc.deliver("pull_request.synchronize", REPO, PR, head2).status_code == 202
    svc.work()
    ours = _ours(fake_github)
    assert len(ours) == 1 and ours[0]["id"] == first["id"]
    assert head2 in ours[0]["body"] and head not in ours[0]["body"].split("checked head")[-1]
    assert fake_github.count("PATCH", rf"/repos/{REPO}/issues/comments/{first['id']}") == 1
    assert [s["state"] for s in fake_github.commit_statuses(REPO, head2)] == ["failure"]
    # a push that removes the impact: the comment says resolved, the status is success
    head3 = _push(fake_github, work, {NOVA_DRIVER: driver("(1, 2, 1)", "(1, 2, 9)")},
                  "2016-11-22T10:00:00+00:00", head2)
    svc.deliver("pull_request.synchronize", REPO, PR, head3)
    svc.work()
    ours = _ours(fake_github)
    assert len(ours) == 1 and "Resolved" in ours[0]["body"] and head3 in ours[0]["body"]
    assert [s["state"] for s in fake_github.commit_statuses(REPO, head3)] == ["success"]
    # the same head rerun (e.g. reopened) leaves an unchanged comment alone
    patches = fake_github.count("PATCH", r".*/issues/comments/\d+")
    svc.deliver("pull_request.reopened", REPO, PR, head3)
    svc.work()
    assert fake_github.count("PATCH", r".*/issues/comments/\d+") == patches


def test_unwatched_change_gets_status_but_no_comment(tmp_path, fake_github, token_env):
    work, base, head = nova_repo(tmp_path / "nova", head_files={"README.rst": "docs only\n"})
    fake_github.add_repo(REPO, work)
    fake_github.add_pull(REPO, PR, head)
    svc = Harness(fake_github, tmp_path / "data", token_env)
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    assert fake_github.pr_comments(REPO, PR) == []
    assert fake_github.count("POST", r".*/issues/\d+/comments") == 0
    assert [s["state"] for s in fake_github.commit_statuses(REPO, head)] == ["success"]


def test_repository_without_config_gets_a_neutral_status(tmp_path, fake_github, token_env):
    from tests.support.gitrepo import GitRepo

    work = GitRepo(tmp_path / "plain")
    work.commit({NOVA_DRIVER: driver("(1, 2, 1)", "(1, 2, 1)")}, date="2016-09-01T10:00:00+00:00")
    work.branch("bump")
    head = work.commit({NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
    work.checkout("main")
    fake_github.add_repo(REPO, work)
    fake_github.add_pull(REPO, PR, head)
    svc = Harness(fake_github, tmp_path / "data", token_env)
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    (st,) = fake_github.commit_statuses(REPO, head)
    assert st["state"] == "success" and "not configured" in st["description"]
    assert fake_github.pr_comments(REPO, PR) == [] and svc.backend.failed_jobs() == []


def test_pasted_marker_from_someone_else_is_not_ours(svc, fake_github, nova):
    _, _, head = nova
    other = fake_github.add_comment(REPO, PR, f"{MARKER}\nI copied this", "mallory")
    for i in range(130):  # our comment will be on page 2 of 100
        fake_github.add_comment(REPO, PR, f"comment {i}", "reviewer")
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    assert len(_ours(fake_github)) == 1
    assert fake_github.pr_comments(REPO, PR)[0]["body"] == other["body"]  # untouched
    # forget the remembered id: the next run must find our comment across pages, not post again
    svc.backend.set_comment_id(REPO, PR, None)
    svc.deliver("pull_request.reopened", REPO, PR, head)
    svc.work()
    assert len(_ours(fake_github)) == 1
    pages = [q for q in fake_github.requests if q.method == "GET" and q.path.endswith(f"/issues/{PR}/comments")]
    assert any(q.query.get("page") == ["2"] for q in pages)


def test_502s_on_comment_calls_are_retried_without_duplicates(svc, fake_github, nova):
    _, _, head = nova
    fake_github.fault("GET", rf"/repos/{REPO}/issues/{PR}/comments", status=502, times=2)
    fake_github.fault("POST", rf"/repos/{REPO}/issues/{PR}/comments", status=502, times=2)
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    assert len(_ours(fake_github)) == 1
    assert fake_github.count("POST", rf"/repos/{REPO}/issues/{PR}/comments", status=502) == 2
    assert fake_github.count("POST", rf"/repos/{REPO}/issues/{PR}/comments", status=201) == 1
    assert [s["state"] for s in fake_github.commit_statuses(REPO, head)] == ["failure"]


def test_secondary_rate_limit_on_comment_post_honours_retry_after(svc, fake_github, nova):
    _, _, head = nova
    fake_github.fault("POST", rf"/repos/{REPO}/issues/{PR}/comments", mode="ratelimit", retry_after=1)
    svc.deliver("pull_request.opened", REPO, PR, head)
    t0 = time.monotonic()
    svc.work()
    posts = [q for q in fake_github.requests if q.method == "POST" and q.path.endswith(f"/issues/{PR}/comments")]
    assert [q.status for q in posts] == [403, 201]
    assert time.monotonic() - t0 >= 1.0
    assert len(_ours(fake_github)) == 1


def test_secondary_rate_limit_on_comment_list_is_waited_out(svc, fake_github, nova):
    _, _, head = nova
    fake_github.fault("GET", rf"/repos/{REPO}/issues/{PR}/comments", mode="ratelimit", retry_after=1)
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    assert len(_ours(fake_github)) == 1
    assert fake_github.count("GET", rf"/repos/{REPO}/issues/{PR}/comments", status=403) == 1


def test_comment_post_applied_then_502_leaves_one_comment(svc, fake_github, nova):
    _, _, head = nova
    fake_github.fault("POST", rf"/repos/{REPO}/issues/{PR}/comments", mode="apply_then_fail", status=502)
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    assert fake_github.count("POST", rf"/repos/{REPO}/issues/{PR}/comments") == 1
    assert len(_ours(fake_github)) == 1
    assert svc.backend.get_comment_id(REPO, PR) == _ours(fake_github)[0]["id"]


@pytest.mark.parametrize("mode", ["apply", "apply_late"])
def test_comment_post_outlasting_the_client_timeout_leaves_one_comment(tmp_path, fake_github, nova, token_env,
                                                                       mode):
    """GitHub applies the POST but answers after the client gave up ("apply"), or applies it only
    then ("apply_late": the first lookup after the timeout finds nothing): still one comment."""
    _, _, head = nova
    env = {**token_env, "MINBUMP_GITHUB_TIMEOUT": "1", "MINBUMP_GITHUB_UNSURE_WAIT": "8"}
    svc = Harness(fake_github, tmp_path / "data", env)
    stalled = fake_github.fault("POST", rf"/repos/{REPO}/issues/{PR}/comments", mode=mode, stall=2.5)
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work(timeout=60)
    deadline = time.monotonic() + 30  # the stalled POST ends after the job: wait for it to be over
    while stalled.answered == 0:
        assert time.monotonic() < deadline, "the stalled POST never finished"
        time.sleep(0.05)
    assert len(_ours(fake_github)) == 1
    assert fake_github.count("POST", rf"/repos/{REPO}/issues/{PR}/comments") == 1
    assert svc.backend.get_comment_id(REPO, PR) == _ours(fake_github)[0]["id"]
    assert [s["state"] for s in fake_github.commit_statuses(REPO, head)] == ["failure"]


def test_github_down_ends_in_failed_jobs_and_retry_recovers(tmp_path, fake_github, nova, token_env):
    _, _, head = nova
    env = {**token_env, "MINBUMP_MAX_ATTEMPTS": "2", "MINBUMP_PUBLISH_ATTEMPTS": "2"}
    svc = Harness(fake_github, tmp_path / "data", env)
    fake_github.fault("GET", rf"/repos/{REPO}/pulls/{PR}", status=503, times=1000)
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    (failed,) = svc.backend.failed_jobs()
    assert failed.attempts == 2 and "GitHub" in failed.error
    assert fake_github.writes() == []
    fake_github.faults.clear()
    assert svc.backend.retry_failed(failed.job_id)
    svc.work()
    assert len(_ours(fake_github)) == 1 and svc.backend.failed_jobs() == []


def test_head_moved_mid_analysis_drops_the_stale_result(svc, fake_github, nova, caplog):
    work, base, head = nova
    head2 = {}

    def move_on_first_pull_read(method: str, path: str) -> None:
        if method == "GET" and path == f"/repos/{REPO}/pulls/{PR}" and not head2:
            head2["sha"] = "pending"
            work.git("checkout", "-q", "--detach", head)
            sha = work.commit({"README.rst": "pushed during analysis\n"}, date="2016-11-21T10:00:00+00:00")
            work.checkout("main")
            fake_github.set_head(REPO, PR, sha)
            head2["sha"] = sha

    fake_github.on_request = move_on_first_pull_read
    caplog.set_level(logging.INFO, logger="minbump")
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    fake_github.on_request = None
    assert fake_github.pr_comments(REPO, PR) == []
    assert fake_github.commit_statuses(REPO, head) == []
    assert any('"publish.stale_dropped"' in r.getMessage() for r in caplog.records)
    # the push's own delivery then publishes for the new head
    svc.deliver("pull_request.synchronize", REPO, PR, head2["sha"])
    svc.work()
    assert [s["state"] for s in fake_github.commit_statuses(REPO, head2["sha"])] == ["failure"]
    assert len(_ours(fake_github)) == 1


def test_pull_ref_lagging_behind_the_webhook_is_fetched_again(svc, fake_github, nova):
    """GitHub's refs/pull/N/head can trail the synchronize webhook: retry, don't drop."""
    work, base, head = nova
    work.git("checkout", "-q", "--detach", head)
    head2 = work.commit({NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)") + "# again\n"},
                        date="2016-11-21T10:00:00+00:00")
    work.checkout("main")
    work.git("push", "-q", str(fake_github.repos[REPO].bare), f"{head2}:refs/heads/tmp-objects")
    fake_github.set_head(REPO, PR, head2, update_ref=False)
    caught_up = []

    def catch_up(method: str, path: str) -> None:
        if method == "GET" and path == f"/repos/{REPO}/pulls/{PR}" and not caught_up:
            caught_up.append(True)
            fake_github.push_pull_ref(REPO, PR, head2)

    fake_github.on_request = catch_up
    svc.deliver("pull_request.synchronize", REPO, PR, head2)
    svc.work()
    fake_github.on_request = None
    assert [s["state"] for s in fake_github.commit_statuses(REPO, head2)] == ["failure"]
    assert svc.backend.failed_jobs() == []


def test_superseded_job_is_skipped(svc, fake_github, nova):
    work, base, head = nova
    svc.deliver("pull_request.opened", REPO, PR, head)
    head2 = _push(fake_github, work, {"README.rst": "x\n"}, "2016-11-21T10:00:00+00:00", head)
    svc.deliver("pull_request.synchronize", REPO, PR, head2)
    svc.work()
    assert svc.runner.analyses == 1  # only the newest head was analysed
    assert fake_github.commit_statuses(REPO, head) == []
    assert len(fake_github.commit_statuses(REPO, head2)) == 1


def test_out_of_order_deliveries_still_publish_for_the_newest_head(svc, fake_github, nova):
    """The older head's delivery arrives last: the newest head still gets its status."""
    work, base, head = nova
    head2 = _push(fake_github, work, {"README.rst": "x\n"}, "2016-11-21T10:00:00+00:00", head)
    svc.deliver("pull_request.synchronize", REPO, PR, head2)
    svc.deliver("pull_request.opened", REPO, PR, head)  # late
    svc.work()
    assert len(fake_github.commit_statuses(REPO, head2)) == 1
    assert fake_github.commit_statuses(REPO, head) == []


def test_config_is_read_from_base_when_the_pr_loosens_it(tmp_path, fake_github, token_env):
    loosened = CONFIG + "strictness:\n  unwarned_drop: pass\n"
    work, base, head = nova_repo(tmp_path / "nova", head_files={
        NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)"), ".github/minbump.yml": loosened})
    fake_github.add_repo(REPO, work)
    fake_github.add_pull(REPO, PR, head)
    svc = Harness(fake_github, tmp_path / "data", token_env)
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    assert [s["state"] for s in fake_github.commit_statuses(REPO, head)] == ["failure"]
    assert "minbump: fail" in _ours(fake_github)[0]["body"]


def test_edited_base_change_is_checked_but_title_edit_ignored(svc, fake_github, nova):
    _, _, head = nova
    r = svc.deliver("pull_request.edited_title", REPO, PR, head, event="pull_request")
    assert r.status_code == 200 and r.json["ignored"]
    assert svc.work() == 0
    r = svc.deliver("pull_request.edited", REPO, PR, head)
    assert r.status_code == 202
    assert svc.work() == 1
    assert len(fake_github.commit_statuses(REPO, head)) == 1


def test_lease_of_a_dead_worker_expires_and_the_job_reruns(tmp_path, fake_github, nova, token_env):
    _, _, head = nova
    env = {**token_env, "MINBUMP_LEASE_SECONDS": "0.3"}
    svc = Harness(fake_github, tmp_path / "data", env)
    svc.deliver("pull_request.opened", REPO, PR, head)
    dead = svc.backend.claim("dead-worker")  # claimed, then the worker "dies" without finishing
    assert dead is not None and svc.backend.claim("other") is None
    time.sleep(0.35)
    assert svc.work() == 1
    assert len(_ours(fake_github)) == 1
    assert [s["state"] for s in fake_github.commit_statuses(REPO, head)] == ["failure"]


def test_no_token_or_secret_in_logs(svc, fake_github, nova, token_env, caplog):
    _, _, head = nova
    caplog.set_level(logging.DEBUG)
    fake_github.fault("POST", rf"/repos/{REPO}/issues/{PR}/comments", status=502)
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert '"publish.done"' in text and '"delivery"' in text
    assert token_env["GITHUB_TOKEN"] not in text and SECRET not in text


# --- GitHub App mode ---------------------------------------------------------------------------

@pytest.fixture
def app_env(tmp_path, fake_github):
    fake_github.add_installation(31415926)
    key = tmp_path / "app.pem"
    key.write_text(fake_github.private_key_pem)
    return fast_env(fake_github, tmp_path / "data", APP_ID=str(fake_github.app_id), PRIVATE_KEY_PATH=str(key))


def test_app_mode_check_run_with_annotations(tmp_path, fake_github, nova, app_env):
    _, _, head = nova
    svc = Harness(fake_github, tmp_path / "data", app_env)
    assert svc.deliver("pull_request.opened", REPO, PR, head).status_code == 202
    svc.work()
    # JWT verified by the fake for /app and the token exchange; the rest used the installation token
    assert fake_github.count("GET", "/app") == 1
    tok = [q for q in fake_github.requests if q.path == "/app/installations/31415926/access_tokens"]
    assert tok and all(q.auth == f"jwt:{fake_github.app_id}" for q in tok)
    api = [q for q in fake_github.requests if q.kind == "api" and q.path.startswith("/repos/")]
    assert api and all(q.auth == "installation:minbump-test[bot]" for q in api)
    assert all(q.auth == "installation:minbump-test[bot]" for q in fake_github.requests if q.kind == "git")
    runs = fake_github.runs_for(REPO, head)
    assert len(runs) == 1 and runs[0]["name"] == "minbump" and runs[0]["conclusion"] == "failure"
    assert "Ubuntu 14.04" in runs[0]["output"]["summary"]
    anns = fake_github.annotations[runs[0]["id"]]
    assert {(a["path"], a["annotation_level"]) for a in anns} == {(NOVA_DRIVER, "failure")}
    lines = work_lines(nova[0], head, "MIN_LIBVIRT_VERSION = ")
    assert any(a["start_line"] in lines for a in anns)
    assert fake_github.commit_statuses(REPO, head) == []
    ours = _ours(fake_github, "minbump-test[bot]")
    assert len(ours) == 1
    # rerequested check run: analysed again, check run re-created, comment unchanged
    r = svc.deliver("check_run.rerequested", REPO, PR, head)
    assert r.status_code == 202
    svc.work()
    assert len(fake_github.runs_for(REPO, head)) == 2 and len(_ours(fake_github, "minbump-test[bot]")) == 1
    # "Re-run all checks" (our check suite): the same again
    r = svc.deliver("check_suite.rerequested", REPO, PR, head)
    assert r.status_code == 202
    svc.work()
    assert len(fake_github.runs_for(REPO, head)) == 3 and len(_ours(fake_github, "minbump-test[bot]")) == 1
    # a re-run on a PR from a fork comes without its PR: the job finds it by head sha
    r = svc.deliver("check_run.rerequested", REPO, PR, head,
                    mutate=lambda p: p["check_run"].update(pull_requests=[]))
    assert r.status_code == 202
    svc.work()
    assert len(fake_github.runs_for(REPO, head)) == 4 and len(_ours(fake_github, "minbump-test[bot]")) == 1
    # ... and when no open PR has that head, there is nothing to do (and nothing failed)
    gone = "0" * 40
    r = svc.deliver("check_run.rerequested", REPO, PR, gone,
                    mutate=lambda p: p["check_run"].update(pull_requests=[]))
    assert r.status_code == 202
    svc.work()
    assert fake_github.runs_for(REPO, gone) == [] and svc.backend.failed_jobs() == []
    assert len(fake_github.runs_for(REPO, head)) == 4


def work_lines(work, sha: str, needle: str) -> set[int]:
    text = work.git("show", f"{sha}:{NOVA_DRIVER}")
    return {i for i, line in enumerate(text.splitlines(), 1) if line.startswith(needle)}


def test_app_mode_without_installation_id_fails_permanently(tmp_path, fake_github, nova, app_env):
    _, _, head = nova
    svc = Harness(fake_github, tmp_path / "data", app_env)
    svc.deliver("pull_request.opened", REPO, PR, head, installation_id=None)
    svc.work()
    failed = svc.backend.failed_jobs()
    assert len(failed) == 1 and "installation id" in failed[0].error
    assert fake_github.writes() == []


# --- crash between accept and processing -------------------------------------------------------

def test_accepted_delivery_survives_a_killed_web_process(tmp_path, fake_github, nova, token_env):
    import json
    import os
    import sys

    import requests

    from tests.support.fakegithub import payload_for, webhook_headers

    _, _, head = nova
    port = _free_port()
    env = {**os.environ, **token_env}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--no-worker", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = _wait_up(port)
        body = json.dumps(payload_for("pull_request.opened", fake_github, REPO, PR, head)).encode()
        r = requests.post(url + "/webhook", data=body, headers=webhook_headers("pull_request", body, SECRET),
                          timeout=5)
        assert r.status_code == 202
    finally:
        proc.kill()  # SIGKILL: no shutdown handler runs
        proc.wait(timeout=10)
    assert fake_github.writes() == []
    # a fresh worker process on the same data dir runs the accepted job
    res = subprocess.run([sys.executable, "-m", "bot.cli", "worker", "--burst"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(_ours(fake_github)) == 1
    assert [s["state"] for s in fake_github.commit_statuses(REPO, head)] == ["failure"]
    assert token_env["GITHUB_TOKEN"] not in res.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(port: int) -> str:
    import requests

    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("service did not come up")


def test_minbump_serve_process_accepts_and_runs_then_stops_on_sigterm(tmp_path, fake_github, nova, token_env):
    import json
    import os
    import signal
    import sys

    import requests

    from tests.support.fakegithub import payload_for, webhook_headers

    _, _, head = nova
    port = _free_port()
    env = {**os.environ, **token_env}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = _wait_up(port)
        assert requests.get(url + "/readyz", timeout=5).json() == {"ok": True}
        body = json.dumps(payload_for("pull_request.opened", fake_github, REPO, PR, head)).encode()
        t0 = time.monotonic()
        r = requests.post(url + "/webhook", data=body, headers=webhook_headers("pull_request", body, SECRET),
                          timeout=5)
        assert r.status_code == 202 and time.monotonic() - t0 < 10  # GitHub's delivery timeout
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not fake_github.commit_statuses(REPO, head):
            time.sleep(0.05)
        assert [s["state"] for s in fake_github.commit_statuses(REPO, head)] == ["failure"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    steps = {rec["step"] for rec in lines}
    assert {"webhook.accepted", "git.fetched", "analysis.done", "publish.done", "job.done"} <= steps
    keyed = [rec for rec in lines if rec["step"] in ("git.fetched", "analysis.done", "publish.done")]
    assert all(rec["repo"] == REPO and rec["pr"] == PR and rec["sha"] == head and rec["delivery"] for rec in keyed)
    assert token_env["GITHUB_TOKEN"] not in err and SECRET not in err


def test_serve_with_embedded_worker_processes_jobs(tmp_path, fake_github, nova, token_env):
    """`minbump serve`'s code path: app + embedded worker thread in one process."""
    from bot.service.run import build_app

    _, _, head = nova
    app = build_app({**token_env}, worker=True)
    try:
        h = Harness.__new__(Harness)
        h.gh, h.client = fake_github, app.test_client()
        assert h.deliver("pull_request.opened", REPO, PR, head).status_code == 202
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not fake_github.commit_statuses(REPO, head):
            time.sleep(0.05)
        assert [s["state"] for s in fake_github.commit_statuses(REPO, head)] == ["failure"]
    finally:
        app.extensions["minbump.worker_stop"].set()
        for t in app.extensions["minbump.workers"]:
            t.join(timeout=10)
    assert not threading.active_count() > 50


# --- latency: tags only when needed, workers woken on submit -----------------------------------------

def test_previous_release_tag_pushed_later_is_fetched_and_used(tmp_path, fake_github, token_env, caplog):
    """A warm job skips the tags; when its report needs the previous release's tag and the cache
    lacks it (tagged upstream after the cache's last tag fetch), it fetches the tags and analyses again."""
    from tests.support.gitrepo import GitRepo

    work = GitRepo(tmp_path / "late")
    base = work.commit({NOVA_DRIVER: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                       date="2016-09-01T10:00:00+00:00")
    work.branch("bump")
    head = work.commit({NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
    work.checkout("main")
    fake_github.add_repo(REPO, work)
    fake_github.add_pull(REPO, PR, head, "main", "bump")
    svc = Harness(fake_github, tmp_path / "data", token_env)
    caplog.set_level(logging.INFO, logger="minbump")
    svc.deliver("pull_request.opened", REPO, PR, head)
    assert svc.work() == 1
    assert "is not in the repository" in _ours(fake_github)[0]["body"]  # no 14.0.0 anywhere yet
    cache = svc.runner.cache.path_for(REPO)
    # a warm job whose report needs no previous release (no minimum raised) fetches no tags
    caplog.clear()
    readme = _push(fake_github, work, {"README.rst": "docs only\n"}, "2016-11-21T10:00:00+00:00", base)
    svc.deliver("pull_request.synchronize", REPO, PR, readme)
    assert svc.work() == 1
    fetched = [r.getMessage() for r in caplog.records if '"git.fetched"' in r.getMessage()]
    assert fetched and all('"tags": false' in m for m in fetched)
    assert not any('"git.tags_fetched"' in r.getMessage() for r in caplog.records)
    # Newton is tagged upstream now; the cache fetched tags moments ago, so a warm fetch skips them...
    work.tag("14.0.0", ref=base, date="2016-10-06T10:00:00+00:00")
    fake_github.sync(REPO)
    caplog.clear()
    again = _push(fake_github, work, {"README.rst": "again\n"}, "2016-11-22T10:00:00+00:00", head)
    svc.deliver("pull_request.synchronize", REPO, PR, again)
    assert svc.work() == 1
    # ...but the report needed 14.0.0: the job fetched the tags and analysed again
    assert any('"git.tags_fetched"' in r.getMessage() for r in caplog.records)
    assert subprocess.run(["git", "-C", str(cache), "rev-parse", "--verify", "--quiet", "refs/tags/14.0.0"],
                          capture_output=True).returncode == 0
    ours = _ours(fake_github)
    assert len(ours) == 1 and again in ours[0]["body"]
    assert "is not in the repository" not in ours[0]["body"] and "14.0.0" in ours[0]["body"]
    assert [s["state"] for s in fake_github.commit_statuses(REPO, again)] == ["failure"]


def test_embedded_worker_starts_a_job_promptly_after_submit(tmp_path, fake_github, nova, token_env):
    """`minbump serve`: a submit wakes the idle worker thread; the poll (60 s here) is only a fallback."""
    from bot.service.run import build_app

    work, _, head = nova
    app = build_app({**token_env}, worker=True, threads=2, poll=60.0)
    try:
        h = Harness.__new__(Harness)
        h.gh, h.client = fake_github, app.test_client()
        time.sleep(0.3)  # both threads made their first (empty) claim and sleep in the 60 s poll
        for i in range(2):
            sha = head if i == 0 else _push(fake_github, work, {"README.rst": "x\n"}, "2016-11-21T10:00:00+00:00",
                                            head)
            t0 = time.monotonic()
            assert h.deliver("pull_request.synchronize", REPO, PR, sha).status_code == 202
            while time.monotonic() - t0 < 20 and not fake_github.commit_statuses(REPO, sha):
                time.sleep(0.01)
            assert fake_github.commit_statuses(REPO, sha), "the job did not run before the poll"
            assert time.monotonic() - t0 < 20
    finally:
        app.extensions["minbump.worker_stop"].set()
        for t in app.extensions["minbump.workers"]:
            t.join(timeout=10)
    assert not any(t.is_alive() for t in app.extensions["minbump.workers"])  # set() ends the 60 s wait


def test_wakeable_stop_loses_no_wake_and_wakes_every_idle_thread():
    from bot.service.run import WakeableStop

    stop = WakeableStop()
    stop.mark()
    stop.wake()  # between an empty claim and the wait: the wait returns at once
    t0 = time.monotonic()
    assert stop.wait(30) is False and time.monotonic() - t0 < 5
    woke: list[float] = []

    def idle() -> None:
        stop.mark()
        ready.release()
        stop.wait(30)
        woke.append(time.monotonic())

    ready = threading.Semaphore(0)
    threads = [threading.Thread(target=idle) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in threads:
        ready.acquire()
    time.sleep(0.05)
    t0 = time.monotonic()
    stop.wake()
    for t in threads:
        t.join(timeout=10)
    assert len(woke) == 3 and max(woke) - t0 < 5
    stop.set()
    assert stop.is_set() and stop.wait(30) is True
