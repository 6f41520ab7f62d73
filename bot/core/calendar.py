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
    from typing import Any, Iterable

from bot.errors import ConfigError
from bot.core.dates import parse_day as _day
from bot.core.version import Version
from bot.core.records import Record


class Release(Record):
    name: str
    tag: str
    date: date
    confidence: str = "high"

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
        releases = [Release(str(r["name"]), str(r["tag"]), _day(r["date"]), r.get("confidence", "high"))
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
        if final_only and re.search(r"(rc|alpha|beta|a|b)\d*$", tag, re.I) and not re.fullmatch(DEFAULT_TAG_PATTERN, tag):
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
