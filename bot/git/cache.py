"""One bare cached clone per repository under the data dir, fetched narrowly.

Why a bare cache: the analyzer only reads git objects, so there is no work
tree to check PR content out into (nothing under analysis is ever written to
disk as files or executed), and later jobs for the same repository fetch only
what changed.

What a fetch takes: the PR's base branch and ``refs/pull/N/head`` (works for
forks, whose branches are not in the base repository). The release tags (the
one-cycle rule reads the previous release's tag) come along only when they are
due: on the cache's first fetch, when the last tag fetch is older than
``tag_interval`` (``MINBUMP_TAG_FETCH_INTERVAL``, 600 s), or when the job asks
because the analysis named a tag the cache lacks (:func:`missing_tags`).
Listing and negotiating hundreds of tags on every job cost more than the
rest of a warm fetch; a release tag is created a few times a year.

A partial clone: a new cache fetches commits and trees only
(``--filter=blob:none``: 5.2 instead of 7.4 s, 46 instead of 64 MB, for the
60,000-commit benchmark repository through the test fake). The analysis reads
a few files: the reader from :meth:`GitCache.reader` hands the ids of the
blobs it is about to read (or has just found missing) to
:meth:`GitCache.fetch_blobs`, which fetches the absent ones in one batch, with
the token, under the lock. The repository's own config names no promisor
remote (only ``minbump.partialCloneFilter``): the cache's git commands get
``remote.minbump.promisor``, its filter and, to fetch, its URL through the
environment. To any other git process a missing blob is plain missing, so git
never starts a fetch of its own (it would have no token, and would fetch one
blob at a time). A hand-run ``git gc`` in a partial cache stops at the first
missing blob, losing nothing; ``minbump cache prune`` gives git the settings.
A server that refuses filters sends everything: the first fetch then leaves a
plain full clone. Caches made before partial clones stay full clones.

Safety of the git invocation:

* the token travels as an ``http.<origin>.extraHeader`` set through
  ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n`` environment variables: never in
  the URL, never in argv, and only sent to the clone URL's origin;
* ``GIT_TERMINAL_PROMPT=0``, no credential helpers, no redirects,
  ``GIT_ALLOW_PROTOCOL=http:https`` (no ``file``/``ext`` transports), a timeout;
* ``--end-of-options`` before the URL and refspecs, and the inputs (URL, branch
  name, PR number) are validated first, so payload text cannot become options.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import os
import re
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import git  # GitPython: creates the bare repositories

from bot.errors import MinbumpError
from bot.git.read import GitRepo
from bot.service.logs import scrub

_REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.][A-Za-z0-9_.-]*")
_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
REMOTE = "minbump"  # the promisor remote of a partial cache, given only to the cache's own git commands
FILTER = "blob:none"
MARK = "minbump.partialCloneFilter"  # in a partial cache's config: the filter it was made with
REFUSED = "filtering not recognized by server"  # git's warning when the server ignores --filter


class GitFetchError(Exception):
    """A fetch failed for a reason that may go away (network, server): retry the job."""


@dataclass(frozen=True)
class Fetched:
    """What one fetch produced: the cache path and the resolved shas."""

    path: Path
    base_ref: str  # the ref name inside the cache to pass to run_refs
    base_sha: str
    pull_ref: str
    pull_sha: str
    seconds: float
    tags_fetched: bool = False  # this fetch also brought the tags
    partial: bool = False  # the cache is a partial clone (blobs fetched when read)


@dataclass(frozen=True)
class Pruned:
    """What :meth:`GitCache.prune` did to one cached repository."""

    repo: str  # owner/name as the cache lays it out (lower case)
    removed: int  # PR heads forgotten
    kept: int
    bytes_before: int
    bytes_after: int
    error: str = ""  # git gc failed (the refs were still removed)


def valid_branch(name: str) -> bool:
    """A branch name git accepts and that cannot be read as an option or a pattern."""
    if not name or name.startswith("-") or any(c in name for c in "*?[\\ ~^:") or len(name) > 255:
        return False
    res = subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"], capture_output=True)
    return res.returncode == 0


def check_clone_url(url: str) -> str:
    """Only http(s) URLs without credentials: the payload's ``repository.clone_url``."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise MinbumpError(f"refusing clone URL {scrub(url)!r}: only http(s) URLs without credentials")
    if any(c in url for c in "\n\r\t ") or url.startswith("-"):
        raise MinbumpError("refusing clone URL with whitespace")
    return url


class GitCache:
    """Bare clones at ``<data dir>/git/<owner>/<name>.git``, one lock file each."""

    TAG_STAMP = "minbump-tags-fetched"  # in the bare repo; its mtime is the last tag fetch
    PULL_STAMPS = "minbump-pulls"  # in the bare repo: a file per PR, its mtime the PR's last fetch

    def __init__(self, root: Path, timeout: float = 120.0, tag_interval: float = 600.0) -> None:
        self.root = Path(root)
        self.timeout = timeout
        self.tag_interval = tag_interval

    def path_for(self, repo: str) -> Path:
        if not _REPO_NAME.fullmatch(repo) or ".." in repo:
            raise MinbumpError(f"not a repository name: {repo!r}")
        owner, name = repo.split("/")
        return self.root / owner.lower() / f"{name.lower()}.git"

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        """Serialise fetches of one repository across threads and processes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(str(path) + ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _ensure(self, path: Path) -> None:
        if (path / "HEAD").is_file():
            return
        repo = git.Repo.init(path, bare=True, mkdir=True)
        with repo.config_writer() as cw:
            cw.set_value("core", "hooksPath", os.devnull)  # the cache runs no hooks, ever
            cw.set_value("gc", "auto", "0")  # we decide when to gc, not a fetch mid-job
            cw.set_value("fetch", "writeFetchHEAD", "false")
            # A partial clone from the start (see the module docstring).
            section, key = MARK.split(".")
            cw.set_value(section, key, FILTER)
        repo.close()

    def is_partial(self, path: Path) -> bool:
        """Whether the cached clone at ``path`` is a partial clone (older caches are full clones)."""
        res = subprocess.run(["git", "-C", str(path), "config", "--get", MARK],
                             capture_output=True, text=True, env=self._env(None, None))
        return res.stdout.strip() == FILTER

    def _make_full(self, path: Path) -> None:
        """The server ignored the filter and sent every object: a plain full clone from now on."""
        subprocess.run(["git", "-C", str(path), "config", "--unset", MARK],
                       capture_output=True, env=self._env(None, None), check=True)
        for marker in (path / "objects" / "pack").glob("*.promisor"):
            marker.unlink()

    def _env(self, url: str | None, token: str | None, partial: bool = False) -> dict[str, str]:
        """The environment of the cache's git commands; ``url`` None for local ones (no network).

        ``partial``: the promisor remote's settings (and, to fetch, its URL) for a partial cache.
        """
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GIT_", "SSH_")) and k not in ("GITHUB_TOKEN", "PRIVATE_KEY", "WEBHOOK_SECRET")}
        env.update({
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "false",  # never ask anyone for credentials
            "SSH_ASKPASS": "false",
            "GIT_ALLOW_PROTOCOL": "http:https",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "LC_ALL": "C",
        })
        # maintenance.auto: no "git maintenance run --auto" child after each fetch (gc.auto is 0 anyway).
        config = [("credential.helper", ""), ("http.followRedirects", "false"),
                  ("protocol.version", "2"), ("maintenance.auto", "false")]
        if partial:
            config += [(f"remote.{REMOTE}.promisor", "true"), (f"remote.{REMOTE}.partialclonefilter", FILTER)]
            if url:
                config.append((f"remote.{REMOTE}.url", url))
        if token and url:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}/"
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            config.append((f"http.{origin}.extraHeader", f"Authorization: Basic {basic}"))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (k, v) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{i}"] = k
            env[f"GIT_CONFIG_VALUE_{i}"] = v
        return env

    def tags_due(self, path: Path) -> bool:
        """True when the cache never fetched tags, or not within ``tag_interval`` seconds."""
        try:
            age = time.time() - (path / self.TAG_STAMP).stat().st_mtime
        except OSError:
            return True
        return not 0 <= age < self.tag_interval

    def fetch(self, repo: str, clone_url: str, base_ref: str, pr: int, token: str | None,
              tags: bool | None = None) -> Fetched:
        """Fetch base branch and PR head (and the tags when due) into the cache; GitFetchError to retry.

        ``tags``: None fetches them when :meth:`tags_due`, True always, False never.
        """
        check_clone_url(clone_url)
        if not valid_branch(base_ref):
            raise MinbumpError(f"not a branch name: {base_ref!r}")
        if not isinstance(pr, int) or pr <= 0:
            raise MinbumpError(f"not a pull request number: {pr!r}")
        path = self.path_for(repo)
        base_local = f"refs/minbump/base/{base_ref}"
        pull_local = f"refs/minbump/pull/{pr}/head"
        refspecs = [f"+refs/heads/{base_ref}:{base_local}",
                    f"+refs/pull/{pr}/head:{pull_local}"]
        start = time.monotonic()
        with self._locked(path):
            self._ensure(path)
            # Decided under the lock: a concurrent job may just have fetched them.
            with_tags = self.tags_due(path) if tags is None else tags
            partial = self._run_fetch(path, clone_url, token,
                                      refspecs + (["+refs/tags/*:refs/tags/*"] if with_tags else []))
            if with_tags:
                (path / self.TAG_STAMP).touch()
            base_sha = self._rev(path, base_local)
            pull_sha = self._rev(path, pull_local)
            stamps = path / self.PULL_STAMPS
            stamps.mkdir(exist_ok=True)
            (stamps / str(pr)).touch()
        return Fetched(path, base_local, base_sha, pull_local, pull_sha, time.monotonic() - start, with_tags,
                       partial)

    def fetch_tags(self, repo: str, clone_url: str, token: str | None) -> float:
        """Fetch only the tags (the analysis needs one the cache lacks); returns the seconds taken."""
        check_clone_url(clone_url)
        path = self.path_for(repo)
        start = time.monotonic()
        with self._locked(path):
            self._ensure(path)
            self._run_fetch(path, clone_url, token, ["+refs/tags/*:refs/tags/*"])
            (path / self.TAG_STAMP).touch()
        return time.monotonic() - start

    def _run_fetch(self, path: Path, clone_url: str, token: str | None, refspecs: list[str]) -> bool:
        """One ``git fetch`` (caller holds the lock); ``--prune`` only touches the refspecs given.

        A partial cache fetches without blobs; when the server ignores the filter on the cache's
        first fetch, the cache holds every object and becomes a full clone. True: the cache is partial.
        """
        partial = self.is_partial(path)
        first = partial and not self._local(path, "for-each-ref", "--count=1")  # an empty cache
        # A partial cache fetches from its promisor remote (the URL comes through the environment).
        how = [f"--filter={FILTER}", "--end-of-options", REMOTE] if partial else ["--end-of-options", clone_url]
        cmd = ["git", "-C", str(path), "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--prune",
               *how, *refspecs]
        res = self._git_fetch(cmd, clone_url, token, partial)
        if first and REFUSED in res.stderr:
            self._make_full(path)
            return False
        return partial

    def _git_fetch(self, cmd: list[str], clone_url: str, token: str | None, partial: bool,
                   stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a fetch with the token's environment; GitFetchError (retry) or MinbumpError (a missing ref)."""
        try:
            res = subprocess.run(cmd, env=self._env(clone_url, token, partial), capture_output=True,
                                 text=True, timeout=self.timeout,
                                 **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}))
        except subprocess.TimeoutExpired:
            raise GitFetchError(f"git fetch timed out after {self.timeout:.0f}s") from None
        if res.returncode != 0:
            msg = scrub(" ".join(res.stderr.strip().splitlines()[-2:]))[:300]
            if "couldn't find remote ref" in msg:
                raise MinbumpError(f"git fetch: {msg}")
            raise GitFetchError(f"git fetch failed ({res.returncode}): {msg}")
        return res

    def fetch_blobs(self, repo: str, clone_url: str, token: str | None, ids: Iterable[str]) -> int:
        """Fetch the blobs among ``ids`` a partial cache lacks, in one ``git fetch``; how many it fetched.

        Protocol v2 serves objects by id (GitHub does, for partial clones); the
        filter keeps the fetch to the blobs named. A full clone lacks nothing to fetch.
        """
        check_clone_url(clone_url)
        wanted = sorted({i for i in ids if isinstance(i, str) and _OID.fullmatch(i)})
        path = self.path_for(repo)
        if not wanted:
            return 0
        with self._locked(path):
            if not self.is_partial(path):
                return 0
            # the ones here (a missing one is left out, never fetched by git itself)
            have = set(self._local(path, "rev-list", "--objects", "--no-walk", "--ignore-missing",
                                   "--missing=allow-any", "--stdin", stdin="\n".join(wanted) + "\n").split())
            absent = [i for i in wanted if i not in have]
            if absent:
                cmd = ["git", "-C", str(path), "-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet",
                       "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head", f"--filter={FILTER}",
                       "--stdin", "--end-of-options", REMOTE]
                self._git_fetch(cmd, clone_url, token, True, stdin="\n".join(absent) + "\n")
        return len(absent)

    def reader(self, repo: str, clone_url: str, token: str | None) -> GitRepo:
        """A reader of the cached clone that fetches the blobs a partial clone lacks, with the token."""
        return GitRepo(self.path_for(repo), fetch_missing=functools.partial(self.fetch_blobs, repo, clone_url, token))

    def _local(self, path: Path, *args: str, stdin: str = "") -> str:
        """A local listing command's output (``rev-list``, ``for-each-ref``): no network, no lazy fetch."""
        res = subprocess.run(["git", "-C", str(path), *args], input=stdin, capture_output=True, text=True,
                             env=self._env(None, None), timeout=self.timeout)
        if res.returncode != 0:
            raise GitFetchError(f"git {args[0]} failed: {res.stderr.strip()[-200:]}")
        return res.stdout

    def repos(self) -> list[Path]:
        """The cached bare repositories."""
        return sorted(p for p in self.root.glob("*/*.git") if (p / "HEAD").is_file())

    def prune(self, older_than: float, now: float | None = None, gc: str = "auto") -> list[Pruned]:
        """Forget the heads of PRs not fetched for ``older_than`` seconds, then ``git gc``.

        ``gc``: "auto" lets git decide by its own thresholds (more than 6,700 loose
        objects or 50 packs, as fetches leave them), "always" repacks regardless
        (14 s for the 60,000-commit benchmark repository), "never" skips it.

        Why it is safe at any time: a job always fetches its PR's head again, and
        each repository is pruned under the lock its fetches take (a running
        analysis reads a PR fetched moments ago, which is never old). Objects
        only the forgotten heads reached go the way git's own gc sends them
        (unreachable objects expire after two weeks). A head fetched before
        these stamps existed counts as old.
        """
        now = time.time() if now is None else now
        out = []
        for path in self.repos():
            env = self._env(None, None, self.is_partial(path))  # local commands only: no URL, no token
            with self._locked(path):
                before = _disk_usage(path)
                listing = subprocess.run(
                    ["git", "-C", str(path), "for-each-ref", "--format=%(refname)", "refs/minbump/pull/"],
                    capture_output=True, text=True, env=env)
                old, kept = [], 0
                for ref in listing.stdout.split():
                    number = ref.split("/")[3]
                    try:
                        age = now - (path / self.PULL_STAMPS / number).stat().st_mtime
                    except OSError:
                        age = float("inf")
                    if age >= older_than:
                        old.append((ref, number))
                    else:
                        kept += 1
                if old:
                    subprocess.run(["git", "-C", str(path), "update-ref", "--stdin"], check=True,
                                   input="".join(f"delete {ref}\n" for ref, _ in old), text=True,
                                   capture_output=True, env=env)
                    for _, number in old:
                        (path / self.PULL_STAMPS / number).unlink(missing_ok=True)
                error = ""
                if gc != "never":
                    cmd = ["git", "-C", str(path), "-c", "gc.auto=6700", "-c", "gc.autoPackLimit=50", "gc", "--quiet"]
                    if gc == "auto":
                        cmd.append("--auto")
                    try:
                        res = subprocess.run(cmd, capture_output=True,
                                             text=True, timeout=self.timeout * 10,
                                             env=env)
                        if res.returncode != 0:
                            error = f"git gc failed ({res.returncode}): {res.stderr.strip()[-200:]}"
                    except subprocess.TimeoutExpired:
                        error = f"git gc timed out after {self.timeout * 10:.0f}s"
                repo = f"{path.parent.name}/{path.name[:-4]}"
                out.append(Pruned(repo, len(old), kept, before, _disk_usage(path), error))
        return out

    def has_commit(self, path: Path, sha: str) -> bool:
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            return False
        res = subprocess.run(["git", "-C", str(path), "cat-file", "-e", f"{sha}^{{commit}}"],
                             capture_output=True)
        return res.returncode == 0

    @staticmethod
    def _rev(path: Path, ref: str) -> str:
        res = subprocess.run(["git", "-C", str(path), "rev-parse", "--verify", "--quiet",
                              "--end-of-options", f"{ref}^{{commit}}"],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise GitFetchError(f"{ref} missing after fetch")
        return res.stdout.strip()


def _disk_usage(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def missing_tags(path: Path, tags: Iterable[str]) -> list[str]:
    """The names in ``tags`` that are not tags of the cached clone at ``path`` (sorted).

    The job passes the previous-release tags its report relied on
    (``report.deprecation[*]["previous_release"]``): one the cache lacks
    means the tags must be fetched and the analysis run again.
    """
    wanted = sorted({t for t in tags if isinstance(t, str) and t})
    if not wanted:
        return []
    res = subprocess.run(["git", "-C", str(path), "for-each-ref", "--format=%(refname)", "refs/tags"],
                         capture_output=True, text=True)
    have = set(res.stdout.split()) if res.returncode == 0 else set()
    return [t for t in wanted if f"refs/tags/{t}" not in have]
