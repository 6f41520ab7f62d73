"""Publishing through PyGithub against the fake: limits, batching, identity, retries, settings."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from bot.errors import MinbumpError
from bot.core.publish import COMMENT_LIMIT, MARKER, annotations_for, comment_body, previous_verdict
from bot.service.github import (
    Clients,
    ConfigurationError,
    GitHubSettings,
    PublishState,
    Publisher,
    TransientGitHubError,
)
from tests.support.gitrepo import GitRepo

REPO = "octo/r"


@pytest.fixture
def hosted(tmp_path, fake_github):
    work = GitRepo(tmp_path / "w")
    work.commit({"a.py": "X = 1\n"})
    head = work.commit({"a.py": "X = 2\n"})
    fake_github.add_repo(REPO, work)
    fake_github.add_pull(REPO, 3, head)
    return head


def settings(gh, **env):
    base = {"GITHUB_API_URL": gh.api_url, "MINBUMP_GITHUB_BACKOFF": "0.01", "MINBUMP_GITHUB_WRITE_INTERVAL": "0",
            "MINBUMP_GITHUB_REQUEST_INTERVAL": "0", "MINBUMP_SECONDARY_RATE_WAIT": "1"}
    base.update(env)
    return GitHubSettings.from_env(base)


def token_publisher(gh, login="bot-user"):
    s = Clients(settings(gh, GITHUB_TOKEN=gh.add_token(login))).session(None)
    return Publisher(s, REPO, 3)


def app_publisher(gh, tmp_path):
    gh.add_installation(77)
    s = Clients(settings(gh, APP_ID=str(gh.app_id), PRIVATE_KEY=gh.private_key_pem.replace("\n", "\\n")))
    return Publisher(s.session(77), REPO, 3)


def test_long_report_is_truncated_under_the_comment_limit(fake_github, hosted):
    report = "| row |\n" * 20000  # 160k characters
    body = comment_body(report, "fail", hosted, True, None)
    assert len(body) < COMMENT_LIMIT and "truncated" in body and hosted in body and body.startswith(MARKER)
    pub = token_publisher(fake_github)
    assert pub.upsert_comment(lambda prev: body, True, PublishState(), None) == "created"
    assert len(fake_github.pr_comments(REPO, 3)[0]["body"]) < COMMENT_LIMIT


def test_resolved_only_after_an_impact():
    first = comment_body("r", "pass", "a" * 40, True, None)
    assert "Resolved" not in first and previous_verdict(first) == "pass"
    failed = comment_body("r", "fail", "a" * 40, True, previous_verdict(first))
    resolved = comment_body("r", "neutral", "b" * 40, False, previous_verdict(failed))
    assert "Resolved" in resolved and "no longer changes a watched minimum" in resolved
    assert previous_verdict(resolved) == "resolved"
    assert "Resolved" in comment_body("r", "pass", "c" * 40, True, "resolved")
    assert "Resolved" not in comment_body("r", "warn", "c" * 40, True, "resolved")


def test_unchanged_body_is_not_edited_and_other_peoples_markers_ignored(fake_github, hosted):
    fake_github.add_comment(REPO, 3, f"{MARKER} pasted", "someone-else")
    pub = token_publisher(fake_github)
    st = PublishState()
    assert pub.upsert_comment(lambda p: MARKER + " v1", True, st, None) == "created"
    assert pub.upsert_comment(lambda p: MARKER + " v1", True, st, None) == "unchanged"
    assert pub.upsert_comment(lambda p: MARKER + " v2", True, PublishState(), None) == "edited"
    assert fake_github.count("PATCH", r".*/issues/comments/\d+") == 1
    bodies = sorted(c["body"] for c in fake_github.pr_comments(REPO, 3))
    assert bodies == [f"{MARKER} pasted", MARKER + " v2"]


def test_no_comment_created_when_not_allowed(fake_github, hosted):
    pub = token_publisher(fake_github)
    assert pub.upsert_comment(lambda p: MARKER, False, PublishState(), None) == "none"
    assert fake_github.pr_comments(REPO, 3) == []


def test_a_stale_comment_id_hint_falls_back_to_search(fake_github, hosted):
    other = fake_github.add_comment(REPO, 3, f"{MARKER} not ours", "mallory")
    pub = token_publisher(fake_github)
    st = PublishState()
    assert pub.upsert_comment(lambda p: MARKER + " ours", True, st, other["id"]) == "created"
    assert st.comment_id != other["id"]


def test_commit_status_description_fits(fake_github, hosted):
    pub = token_publisher(fake_github)
    pub.publish_status(hosted, "warn", "w" * 500, "summary", [], PublishState())
    (st,) = fake_github.commit_statuses(REPO, hosted)
    assert st["state"] == "success" and len(st["description"]) == 140


def test_check_run_annotations_in_batches_of_50(fake_github, hosted, tmp_path):
    pub = app_publisher(fake_github, tmp_path)
    anns = [{"path": "a.py", "start_line": i, "end_line": i, "annotation_level": "warning", "message": f"m{i}"}
            for i in range(1, 121)]
    pub.publish_status(hosted, "neutral", "title", "s" * 70000, anns, PublishState())
    (run,) = fake_github.runs_for(REPO, hosted)
    assert run["conclusion"] == "neutral" and len(run["output"]["summary"]) <= 65535
    assert [a["start_line"] for a in fake_github.annotations[run["id"]]] == list(range(1, 121))
    assert fake_github.count("POST", rf"/repos/{REPO}/check-runs") == 1
    assert fake_github.count("PATCH", rf"/repos/{REPO}/check-runs/\d+") == 2


def test_check_run_retry_after_a_failed_patch_does_not_duplicate(fake_github, hosted, tmp_path):
    pub = app_publisher(fake_github, tmp_path)
    anns = [{"path": "a.py", "start_line": i, "end_line": i, "annotation_level": "failure", "message": "m"}
            for i in range(1, 61)]
    fake_github.fault("PATCH", rf"/repos/{REPO}/check-runs/\d+", status=502, times=10)
    st = PublishState()
    with pytest.raises(TransientGitHubError):
        pub.publish_status(hosted, "fail", "t", "s", anns, st)
    fake_github.faults.clear()
    pub.publish_status(hosted, "fail", "t", "s", anns, st)  # the job's publish retry
    (run,) = fake_github.runs_for(REPO, hosted)
    assert len(fake_github.annotations[run["id"]]) == 60


def test_check_run_create_applied_then_502_is_adopted_not_duplicated(fake_github, hosted, tmp_path):
    pub = app_publisher(fake_github, tmp_path)
    anns = [{"path": "a.py", "start_line": 1, "end_line": 1, "annotation_level": "failure", "message": "m"}]
    fake_github.fault("POST", rf"/repos/{REPO}/check-runs", status=502, mode="apply_then_fail")
    st = PublishState()
    with pytest.raises(TransientGitHubError):
        pub.publish_status(hosted, "fail", "t", "s", anns, st)
    pub.publish_status(hosted, "fail", "t", "s", anns, st)
    (run,) = fake_github.runs_for(REPO, hosted)
    assert run["conclusion"] == "failure" and fake_github.count("POST", rf"/repos/{REPO}/check-runs") == 1
    assert len(fake_github.annotations[run["id"]]) == 1


def test_check_run_create_applied_after_the_client_timeout_is_adopted_not_duplicated(fake_github, hosted,
                                                                                    tmp_path):
    """The create is applied only after the client gave up: the retry's first lookup finds
    nothing, so it keeps looking (unsure_wait) instead of creating a second check run."""
    fake_github.add_installation(77)
    s = Clients(settings(fake_github, APP_ID=str(fake_github.app_id), MINBUMP_GITHUB_TIMEOUT="1",
                         MINBUMP_GITHUB_UNSURE_WAIT="8",
                         PRIVATE_KEY=fake_github.private_key_pem.replace("\n", "\\n"))).session(77)
    pub = Publisher(s, REPO, 3)
    anns = [{"path": "a.py", "start_line": 1, "end_line": 1, "annotation_level": "failure", "message": "m"}]
    stalled = fake_github.fault("POST", rf"/repos/{REPO}/check-runs", mode="apply_late", stall=2.5)
    st = PublishState()
    with pytest.raises(TransientGitHubError):
        pub.publish_status(hosted, "fail", "t", "s", anns, st)
    assert fake_github.runs_for(REPO, hosted) == []  # not applied yet when the retry starts
    pub.publish_status(hosted, "fail", "t", "s", anns, st)
    deadline = time.monotonic() + 30
    while stalled.answered == 0:
        assert time.monotonic() < deadline, "the stalled POST never finished"
        time.sleep(0.05)
    (run,) = fake_github.runs_for(REPO, hosted)
    assert run["conclusion"] == "failure" and fake_github.count("POST", rf"/repos/{REPO}/check-runs") == 1


def test_app_identity_is_the_bot_login(fake_github, hosted, tmp_path):
    pub = app_publisher(fake_github, tmp_path)
    assert pub.s.login == "minbump-test[bot]" and pub.s.mode == "app"
    pub.upsert_comment(lambda p: MARKER + " x", True, PublishState(), None)
    assert fake_github.pr_comments(REPO, 3)[0]["user"]["login"] == "minbump-test[bot]"


def test_persistent_5xx_becomes_transient_error(fake_github, hosted):
    pub = token_publisher(fake_github)
    fake_github.fault("GET", rf"/repos/{REPO}/pulls/3", status=503, times=100)
    with pytest.raises(TransientGitHubError):
        pub.head_sha()


def test_4xx_is_permanent(fake_github, hosted):
    pub = Publisher(token_publisher(fake_github).s, REPO, 99)
    with pytest.raises(MinbumpError, match="GitHub 404"):
        pub.head_sha()


def test_bad_token_is_a_clear_error(fake_github):
    with pytest.raises(MinbumpError, match="GitHub 401: Bad credentials"):
        Clients(settings(fake_github, GITHUB_TOKEN="ghp_wrong_token")).session(None)


def test_primary_rate_limit_reset_becomes_retry_delay(fake_github, hosted):
    """A 403 with X-RateLimit-Remaining: 0 is transient with the reset time as delay."""
    from bot.service.github import _retry_after

    reset = time.time() + 30
    assert 29 <= _retry_after({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(reset))}) <= 32
    assert _retry_after({"Retry-After": "7"}) == 7.0


@pytest.mark.parametrize("env,message", [
    ({}, "set GITHUB_TOKEN"),
    ({"APP_ID": "12"}, "neither PRIVATE_KEY"),
    ({"APP_ID": "abc", "PRIVATE_KEY": "x"}, "numeric"),
    ({"APP_ID": "12", "PRIVATE_KEY": "not a key"}, "not a PEM"),
    ({"APP_ID": "12", "PRIVATE_KEY_PATH": "/nonexistent/key.pem"}, "cannot read"),
    ({"GITHUB_TOKEN": "t", "GITHUB_API_URL": "ftp://x"}, "GITHUB_API_URL"),
])
def test_settings_errors_are_one_line(env, message):
    with pytest.raises(ConfigurationError, match=message) as exc:
        GitHubSettings.from_env(env)
    assert "\n" not in str(exc.value)


def test_settings_default_to_github_com_and_strip_ghes_slash():
    assert GitHubSettings.from_env({"GITHUB_TOKEN": "t"}).api_url == "https://api.github.com"
    s = GitHubSettings.from_env({"GITHUB_TOKEN": "t", "GITHUB_API_URL": "https://ghe.example.org/api/v3/"})
    assert s.api_url == "https://ghe.example.org/api/v3" and s.mode == "token"


def test_annotations_only_on_changed_constant_lines():
    report = SimpleNamespace(verdict="fail", still_supported_drops=[{"label": "Ubuntu 14.04", "platform": "u"}],
                             changes=[{"constant": "MIN_LIBVIRT_VERSION", "old": "1.2.1", "new": "1.2.9",
                                       "file": "nova/virt/libvirt/driver.py", "line": 17},
                                      {"constant": "GONE", "old": "1", "new": None, "file": None, "line": None}])
    (a,) = annotations_for(report)
    assert a["start_line"] == a["end_line"] == 17 and a["annotation_level"] == "failure"
    assert "Ubuntu 14.04" in a["message"] and "1.2.1 → 1.2.9" in a["message"]


# --- write pacing ---------------------------------------------------------------------------------

def test_write_pacer_allows_a_small_burst_then_spaces_writes():
    from bot.service.github import WritePacer

    now = [100.0]
    pacer = WritePacer(1.0, burst=2, clock=lambda: now[0])
    assert [pacer.reserve() for _ in range(5)] == [0.0, 0.0, 1.0, 2.0, 3.0]
    now[0] += 10  # a quiet spell refills the bucket: the next job's two writes go at once
    assert [pacer.reserve() for _ in range(3)] == [0.0, 0.0, 1.0]
    now[0] += 2  # the last write went at +1: one token back since, so one goes now, the next waits
    assert pacer.reserve() == 0.0 and pacer.reserve() == pytest.approx(1.0)
    assert WritePacer(0.0).reserve() == 0.0  # interval 0: pacing off


def test_default_settings_pace_writes_not_the_first_ones(fake_github):
    s = settings(fake_github, GITHUB_TOKEN="t")
    base = GitHubSettings.from_env({"GITHUB_API_URL": fake_github.api_url, "GITHUB_TOKEN": "t"})
    assert (base.write_interval, base.write_burst, base.request_interval) == (1.0, 2, 0.0)
    assert Clients(base)._kwargs()["seconds_between_writes"] is None  # ours, not PyGithub's
    assert s.write_interval == 0


def test_a_burst_of_writes_is_spaced_after_the_first_two(fake_github, hosted):
    sent: list[float] = []
    fake_github.on_request = lambda method, path: sent.append(time.monotonic()) if method == "POST" else None
    login = "bot-user"
    s = Clients(settings(fake_github, GITHUB_TOKEN=fake_github.add_token(login),
                         MINBUMP_GITHUB_WRITE_INTERVAL="0.3", MINBUMP_GITHUB_WRITE_BURST="2")).session(None)
    pub = Publisher(s, REPO, 3)
    waited: list[float] = []  # what the pacer made each write wait (wall time would add load's delays)
    pace = s.pacer.wait
    s.pacer.wait = lambda: waited.append(pace()) or waited[-1]  # type: ignore[method-assign]
    t0 = time.monotonic()
    for i in range(5):
        pub.publish_status(hosted, "pass", f"minbump: pass {i}", "", [], PublishState())
    fake_github.on_request = None
    assert len(sent) == 5 and len(fake_github.commit_statuses(REPO, hosted)) == 5
    assert waited[:2] == [0.0, 0.0]  # the burst: no wait for the first two
    # then one write per interval: the k-th write never goes before its slot (a late one may make the
    # next gap shorter, as slots are fixed, so only these lower bounds hold on a busy machine)
    assert all(sent[k] - t0 >= (k - 1) * 0.3 for k in range(2, 5)), [round(x - t0, 3) for x in sent]
    # the same session's next job after a quiet spell starts with its burst again
    time.sleep(0.7)
    pub.publish_status(hosted, "pass", "minbump: pass later", "", [], PublishState())
    assert waited[-1] == 0.0
