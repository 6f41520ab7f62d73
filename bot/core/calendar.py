"""Release calendars: which release a change lands in, and which release came before it.

A calendar is data (a shipped `policy/calendars/<name>.yaml`, a file in the
repository) or derived from the repository's own version tags, for projects
without a coordinated schedule.
"""

from __future__ import annotations

import re
from datetime import date
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

from bot.errors import ConfigError, MinbumpError
from bot.core.dates import parse_day as _day
from bot.core.version import Version
from bot.core.records import Record, factory


class Release(Record):
    name: str
    tag: str
    date: date
    confidence: str = "high"
    series: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "tag": self.tag, "date": self.date.isoformat()}


class Calendar(Record):
    name: str
    releases: list[Release]
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.releases.sort(key=lambda r: r.date)

    def target(self, when: date) -> Release | None:
        """The first release dated on or after `when`: where a change made that day ships."""
        for r in self.releases:
            if r.date >= when:
                return r
        return None

    def previous(self, when: date) -> Release | None:
        """The last release before the one a change made on `when` ships in."""
        before = [r for r in self.releases if r.date < when]
        return before[-1] if before else None




def from_data(data: dict, name: str) -> Calendar:
    try:
        releases = [Release(str(r["name"]), str(r["tag"]), _day(r["date"]), r.get("confidence", "high"),
                            str(r["series"]) if r.get("series") is not None else None)
                    for r in data.get("releases") or ()]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"calendar {name}: each release needs name, tag and date ({exc})") from None
    return Calendar(str(data.get("name", name)), releases, tuple(data.get("sources") or ()))


DEFAULT_TAG_PATTERN = r"v?\d+(\.\d+)+"


def from_tags(tags: Iterable[tuple[str, str, str]], pattern: str | None = None,
              final_only: bool = True) -> Calendar:
    """A calendar from (tag, sha, ISO date) rows: every tag matching `pattern` is a release.

    Pre-releases (rc, alpha, beta) are skipped so the 'previous release' is one
    operators actually ran.
    """
    rx = re.compile(pattern or DEFAULT_TAG_PATTERN)
    out = []
    for tag, _sha, when in tags:
        if not rx.fullmatch(tag):
            continue
        if final_only and re.search(r"(rc|alpha|beta|a|b)\d*$", tag, re.I) \
                and not re.fullmatch(DEFAULT_TAG_PATTERN, tag):
            continue
        try:
            day = _day(when) if when else None
        except ValueError:
            day = None
        if day is None:
            continue
        out.append(Release(tag, tag, day))
    # Same-day tags: order by version so the newer one wins as "previous".
    def key(r: Release):
        try:
            return (r.date, Version.parse(r.tag).parts)
        except ValueError:
            return (r.date, ())
    out.sort(key=key)
    return Calendar("tags", out, ("the repository's own tags",))


# ------------------------------------------------- which release a change ships in ---

# What may follow a release's final tag in one of its pre-release tags: Nova's
# 15.0.0.0rc1 and 15.0.0.0b1, 2014.1.rc1, v9.0.0-rc1, 3.12.0rc1, 2.0.0-M1.
_PRE = re.compile(r"(?:\.0)?[-._~]?(?P<kind>rc|alpha|beta|preview|pre|dev|a|b|m)[-._]?\d*", re.I)
_RC = ("rc",)


def tag_kind(final: str, tag: str) -> str | None:
    """'final', 'rc' or 'milestone' when `tag` is a tag of the release whose final tag is `final`, else None."""
    if tag == final:
        return "final"
    if not tag.startswith(final):
        return None
    m = _PRE.fullmatch(tag, len(final))
    if m is None:
        return None
    return "rc" if m.group("kind").lower() in _RC else "milestone"


def release_tags(calendar: Calendar, names: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Release tag -> [(tag, kind)] of the `names` that belong to it (the longest final tag wins).

    Kinds: 'final', 'rc' (a release candidate: its branch is cut) and
    'milestone' (alpha, beta: cut from the development branch mid-cycle).
    """
    finals = {r.tag for r in calendar.releases}
    out: dict[str, list[tuple[str, str]]] = {r.tag: [] for r in calendar.releases}
    for name in sorted(set(names)):
        for cut in range(len(name), 0, -1):
            final = name[:cut]
            if final in finals:
                kind = tag_kind(final, name)
                if kind is not None:
                    out[final].append((name, kind))
                    break
    return out


class TagFacts(Record):
    """What git says about the calendar's tags, gathered by `bot.git.read`; the core runs no git.

    Filled in rounds: `plan_from_git` answers with a `Need` naming the few tags
    it must know more about (newest releases first), so a long history is
    never walked for old tags.
    """

    present: tuple[str, ...]     # tags of calendar releases (finals and pre-releases) in the repository
    relation: dict = factory(dict)        # tag -> "behind" (ancestor of the base, or the base) | "ahead" | "neither"
    with_head: dict = factory(dict)       # tag -> whether it contains the head commit
    forks: dict = factory(dict)           # tag -> commit date of merge-base(tag, base), or None


class Need(Record):
    """The tags whose relation to the base, containment of the head, or fork date `plan_from_git` needs next."""

    relation: tuple = ()
    with_head: tuple = ()
    forks: tuple = ()


class ReleasePlan(Record):
    """The release a change ships in, the one before it (whose code must warn), and how that was found."""

    target: Release | None
    previous: Release | None
    how: str                     # topology | contains | date | option
    evidence: str
    notes: list[str] = factory(list)

    def target_dict(self) -> dict | None:
        if self.target is None:
            return None
        return dict(self.target.to_dict(), how=self.how, evidence=self.evidence)


FETCH_TAGS = "`git fetch --tags`, or `fetch-depth: 0` in actions/checkout"


def _before(calendar: Calendar, release: Release) -> Release | None:
    return calendar.previous(release.date)


def plan_by_date(calendar: Calendar | None, head_date: date, why: str = "") -> ReleasePlan:
    """The first release dated on or after the head commit: the rule when git cannot tell."""
    if calendar is None:
        return ReleasePlan(None, None, "date", why or "no release calendar")
    target = calendar.target(head_date)
    if target is not None:
        previous = calendar.previous(target.date)
        evidence = f"the first {calendar.name} release dated on or after the head commit ({head_date})"
    else:
        previous = calendar.previous(date.fromordinal(head_date.toordinal() + 1))
        evidence = f"no {calendar.name} release is dated on or after the head commit ({head_date})"
    return ReleasePlan(target, previous, "date", evidence, [why] if why else [])


def plan_by_option(calendar: Calendar | None, wanted: str) -> ReleasePlan:
    """`--target-release NAME|TAG`: a release's name, series, final tag or one of its pre-release tags."""
    key = wanted.strip().lower()
    for r in (calendar.releases if calendar else ()):
        names = {r.name.lower(), r.tag.lower(), r.name.split(" ")[-1].lower()}
        if r.series:
            names.add(r.series.lower())
        if key in names or tag_kind(r.tag.lower(), key) is not None:
            return ReleasePlan(r, calendar.previous(r.date), "option",  # type: ignore[union-attr]
                               f"given with --target-release {wanted}")
    known = ", ".join(r.name for r in (calendar.releases[-5:] if calendar else ()))
    where = f"calendar {calendar.name}" if calendar else "the release calendar"
    raise MinbumpError(f"--target-release {wanted!r}: no such release in {where}"
                       + (f" (latest: {known})" if known else ""))


def plan_from_git(calendar: Calendar | None, facts: TagFacts, head_date: date) -> ReleasePlan | Need:
    """The target release from the tags' topology, or the facts it needs first.

    - a release whose tag already contains the head commit is where it
      shipped (replaying history): the earliest such release wins;
    - otherwise a release is behind the base when one of its final or rc tags
      is an ancestor of the base, or lies on a branch that forked off the
      base's history during that release's cycle (a stable branch cut before
      the base): the target is the first release after the last one behind;
    - with no tag of the calendar in the repository git cannot tell: the date rule.
    Milestone tags (alpha, beta) are cut from the development branch itself, so
    they say nothing about the branch being cut.
    """
    if calendar is None or not calendar.releases:
        return plan_by_date(calendar, head_date)
    tags_of = release_tags(calendar, facts.present)
    releases = calendar.releases
    if not any(tags_of.values()):
        return plan_by_date(calendar, head_date,
                            f"the target release comes from the head commit's date: no tag of any {calendar.name} "
                            f"release is in this repository, so git cannot tell which release is cut "
                            f"(fetch the tags: {FETCH_TAGS})")
    # Only a release dated after the head commit can hold it (a day's slack for clock skew).
    cutoff = date.fromordinal(head_date.toordinal() - 1)
    could = [t for r in releases if r.date >= cutoff for t, _k in tags_of[r.tag]]
    unknown = tuple(t for t in could if t not in facts.with_head)
    if unknown:
        return Need(with_head=unknown)
    for r in releases:
        hit = [t for t, _k in tags_of[r.tag] if facts.with_head.get(t)]
        if hit:
            return ReleasePlan(r, _before(calendar, r), "contains", f"tag {hit[0]} already contains the head commit")
    # The last release behind the base by ancestry, asking git about the newest releases first.
    last, why = None, ""
    for i in range(len(releases) - 1, -1, -1):
        r = releases[i]
        own = [t for t, k in tags_of[r.tag] if k != "milestone"]
        unknown = tuple(t for t in own if t not in facts.relation)
        if unknown:
            return Need(relation=unknown)
        anc = [t for t in own if facts.relation[t] == "behind"]
        if anc:
            last, why = i, f"tag {anc[0]} ({r.name}) is an ancestor of the base"
            break
    if last is None:
        start = next(i for i, r in enumerate(releases) if tags_of[r.tag])
    else:
        start = last + 1
    for r in releases[start:]:
        own = [t for t, k in tags_of[r.tag] if k != "milestone"]
        if not own or any(facts.relation[t] == "ahead" for t in own):
            return _topology(calendar, r, why, head_date, bool(tags_of[r.tag]))
        tag = own[0]
        if tag not in facts.forks:
            return Need(forks=(tag,))
        fork, prev = facts.forks[tag], _before(calendar, r)
        if fork is None or (prev is not None and fork <= prev.date):
            # Its branch forked before this release's cycle began: the base is on an older branch.
            return _topology(calendar, r, why, head_date, True)
        why = f"tag {tag} ({r.name}) is on a branch that forked off the base's history on {fork}"
    notes = [] if calendar.name == "tags" else [  # a tag list never holds the next release
        f"every {calendar.name} release is behind the base ({why}); the calendar needs its next release"]
    return ReleasePlan(None, releases[-1], "topology", f"{why}; the calendar has no later release", notes)


def _topology(calendar: Calendar, r: Release, why: str, head_date: date, tagged: bool) -> ReleasePlan:
    evidence = (f"{why}; {r.name} is the first release not behind the base" if why
                else f"{r.name} is the first release whose tags are not behind the base")
    notes = []
    if not tagged and r.date < head_date:
        notes.append(f"{r.name} was due on {r.date} but none of its tags ({r.tag}) is in this repository; "
                     f"if it has shipped, fetch the tags ({FETCH_TAGS})")
    return ReleasePlan(r, _before(calendar, r), "topology", evidence, notes)
