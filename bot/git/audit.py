"""`minbump audit`'s walk: every first-parent commit that changed a watched constant, judged as the dry-run judges it.

Why this shape: a history has tens of thousands of commits and a few hundred
that touch the watched files. `git log --first-parent -- <watched globs>`
finds those without reading a diff; each is then compared with its parent
constant by constant with the analyzer's own `snapshot` (the dry-run's
detection, cached per blob), and only the few that changed a constant are
judged, by the dry-run's own `run_refs(parent, commit)`. Everything runs on
one `GitRepo` (one `git cat-file --batch`), with the tag list and blobs read once.
"""

from __future__ import annotations

import io
import subprocess
from datetime import date, datetime, timedelta, UTC
from pathlib import Path
from collections.abc import Generator, Iterator
from typing import Any

from bot.core.analysis import snapshot
from bot.core.config import CONFIG_PATH
from bot.core.dates import parse_day
from bot.core.extract import MAX_SOURCE
from bot.core.timeline import timeline
from bot.errors import MinbumpError
from bot.git.gather import NotConfigured, load_calendar, load_config, load_matrix, run_refs
from bot.git.read import Entry, GitRepo

BLOB_CACHE_BYTES = 16 << 20  # a few versions of a big driver.py: enough for parent, commit and the release tag


class AuditRepo(GitRepo):
    """The one reader of an audit: recently read blobs are kept across commits.

    Blobs are immutable, so a blob read for one commit serves its parent and
    its neighbours (a watched file changes in a few commits out of hundreds).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._blobs: dict[tuple[str, int | None], bytes] = {}
        self._blob_bytes = 0

    def stream(self, *args: str) -> Iterator[str]:
        """The NUL-separated records `git <args>` prints, as git prints them (the caller works while git walks).

        The process is ended when the caller stops early (Ctrl-C, an error).
        """
        proc = subprocess.Popen(["git", "-C", self.path, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=self._env)
        assert proc.stdout is not None and proc.stderr is not None
        assert isinstance(proc.stdout, io.BufferedReader)  # bufsize=-1: Popen buffers the pipe, so read1 exists
        try:
            pending = b""
            while chunk := proc.stdout.read1(1 << 16):
                *records, pending = (pending + chunk).split(b"\0")
                for record in records:
                    yield record.decode("utf-8", "replace")
            if pending:
                yield pending.decode("utf-8", "replace")
            err = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
            if proc.wait() != 0:
                raise MinbumpError(f"git {args[0]} failed: {err[-1] if err else 'exit ' + str(proc.returncode)}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    def blob(self, sha: str, name: str = "", limit: int | None = None) -> bytes:
        key = (sha, limit)
        hit = self._blobs.get(key)
        if hit is None:
            hit = super().blob(sha, name, limit)
            if self._blob_bytes > BLOB_CACHE_BYTES:
                self._blobs.clear()
                self._blob_bytes = 0
            self._blobs[key] = hit
            self._blob_bytes += len(hit)
        return hit


class LogEntry:
    """A first-parent commit that touched a watched path."""

    __slots__ = ("sha", "parent", "when", "subject", "older")

    def __init__(self, sha: str, parent: str | None, when: datetime, subject: str) -> None:
        self.sha, self.parent, self.when, self.subject = sha, parent, when, subject
        # The next older commit in the walk: between it and `parent` no first-parent commit touched a
        # watched path (git would have listed it), so its watched files are the parent's.
        self.older: str | None = None


def _bound(g: GitRepo, value: str | None, option: str) -> tuple[datetime | None, bool]:
    """(instant, is_tag) for --since/--until: a date (that day, UTC) or a tag/ref (its commit's time)."""
    if value is None:
        return None, False
    try:
        day = parse_day(value)
        return datetime(day.year, day.month, day.day, tzinfo=UTC), False
    except ValueError:
        pass
    sha = g.try_resolve(value)
    if sha is None:
        raise MinbumpError(f"{option}: {value!r} is neither a date (YYYY-MM-DD) nor a tag or ref of the repository")
    return g.commit(sha).committed, True


class Audit:
    """One audit: open the repository, walk the commits to look at, judge them one by one.

    The command line drives `walk` and `judge` itself (progress bar, Ctrl-C);
    `run` does the whole audit for callers that need no progress. Bad options
    (an unknown ref, a --since that is neither date nor tag, no config) fail
    here, before any walking.
    """

    def __init__(self, repo: str | Path, branch: str = "HEAD", since: str | None = None,
                 until: str | None = None, config_path: str | None = None, preset: str | None = None,
                 today: date | None = None) -> None:
        self.repo_path = str(repo)
        self.branch = branch
        self.config_path, self.preset, self.today = config_path, preset, today
        self.g = AuditRepo(repo)
        try:
            self.tip = self.g.resolve(branch)
            self.g.tags()  # read once: every commit's release plan reuses the list
            # Detection uses the tip's config (or the one given); each commit is judged with its parent's.
            try:
                self.config = load_config(self.g, self.tip, branch, config_path, preset)
            except NotConfigured:
                raise NotConfigured(f"no {CONFIG_PATH} at {branch} ({self.tip[:12]}); "
                                    "pass --config FILE or --preset NAME") from None
            self.matrix = load_matrix(self.g, self.tip, self.config)
            self.calendar = load_calendar(self.g, self.tip, self.config)
            self._lo, self._lo_tag = _bound(self.g, since, "--since")
            self._hi, self._hi_tag = _bound(self.g, until, "--until")
            if self._hi is not None and not self._hi_tag:
                self._hi += timedelta(days=1)  # --until DAY includes that day
        except BaseException:
            self.g.close()
            raise
        self._signatures: dict[frozenset, tuple[Any, ...]] = {}
        self.walked = 0  # commits touching a watched file, in the range, seen so far
        self._order: dict[str, int] = {}  # sha -> place in the walk (newest first)
        self._tree_files: dict[str, frozenset[tuple[str, str]]] = {}

    def __enter__(self) -> Audit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.g.close()

    # ----------------------------------------------------------------- walk
    def walk(self) -> Generator[LogEntry, None, None]:
        """First-parent commits that touch a watched path, newest first, as `git log` finds them.

        Streamed, so judging overlaps git's walk of the history (the two use
        different cores); `git log --reverse` would hold everything back until
        the walk ends.
        """
        specs = [f":(glob){p}" for p in self.config.watch]
        held: LogEntry | None = None  # yielded once the next older commit is known
        for record in self.g.stream("log", "--first-parent", "-z", "--format=%H %P%x01%ct%x01%s",
                                    self.tip, "--", *specs):
            record = record.strip("\n")
            if not record:
                continue
            shas, ct, subject = record.split("\x01", 2)
            sha, *parents = shas.split()
            entry = LogEntry(sha, parents[0] if parents else None, datetime.fromtimestamp(int(ct), UTC),
                             subject)
            if held is not None:
                held.older = sha
                yield from self._in_range(held)
            held = entry
        if held is not None:
            yield from self._in_range(held)

    def _in_range(self, entry: LogEntry) -> Iterator[LogEntry]:
        lo, hi, when = self._lo, self._hi, entry.when
        if lo is not None and (when <= lo if self._lo_tag else when < lo):
            return
        if hi is not None and (when > hi if self._hi_tag else when >= hi):
            return
        self.walked += 1
        self._order[entry.sha] = -self.walked  # sorting by it puts the oldest first
        yield entry

    def _files(self, sha: str) -> frozenset[tuple[str, str]]:
        hit = self._tree_files.get(sha)
        if hit is None:
            entries: list[Entry] = self.g.files(sha, self.config.watch)
            hit = frozenset((e.path, e.sha) for e in entries)
            if len(self._tree_files) > 8:
                self._tree_files.clear()
            self._tree_files[sha] = hit
        return hit

    def _signature(self, files: frozenset[tuple[str, str]]) -> tuple[Any, ...]:
        """What the dry-run would compare: each watched constant's shown value and file, and parse errors."""
        hit = self._signatures.get(files)
        if hit is None:
            contents = {path: self.g.blob(sha, path, limit=MAX_SOURCE) for path, sha in files}
            snap, errors = snapshot("audit", None, contents, self.config)
            hit = (frozenset((k, c.shown(), c.file) for k, c in snap.constants.items()), bool(errors))
            if len(self._signatures) > 64:
                self._signatures.clear()
            self._signatures[files] = hit
        return hit

    def changed_constants(self, entry: LogEntry) -> bool:
        """Whether `entry` changed a watched constant (or broke a watched file) against its first parent."""
        if entry.parent is None:
            return False  # the first commit: nothing to compare with, as a dry-run needs a base
        before, after = self._files(entry.older or entry.parent), self._files(entry.sha)
        if before == after:
            return False
        old, new = self._signature(before), self._signature(after)
        return old[0] != new[0] or (new[1] and not old[1])

    def judge(self, entry: LogEntry) -> dict | None:
        """The row for `entry`: its dry-run report plus sha, subject and date; None when no constant changed.

        A commit that cannot be judged gives a row with its `error`, never an exception.
        """
        meta = {"sha": entry.sha, "subject": entry.subject, "date": entry.when.date().isoformat()}
        try:
            if not self.changed_constants(entry):
                return None
            assert entry.parent is not None
            extra: dict[str, str] = {}
            try:
                report = run_refs(self.g, entry.parent, entry.sha, config_path=self.config_path,
                                  preset=self.preset, today=self.today)
            except NotConfigured:
                # History from before the repository adopted minbump: judge it with the tip's config.
                report = run_refs(self.g, entry.parent, entry.sha, today=self.today, config_ref=self.tip)
                extra["config_ref"] = f"{self.branch} ({self.tip[:12]}): no config at the parent"
        except MinbumpError as exc:
            return {**meta, "verdict": "error", "error": str(exc)}
        except (ValueError, KeyError, TypeError, RecursionError, UnicodeError) as exc:
            return {**meta, "verdict": "error", "error": f"{type(exc).__name__}: {exc}"}
        data = report.to_dict()
        if not data["changes"] and not any(e.get("ref") == "head" for e in data["errors"]):
            return None  # the sieve's false alarm: the dry-run sees no change
        return {**data, **meta, **extra}

    def document(self, rows: list[dict]) -> dict:
        """The JSON answer: {repo, branch, config, data, rows, timeline}; `rows` oldest first."""
        rows = sorted(rows, key=lambda r: self._order[r["sha"]])
        cal = self.calendar
        return {
            "repo": self.repo_path, "branch": self.branch, "head": self.tip, "config": self.config.origin,
            "data": {"matrix": list(self.matrix.origins),
                     "as_of": self.matrix.data_as_of.isoformat() if self.matrix.data_as_of else None,
                     "calendar": cal.name if cal else None, "support_rule": self.config.support},
            "commits_scanned": self.walked,
            "rows": rows, "timeline": timeline(rows),
        }

    def run(self) -> dict:
        rows = [r for r in (self.judge(e) for e in self.walk()) if r is not None]
        return self.document(rows)
