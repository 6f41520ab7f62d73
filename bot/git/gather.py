"""The local edge: gather the analyzer's inputs from two refs of a clone, read-only.

The webhook job calls the same `run_refs` on its cached bare clone, so the
bot and `minbump dry-run` give the same answer for the same commits.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import date

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

from bot.core import calendar as calendars
from bot.data import calendar as shipped_calendars
from bot.data import config as configs
from bot.core.analysis import Inputs, analyze
from bot.data.yamlcache import byte_limit, cached_yaml, check_size
from bot.core.config import CONFIG_PATH, Config
from bot.errors import ConfigError, MinbumpError
from bot.data.limits import limits
from bot.git.read import Asked, GitRepo, glob_match
from bot.core.matrix import Matrix
from bot.data.matrix import apply_file, default_matrix, with_overrides
from bot.data.policy_files import read_policy
from bot.core.report import Report


class NotConfigured(MinbumpError):
    """The repository has no config at base and none was given: nothing to check."""


def _read_yaml(g: GitRepo, sha: str, path: str, kind: str, name: str | None = None) -> bytes | None:
    """A policy file at `sha`, refused unread when it is over its kind's size limit (`name` in the error)."""
    obj = g.object(f"{sha}:{path}", byte_limit(kind))
    if obj is None or obj[1] != "blob":
        return None
    check_size(getattr(obj[2], "size", len(obj[2])), name or path, kind)
    return obj[2]


def load_config(g: GitRepo, base_sha: str, base_ref: str, config_path: str | None,
                preset: str | None) -> Config:
    if config_path:
        return configs.from_file(config_path)
    if preset:
        return configs.from_preset(preset)
    data = _read_yaml(g, base_sha, CONFIG_PATH, "config", f"{CONFIG_PATH}@{base_sha[:12]}")
    if data is None:
        raise NotConfigured(f"no {CONFIG_PATH} at base {base_ref} ({base_sha[:12]}); "
                            "pass --config FILE or --preset NAME")
    return configs.from_text(data, f"{CONFIG_PATH}@{base_sha[:12]}")


def load_matrix(g: GitRepo, base_sha: str, cfg: Config, extra: list[str] | None = None) -> Matrix:
    """The shipped matrix plus the repository's own files, read from the base branch."""
    matrix = default_matrix()
    for rel in cfg.matrix:
        data = _read_yaml(g, base_sha, rel, "matrix", f"{rel}@base")
        if data is None:
            raise ConfigError(f"{cfg.origin}: matrix: {rel} does not exist at base {base_sha[:12]}")
        matrix = apply_file(matrix, data, f"{rel}@base", f"{rel}@{base_sha[:12]}")
    return with_overrides(extra or (), matrix)


def load_calendar(g: GitRepo, base_sha: str, cfg: Config) -> calendars.Calendar | None:
    cal = cfg.calendar
    if isinstance(cal, str):
        return shipped_calendars.shipped(cal)
    if isinstance(cal, dict) and cal.get("path"):
        data = _read_yaml(g, base_sha, cal["path"], "calendar")
        if data is None:
            raise ConfigError(f"{cfg.origin}: calendar.path: {cal['path']} does not exist at base")
        return calendars.from_data(cached_yaml(data, cal["path"], "calendar") or {}, cal["path"])
    pattern = cal.get("from_tags") if isinstance(cal, dict) else None
    return calendars.from_tags(g.tags(), pattern if isinstance(pattern, str) else None)


def _changes(g: GitRepo, base_sha: str, head_sha: str, cfg: Config) -> list[tuple[str, str, str | None]]:
    """(status, path, old path) of the watched and policy files that differ between base and head.

    Compares tree entries through the batch reader; `git diff -M` runs only
    when a watched file disappeared, since only then can a rename be involved.
    """
    every = cfg.watched_paths()
    policy = every[len(cfg.watch):]

    def relevant(c: tuple[str, str, str | None]) -> bool:
        return any(glob_match(p, c[1]) or (c[2] is not None and glob_match(p, c[2])) for p in every)

    if any(ch in p for p in policy for ch in "*?["):
        return [c for c in g.changed(base_sha, head_sha) if relevant(c)]
    before = {e.path: e.sha for e in g.files(base_sha, cfg.watch)}
    after = {e.path: e.sha for e in g.files(head_sha, cfg.watch)}
    if set(before) - set(after):
        return [c for c in g.changed(base_sha, head_sha) if relevant(c)]
    out: list[tuple[str, str, str | None]] = [
        ("M" if path in before else "A", path, None) for path, sha in sorted(after.items()) if before.get(path) != sha]
    for path in policy:
        old, new = g.object(f"{base_sha}:{path}"), g.object(f"{head_sha}:{path}")
        if (old and old[0]) != (new and new[0]):
            out.append(("A" if old is None else "D" if new is None else "M", path, None))
    return out


class Planning:
    """The release the change ships in, from the tags' topology around `anchor` (the base branch's tip).

    The core asks about a few tags at a time, newest releases first; git
    answers with `for-each-ref --merged/--contains` on just those tags, and a
    merge-base for a release branch it needs dated (mostly none). The first
    question is put at construction and `result()` collects: the walk runs
    while the caller reads files and loads the matrix.
    """

    def __init__(self, g: GitRepo, calendar: calendars.Calendar | None, anchor: str, head_sha: str,
                 head_date: date, wanted: str | None = None) -> None:
        self.g, self.calendar, self.anchor, self.head_sha, self.head_date = g, calendar, anchor, head_sha, head_date
        self.plan: calendars.ReleasePlan | None = None
        self.asked: Asked | None = None
        if wanted:
            self.plan = calendars.plan_by_option(calendar, wanted)
        elif calendar is None:
            self.plan = calendars.plan_by_date(None, head_date)
        else:
            names = [n for tags in calendars.release_tags(calendar, g.tag_names()).values() for n, _k in tags]
            self.facts = calendars.TagFacts(tuple(names))
            self._step()

    def _step(self) -> None:
        assert self.calendar is not None
        answer = calendars.plan_from_git(self.calendar, self.facts, self.head_date)
        if isinstance(answer, calendars.ReleasePlan):
            self.plan, self.asked = answer, None
        else:
            self.asked = self.g.ask(answer, self.anchor, self.head_sha)

    def result(self) -> calendars.ReleasePlan:
        while self.plan is None:
            assert self.asked is not None
            self.asked.fill(self.facts)  # each round settles new tags, so this ends
            self._step()
        return self.plan


def _opened(repo: str | Path | GitRepo) -> GitRepo | nullcontext[GitRepo]:
    """A path is opened (and closed) here; an open GitRepo stays open: `minbump audit` judges many pairs on one."""
    return nullcontext(repo) if isinstance(repo, GitRepo) else GitRepo(repo)


def run_refs(repo_path: str | Path | GitRepo, base: str, head: str, *, config_path: str | None = None,
             preset: str | None = None, as_of: date | None = None, today: date | None = None,
             matrix_files: list[str] | None = None, config_ref: str | None = None,
             target_release: str | None = None) -> Report:
    """Analyse what `head` changes since it forked from `base`, in a local clone (bare or not); see docs/DESIGN.md.

    The diff starts at merge-base(base, head), as a pull request's does, so a
    branch made before `base` moved is not credited with `base`'s later
    changes. `config_ref` is where `.github/minbump.yml` and the repository's
    matrix files are read and where the release topology is judged from
    (default: `base`); the bot passes the base branch's tip.
    `target_release` (a release name or tag) overrides the topology.
    """
    with _opened(repo_path) as g:
        if not target_release:
            g.list_tags()  # the release rule's first question; git answers while the refs resolve
        base_sha, head_sha = g.resolve(base), g.resolve(head)
        policy_sha = g.resolve(config_ref) if config_ref else base_sha
        notes: list[str] = []
        forking = g.start_merge_base(base_sha, head_sha)
        cfg = load_config(g, policy_sha, config_ref or base, config_path, preset)
        calendar = load_calendar(g, policy_sha, cfg)
        head_date = g.commit(head_sha).committed.date()
        planning = Planning(g, calendar, policy_sha, head_sha, head_date, target_release)
        fork = forking.sha()
        if fork is None:
            shallow = " (this clone is shallow)" if g.is_shallow() else ""
            notes.append(f"{base} and {head} share no history in this repository{shallow}; the head is compared "
                         f"with {base} itself (fetch more history: `git fetch --unshallow`, or `fetch-depth: 0` "
                         "in actions/checkout)")
            fork = base_sha
        patterns = cfg.watch
        policy = [p for p in cfg.policy_paths() if p not in cfg.support_tables]  # what the judgement reads
        relevant = _changes(g, fork, head_sha, cfg)
        matrix = load_matrix(g, policy_sha, cfg, matrix_files)
        policy_files = read_policy(g, fork, head_sha, cfg, relevant)
        inputs = Inputs(config=cfg, matrix=matrix, calendar=calendar, base_sha=base_sha, head_sha=head_sha,
                        head_date=head_date, base_files={}, head_files={}, changed=relevant, as_of=as_of,
                        today=today, merge_base=fork, release_plan=None,
                        config_changed_at_head=any(c[1] in policy or c[2] in policy for c in relevant),
                        policy=policy_files)

        def planned() -> calendars.ReleasePlan:
            inputs.release_plan = plan = planning.result()
            plan.notes[:0] = notes
            return plan

        if not policy_files.changed and not any(any(glob_match(p, c[1]) or (c[2] and glob_match(p, c[2]))
                                                     for p in patterns) for c in relevant):
            planned()
            return analyze(inputs)  # no watched source changed: a neutral report, nothing read
        blobs: dict[str, bytes] = {}
        max_source = limits().source_bytes  # a larger file is reported "not read: too large"

        def read_all(sha: str, extra_paths: Sequence[str] = ()) -> dict[str, bytes]:
            out = {}
            entries = g.files(sha, patterns)
            g.prefetch(e.sha for e in entries if e.sha not in blobs)  # a partial clone fetches them at once
            for e in entries:
                if e.sha not in blobs:
                    blobs[e.sha] = g.blob(e.sha, e.path, limit=max_source)
                out[e.path] = blobs[e.sha]
            for path in extra_paths:
                if path not in out:
                    obj = g.object(f"{sha}:{path}", max_source)
                    if obj is not None and obj[1] == "blob":
                        out[path] = obj[2]
            return out

        # A watched file renamed out of the watched globs is still followed.
        followed = [c[1] for c in relevant if c[0] == "R" and not any(glob_match(p, c[1]) for p in patterns)]
        inputs.base_files = read_all(fork)
        inputs.head_files = read_all(head_sha, followed)
        plan = planned()  # the walk ran while the files were read
        previous = plan.previous
        if previous is not None:
            tag_sha = g.tag_commit(previous.tag)
            if tag_sha is None:
                shallow = "this clone is shallow and " if g.is_shallow() else ""
                inputs.previous_missing = (f"tag {previous.tag} ({previous.name}) is not in the repository, so "
                                           "whether it warned is unknown")
                plan.notes.append(f"{shallow}the previous release's tag {previous.tag} ({previous.name}) is missing, "
                                  f"so whether it warned is unknown: fetch the tags ({calendars.FETCH_TAGS})")
            else:
                inputs.previous_files = read_all(tag_sha)
        return analyze(inputs)
