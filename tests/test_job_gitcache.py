"""The bare git cache: narrow fetches over smart HTTP, credentials by header, hostile inputs refused."""

from __future__ import annotations

import socket
import subprocess

import pytest

from bot.errors import MinbumpError
from bot.git.cache import GitCache, GitFetchError, check_clone_url, missing_tags, valid_branch
from tests.support.gitrepo import GitRepo

REPO = "octo/lib"


@pytest.fixture
def hosted(tmp_path, fake_github):
    work = GitRepo(tmp_path / "w")
    base = work.commit({"a.py": "X = 1\n"}, date="2016-01-01T00:00:00+00:00")
    work.tag("1.0.0")
    work.branch("topic")
    head = work.commit({"a.py": "X = 2\n"}, date="2016-02-01T00:00:00+00:00")
    work.checkout("main")
    work.branch("unrelated")
    work.commit({"b.py": "Y = 1\n"})
    work.checkout("main")
    fake_github.add_repo(REPO, work)
    fake_github.add_pull(REPO, 4, head)
    token = fake_github.add_token("bot")
    return work, base, head, token


def refs(path) -> set[str]:
    out = subprocess.run(["git", "-C", str(path), "for-each-ref", "--format=%(refname)"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_fetch_takes_base_pull_head_and_tags_only(tmp_path, fake_github, hosted):
    work, base, head, token = hosted
    cache = GitCache(tmp_path / "cache")
    f = cache.fetch(REPO, fake_github.clone_url(REPO), "main", 4, token)
    assert (f.base_sha, f.pull_sha) == (base, head)
    assert refs(f.path) == {"refs/minbump/base/main", "refs/minbump/pull/4/head", "refs/tags/1.0.0"}
    assert subprocess.run(["git", "-C", str(f.path), "rev-parse", "--is-bare-repository"],
                          capture_output=True, text=True).stdout.strip() == "true"
    assert not (f.path / "a.py").exists()
    # the token went as a header, the URL carried no credentials
    git = [q for q in fake_github.requests if q.kind == "git"]
    assert git and all(q.auth == "token:bot" for q in git) and all("@" not in q.path for q in git)
    # a second fetch reuses the clone
    again = cache.fetch(REPO, fake_github.clone_url(REPO), "main", 4, token)
    assert again.path == f.path and again.pull_sha == head


def test_without_a_token_private_repos_fail_fast_without_prompting(tmp_path, fake_github, hosted):
    cache = GitCache(tmp_path / "cache", timeout=20)
    with pytest.raises(GitFetchError):
        cache.fetch(REPO, fake_github.clone_url(REPO), "main", 4, None)


def test_missing_pull_ref_is_permanent(tmp_path, fake_github, hosted):
    _, _, _, token = hosted
    with pytest.raises(MinbumpError, match="couldn't find remote ref"):
        GitCache(tmp_path / "cache").fetch(REPO, fake_github.clone_url(REPO), "main", 99, token)


def test_unreachable_host_is_transient(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(GitFetchError):
        GitCache(tmp_path / "cache", timeout=10).fetch(REPO, f"http://127.0.0.1:{port}/octo/lib.git", "main", 1, "t")


@pytest.mark.parametrize("url", [
    "ext::sh -c touch% pwned", "file:///etc", "--upload-pack=touch x", "ssh://git@example.org/a/b.git",
    "https://user:pass@example.org/a/b.git", "https://example.org/a b.git",
])
def test_hostile_clone_urls_are_refused(tmp_path, url):
    with pytest.raises(MinbumpError):
        check_clone_url(url)
    with pytest.raises(MinbumpError):
        GitCache(tmp_path / "cache").fetch(REPO, url, "main", 1, None)


@pytest.mark.parametrize("name,ok", [
    ("main", True), ("stable/2023.1", True), ("--upload-pack=x", False), ("-x", False),
    ("a..b", False), ("refs/*", False), ("a b", False), ("", False), ("x:y", False),
])
def test_branch_names(name, ok):
    assert valid_branch(name) is ok


def test_hostile_repo_names_and_pr_numbers(tmp_path, fake_github, hosted):
    cache = GitCache(tmp_path / "cache")
    for repo in ("../../etc", "a/b/c", "-o/x"):
        with pytest.raises(MinbumpError):
            cache.path_for(repo)
    with pytest.raises(MinbumpError):
        cache.fetch(REPO, fake_github.clone_url(REPO), "--upload-pack=x", 4, None)
    with pytest.raises(MinbumpError):
        cache.fetch(REPO, fake_github.clone_url(REPO), "main", -1, None)


# --- tags: only when due ------------------------------------------------------------------------

def test_warm_fetch_skips_the_tags_until_they_are_due(tmp_path, fake_github, hosted):
    """The first fetch takes the tags; later ones do not (a new upstream tag stays out) until the
    interval has passed, or the caller asks (``tags=True`` / :meth:`GitCache.fetch_tags`)."""
    import os
    import time

    work, _, _, token = hosted
    url = fake_github.clone_url(REPO)
    cache = GitCache(tmp_path / "cache", tag_interval=600)
    first = cache.fetch(REPO, url, "main", 4, token)
    assert first.tags_fetched and "refs/tags/1.0.0" in refs(first.path)
    work.tag("2.0.0", ref="main")
    fake_github.sync(REPO)
    warm = cache.fetch(REPO, url, "main", 4, token)
    assert not warm.tags_fetched and "refs/tags/2.0.0" not in refs(warm.path)
    assert "refs/tags/1.0.0" in refs(warm.path)  # --prune never drops tags a fetch did not ask for
    assert missing_tags(warm.path, ["1.0.0", "2.0.0", "2.0.0", ""]) == ["2.0.0"]
    # the job's path when the analysis names a tag the cache lacks
    stamp = warm.path / GitCache.TAG_STAMP
    old = time.time() - 3600
    os.utime(stamp, (old, old))
    t0 = time.monotonic()
    seconds = cache.fetch_tags(REPO, url, token)
    assert 0 < seconds <= time.monotonic() - t0  # the time it took, as logged by the job
    assert missing_tags(warm.path, ["1.0.0", "2.0.0"]) == []
    assert stamp.stat().st_mtime > old + 3000  # the tags count as fresh again: no refetch on the next fetch
    # an old stamp makes the next fetch take the tags again
    work.tag("3.0.0", ref="main")
    fake_github.sync(REPO)
    assert not cache.fetch(REPO, url, "main", 4, token).tags_fetched
    old = time.time() - 601
    os.utime(stamp, (old, old))
    due = cache.fetch(REPO, url, "main", 4, token)
    assert due.tags_fetched and "refs/tags/3.0.0" in refs(due.path)
    # interval 0: every fetch takes the tags (the old behaviour)
    work.tag("4.0.0", ref="main")
    fake_github.sync(REPO)
    assert GitCache(tmp_path / "cache", tag_interval=0).fetch(REPO, url, "main", 4, token).tags_fetched
    assert "refs/tags/4.0.0" in refs(due.path)


def test_fetch_tags_refuses_hostile_inputs(tmp_path):
    cache = GitCache(tmp_path / "cache")
    with pytest.raises(MinbumpError):
        cache.fetch_tags(REPO, "--upload-pack=touch x", None)
    with pytest.raises(MinbumpError):
        cache.fetch_tags("../../etc", "https://example.org/a/b.git", None)


def test_prune_forgets_old_pull_heads_keeps_fresh_ones_and_a_later_fetch_restores(tmp_path, fake_github, hosted):
    import os
    import time

    work, base, head, token = hosted
    work.checkout("unrelated")
    other = work.commit({"c.py": "Z = 1\n"})
    work.checkout("main")
    fake_github.add_pull(REPO, 5, other)
    cache = GitCache(tmp_path / "cache")
    url = fake_github.clone_url(REPO)
    path = cache.fetch(REPO, url, "main", 4, token).path
    cache.fetch(REPO, url, "main", 5, token)
    month_ago = time.time() - 30 * 86400
    os.utime(path / GitCache.PULL_STAMPS / "5", (month_ago, month_ago))
    subprocess.run(["git", "-C", str(path), "update-ref", "refs/minbump/pull/9/head", base], check=True)  # no stamp

    [r] = cache.prune(14 * 86400, gc="always")
    assert (r.repo, r.removed, r.kept, r.error) == ("octo/lib", 2, 1, "")
    assert refs(path) == {"refs/minbump/base/main", "refs/minbump/pull/4/head", "refs/tags/1.0.0"}
    assert sorted(os.listdir(path / GitCache.PULL_STAMPS)) == ["4"]
    assert r.bytes_before > 0 and r.bytes_after > 0
    assert cache.prune(14 * 86400, gc="never")[0].removed == 0  # nothing more is old
    again = cache.fetch(REPO, url, "main", 5, token)  # the next job for PR 5 just fetches it again
    assert again.pull_sha == other and "refs/minbump/pull/5/head" in refs(path)


def test_cache_prune_command(tmp_path, fake_github, hosted):
    import os
    import sys

    work, base, head, token = hosted
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["MINBUMP_DATA_DIR"] = str(data)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bot.cli", "cache", "prune", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    res = cli()
    assert res.returncode == 0 and res.stderr.startswith("no git cache at ")
    GitCache(data / "git").fetch(REPO, fake_github.clone_url(REPO), "main", 4, token)
    res = cli("--older-than", "0")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("octo/lib: 1 pull request heads forgotten, 0 kept; ") and " MB -> " in res.stdout
    res = cli("--older-than", "-1")
    assert res.returncode == 2 and "Traceback" not in res.stderr
