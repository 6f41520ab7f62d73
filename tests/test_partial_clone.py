"""The bot's cache as a partial clone: commits and trees up front, the few blobs the analysis reads
fetched in batches with the token; a server without filters gets a full clone; old full caches stay full.

Real parts: the fake GitHub's HTTP server and ``git http-backend``, real repositories and the real analyzer.
"""

from __future__ import annotations

import logging
import subprocess

import pytest

from bot.core.report import render_markdown
from bot.errors import MinbumpError
from bot.git.cache import GitCache, GitFetchError
from bot.git.gather import run_refs
from bot.git.read import GitRepo as Reader
from tests.support.fakegithub import NOVA_DRIVER, Harness, fast_env
from tests.support.gitrepo import GitRepo
from tests.support.nova import CONFIG, driver

REPO = "octo/nova"
PR = 7
BIG = "docs/big.bin"  # a file the analysis never reads


@pytest.fixture
def hosted(tmp_path, fake_github):
    """Newton (14.0.0) warns that 1.2.9 comes next; base tweaks the driver; head raises the minimum.

    The driver at the tag differs from the one at base, so the previous release's file is a blob
    of its own that only the one-cycle rule reads.
    """
    work = GitRepo(tmp_path / "work")
    work.commit({NOVA_DRIVER: driver("(1, 2, 1)", "(1, 2, 9)"), ".github/minbump.yml": CONFIG,
                 BIG: "unread\n" * 40_000}, date="2016-09-01T10:00:00+00:00")
    work.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    base = work.commit({NOVA_DRIVER: driver("(1, 2, 1)", "(1, 2, 9)") + "# base tweak\n",
                        BIG: "still unread\n" * 40_000}, date="2016-10-20T10:00:00+00:00")
    work.branch("bump")
    head = work.commit({NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
    work.checkout("main")
    fake_github.add_repo(REPO, work)  # private: git needs the token
    fake_github.add_pull(REPO, PR, head, "main", "bump")
    return work, base, head, fake_github.add_token("minbump-bot")


def git(path, *args: str, check: bool = True) -> str:
    return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=check).stdout


def missing(path, *refs: str) -> set[str]:
    """Objects the refs reach that the clone lacks (listed without fetching anything)."""
    out = git(path, "rev-list", "--objects", "--missing=print", *refs)
    return {line[1:] for line in out.split() if line.startswith("?")}


def fetches(gh) -> int:
    """git fetches the fake served (each starts with the ref advertisement)."""
    return sum(1 for q in gh.requests if q.kind == "git" and q.path.endswith("/info/refs"))


def promisor_packs(path) -> list:
    return sorted((path / "objects" / "pack").glob("*.promisor"))


def blob_id(work: GitRepo, rev: str, path: str) -> str:
    return work.git("rev-parse", f"{rev}:{path}")


def test_first_fetch_is_partial_and_reads_fetch_what_they_need_in_one_batch(tmp_path, fake_github, hosted):
    work, base, head, token = hosted
    url = fake_github.clone_url(REPO)
    cache = GitCache(tmp_path / "cache")
    f = cache.fetch(REPO, url, "main", PR, token)
    assert f.partial and cache.is_partial(f.path) and promisor_packs(f.path)
    lacking = missing(f.path, "--all")
    # commits and trees are all here, blobs are not
    assert blob_id(work, base, BIG) in lacking and blob_id(work, head, NOVA_DRIVER) in lacking
    assert all(git(f.path, "cat-file", "-t", ref).strip() in ("commit", "tree", "tag")
               for ref in (base, head, f"{base}^{{tree}}", "refs/tags/14.0.0"))

    before = fetches(fake_github)
    with cache.reader(REPO, url, token) as g:
        wanted = [e.sha for e in g.files(head, ["nova/virt/libvirt/*.py"])] + [blob_id(work, base, NOVA_DRIVER)]
        g.prefetch(wanted)
        assert fetches(fake_github) == before + 1  # both drivers in one fetch
        assert b"MIN_LIBVIRT_VERSION = (1, 2, 9)" in g.blob(wanted[0])
        g.prefetch(wanted)  # present now: nothing to fetch
        assert fetches(fake_github) == before + 1
        # a read nobody announced (a policy file at `rev:path`) is fetched on its own, then read
        assert g.read(base, ".github/minbump.yml") == CONFIG.encode()
        assert fetches(fake_github) == before + 2
        assert g.read(base, "no/such/file") is None and fetches(fake_github) == before + 2
    # the git requests carried the token (the repository is private)
    assert {q.auth for q in fake_github.requests if q.kind == "git"} == {"token:minbump-bot"}
    assert blob_id(work, base, BIG) in missing(f.path, "--all")  # never read, never fetched
    assert blob_id(work, "14.0.0", BIG) in missing(f.path, "--all")

    # a blob id is fetched on a miss only when a tree the reader read lists it (never a commit by id)
    big = blob_id(work, base, BIG)
    with cache.reader(REPO, url, token) as g:
        before = fetches(fake_github)
        with pytest.raises(MinbumpError, match="object missing"):
            g.blob(big)
        assert fetches(fake_github) == before
        assert [e.sha for e in g.files(base, ["docs/*"])] == [big]
        assert g.blob(big) == b"still unread\n" * 40_000 and fetches(fake_github) == before + 1

    # any other reader finds the blob missing: git starts no fetch of its own (no URL, no token)
    before = fetches(fake_github)
    with Reader(f.path) as plain:
        with pytest.raises(MinbumpError, match="object missing"):
            plain.blob(blob_id(work, "14.0.0", BIG))
        assert plain.read("14.0.0", BIG) is None and plain.read(base, NOVA_DRIVER) is not None
    assert fetches(fake_github) == before


def test_analysis_on_a_partial_cache_matches_the_full_repository(tmp_path, fake_github, hosted):
    """Same report as on the full clone, previous release's driver included; the big file stays remote."""
    work, base, head, token = hosted
    url = fake_github.clone_url(REPO)
    cache = GitCache(tmp_path / "cache")
    f = cache.fetch(REPO, url, "main", PR, token)
    with cache.reader(REPO, url, token) as g:
        got = run_refs(g, f.base_ref, head, config_ref=f.base_sha)
    want = run_refs(work.path, "main", head)
    assert render_markdown(got) == render_markdown(want)
    assert got.verdict == want.verdict and "14.0.0" in render_markdown(got)
    lacking = missing(f.path, "--all")
    assert blob_id(work, "14.0.0", NOVA_DRIVER) not in lacking  # the previous release's file was fetched
    assert blob_id(work, "14.0.0", BIG) in lacking and blob_id(work, base, BIG) in lacking


def test_a_blob_fetch_without_the_token_fails_instead_of_prompting(tmp_path, fake_github, hosted):
    work, base, _, token = hosted
    url = fake_github.clone_url(REPO)
    cache = GitCache(tmp_path / "cache", timeout=20)
    cache.fetch(REPO, url, "main", PR, token)
    with pytest.raises(GitFetchError):
        cache.fetch_blobs(REPO, url, None, [blob_id(work, base, NOVA_DRIVER)])
    assert cache.fetch_blobs(REPO, url, token, [blob_id(work, base, NOVA_DRIVER), "not-an-id"]) == 1


def test_renames_are_found_in_a_partial_cache(tmp_path, fake_github, hosted):
    """`git diff -M` compares the added and deleted files' content: the reader fetches those first."""
    work, base, _, token = hosted
    work.checkout("main")
    work.mv(NOVA_DRIVER, "nova/virt/libvirt/connection.py")
    work.write({"nova/virt/libvirt/connection.py": driver("(1, 2, 1)", "(1, 2, 9)") + "# moved\n"})
    moved = work.commit(date="2016-11-21T10:00:00+00:00")
    fake_github.sync(REPO)
    fake_github.add_pull(REPO, PR + 1, moved)
    url = fake_github.clone_url(REPO)
    cache = GitCache(tmp_path / "cache")
    cache.fetch(REPO, url, "main", PR + 1, token)
    with cache.reader(REPO, url, token) as g:
        assert ("R", "nova/virt/libvirt/connection.py", NOVA_DRIVER) in g.changed(base, moved)


def test_server_without_filters_gives_a_full_clone(tmp_path, fake_github, hosted):
    work, base, head, token = hosted
    fake_github.git_filters = False
    url = fake_github.clone_url(REPO)
    cache = GitCache(tmp_path / "cache")
    f = cache.fetch(REPO, url, "main", PR, token)
    assert not f.partial and not cache.is_partial(f.path) and not promisor_packs(f.path)
    assert missing(f.path, "--all") == set()
    assert git(f.path, "config", "--get-regexp", "^remote\\.", check=False) == ""
    with cache.reader(REPO, url, token) as g:
        assert render_markdown(run_refs(g, f.base_ref, head, config_ref=f.base_sha)) == \
            render_markdown(run_refs(work.path, "main", head))
    # later fetches are plain fetches (filters on again or not), and nothing is missing
    fake_github.git_filters = True
    work.checkout("main")
    newer = work.commit({BIG: "changed\n"}, date="2016-11-25T10:00:00+00:00")
    fake_github.sync(REPO)
    again = cache.fetch(REPO, url, "main", PR, token)
    assert again.base_sha == newer and not again.partial and missing(f.path, "--all") == set()


def test_a_cache_made_before_partial_clones_stays_full(tmp_path, fake_github, hosted):
    work, base, head, token = hosted
    cache = GitCache(tmp_path / "cache")
    path = cache.path_for(REPO)
    path.parent.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)  # as the cache made them before
    f = cache.fetch(REPO, fake_github.clone_url(REPO), "main", PR, token)
    assert not f.partial and missing(f.path, "--all") == set() and not promisor_packs(f.path)
    assert cache.fetch_blobs(REPO, fake_github.clone_url(REPO), token, [blob_id(work, base, BIG)]) == 0


def test_prune_and_gc_keep_a_partial_cache_working(tmp_path, fake_github, hosted):
    work, base, head, token = hosted
    url = fake_github.clone_url(REPO)
    cache = GitCache(tmp_path / "cache")
    f = cache.fetch(REPO, url, "main", PR, token)
    cache.fetch_blobs(REPO, url, token, [blob_id(work, head, NOVA_DRIVER)])
    (pruned,) = cache.prune(older_than=10**9, gc="always")
    assert pruned.error == "" and pruned.kept == 1
    assert cache.is_partial(f.path) and promisor_packs(f.path)
    # consistent for git given the cache's promisor settings (as the cache gives them to its own commands)
    assert subprocess.run(["git", "-C", str(f.path), "-c", "remote.minbump.promisor=true", "fsck",
                           "--connectivity-only"], capture_output=True).returncode == 0
    assert blob_id(work, head, NOVA_DRIVER) not in missing(f.path, "--all")
    with cache.reader(REPO, url, token) as g:
        assert b"# base tweak" in g.read(base, NOVA_DRIVER)
    assert cache.fetch(REPO, url, "main", PR, token).pull_sha == head


def _comments(gh) -> list[dict]:
    from bot.service.github import MARKER

    return [c for c in gh.pr_comments(REPO, PR) if MARKER in c["body"]]


def _expected(gh, work: GitRepo, head: str) -> str:
    """The report's markdown on the full repository, linked as the job links it."""
    report = run_refs(work.path, "main", head)
    report.link_base = f"{gh.url}/{REPO}/blob/{head}/"
    return render_markdown(report, footer=False)


def test_cold_then_warm_job_on_a_partial_cache(tmp_path, fake_github, hosted, caplog):
    """The first job on an empty cache makes a partial clone and posts the full report; a warm job too."""
    work, base, head, _ = hosted
    env = fast_env(fake_github, tmp_path / "data", GITHUB_TOKEN=fake_github.add_token("minbump-bot"))
    svc = Harness(fake_github, tmp_path / "data", env)
    caplog.set_level(logging.INFO, logger="minbump")
    assert svc.deliver("pull_request.opened", REPO, PR, head).status_code == 202
    assert svc.work() == 1
    (comment,) = _comments(fake_github)
    want = _expected(fake_github, work, head)
    assert want in comment["body"] and head in comment["body"] and "14.0.0" in want
    path = svc.runner.cache.path_for(REPO)
    assert svc.runner.cache.is_partial(path)
    assert any('"partial": true' in r.getMessage() for r in caplog.records if '"git.fetched"' in r.getMessage())
    lacking = missing(path, "--all")
    assert blob_id(work, base, BIG) in lacking and blob_id(work, "14.0.0", NOVA_DRIVER) not in lacking
    assert {q.auth for q in fake_github.requests if q.kind == "git"} == {"token:minbump-bot"}

    work.git("checkout", "-q", "--detach", head)
    head2 = work.commit({NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)") + "# review\n"},
                        date="2016-11-21T10:00:00+00:00")
    work.checkout("main")
    fake_github.set_head(REPO, PR, head2)
    assert svc.deliver("pull_request.synchronize", REPO, PR, head2).status_code == 202
    assert svc.work() == 1
    (comment,) = _comments(fake_github)
    assert head2 in comment["body"]
    assert _expected(fake_github, work, head2) in comment["body"]
    assert svc.backend.failed_jobs() == [] and blob_id(work, base, BIG) in missing(path, "--all")


def test_a_failed_blob_fetch_retries_the_job_instead_of_reporting(tmp_path, fake_github, hosted, caplog,
                                                                   monkeypatch):
    """The server fails once while the analysis fetches blobs: the job goes back to the queue (a
    transient failure, as a failed fetch is) and its retry posts the real report."""
    from werkzeug.wrappers import Response

    work, base, head, _ = hosted
    env = fast_env(fake_github, tmp_path / "data", GITHUB_TOKEN=fake_github.add_token("minbump-bot"))
    svc = Harness(fake_github, tmp_path / "data", env)
    state = {"armed": False, "failed": 0}
    serve, fetch = fake_github._git, svc.runner.cache.fetch

    def flaky_git(req, environ):
        if state["armed"]:
            state["armed"] = False
            state["failed"] += 1
            return Response("unavailable\n", status=503)
        return serve(req, environ)

    def fetch_then_arm(*args, **kwargs):
        out = fetch(*args, **kwargs)
        state["armed"] = state["failed"] == 0  # the next git request (the analysis's blob fetch) fails, once
        return out

    monkeypatch.setattr(fake_github, "_git", flaky_git)
    monkeypatch.setattr(svc.runner.cache, "fetch", fetch_then_arm)
    caplog.set_level(logging.INFO, logger="minbump")
    svc.deliver("pull_request.opened", REPO, PR, head)
    svc.work()
    assert state["failed"] == 1
    assert any('"git.fetch_failed"' in r.getMessage() for r in caplog.records)
    (comment,) = _comments(fake_github)
    assert _expected(fake_github, work, head) in comment["body"]
    assert svc.backend.failed_jobs() == []


def test_dry_run_on_a_users_own_partial_clone_fetches_as_git_does(tmp_path, fake_github, hosted):
    """No cache, no hook: git's own lazy fetch from the clone's remote brings what the analysis reads."""
    work, base, head, _ = hosted
    fake_github.repos[REPO].private = False
    clone = tmp_path / "mine"
    subprocess.run(["git", "clone", "-q", "--filter=blob:none", "--no-checkout", fake_github.clone_url(REPO),
                    str(clone)], check=True, capture_output=True)
    git(clone, "fetch", "-q", "origin", f"{head}:refs/heads/bump")
    assert blob_id(work, head, NOVA_DRIVER) in missing(clone, "--all")
    got = run_refs(clone, "origin/main", "bump")
    assert render_markdown(got) == render_markdown(run_refs(work.path, "main", head))
    assert blob_id(work, head, NOVA_DRIVER) not in missing(clone, "--all")
    assert blob_id(work, base, BIG) in missing(clone, "--all")


def test_a_blob_another_worker_fetched_meanwhile_is_read(tmp_path, fake_github, hosted):
    """Two workers share a machine's cache: the blob this reader missed may arrive by the other's fetch
    before this reader's own call, which then has nothing to fetch. The read must still succeed
    (it once came back as "no config at base", a neutral verdict for a failing change)."""
    work, base, head, token = hosted
    url = fake_github.clone_url(REPO)
    cache = GitCache(tmp_path / "cache")
    f = cache.fetch(REPO, url, "main", PR, token)
    calls: list[int] = []

    def other_worker_first(ids: list[str]) -> int:
        cache.fetch_blobs(REPO, url, token, ids)  # the other worker's fetch lands first
        calls.append(cache.fetch_blobs(REPO, url, token, ids))  # ours: nothing left to fetch
        return calls[-1]

    with Reader(f.path, fetch_missing=other_worker_first) as g:
        assert g.read(base, ".github/minbump.yml") == CONFIG.encode()
        assert calls == [0]
        got = run_refs(g, f.base_ref, head, config_ref=f.base_sha)
    assert render_markdown(got) == render_markdown(run_refs(work.path, "main", head))
