"""The one-cycle rule: a hard minimum may rise only after a release that warned about it.

Evidence is the previous release's tag: it must carry the matching
`NEXT_MIN_*` at or above the new value, read by code that logs a warning.
A marker that exists only on the unreleased base branch, or only in the pull
request itself, has warned nobody yet.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from bot.core.calendar import Release
from bot.core.extract import FileScan, uses
from bot.core.version import Version, vstr
from bot.core.records import Record


class Constant(Record):
    """One resolved constant (a per-arch table yields one per architecture)."""

    name: str
    key: str
    file: str
    line: int
    component: str
    kind: str
    arch: str | None
    hypervisor: str | None
    value: Version | None
    values: tuple[Version, ...] = ()
    note: str | None = None

    @property
    def scope(self) -> tuple[str | None, str | None]:
        return (self.arch, self.hypervisor)

    def shown(self) -> str | None:
        if self.kind == "denylist":
            return ", ".join(str(v) for v in self.values) if self.values else None
        return vstr(self.value)


class Snapshot(Record):
    """The constants of the watched files at one commit."""

    label: str           # "base", "head", or the tag name
    sha: str | None
    constants: dict[str, Constant]
    files: dict[str, FileScan]


def find_next(snap: Snapshot, component: str, scope: tuple[str | None, str | None]) -> Constant | None:
    """The NEXT_MIN marker for a scope; a scoped raise may be announced by the global marker."""
    best: Constant | None = None
    for c in snap.constants.values():
        if c.kind != "next" or c.component != component or c.value is None:
            continue
        if c.scope == scope:
            return c
        if c.scope == (None, None) and best is None:
            best = c
    return best


def check(component: str, scope: tuple[str | None, str | None], new: Version, constant: str,
          old: Version | None, previous: Release | None, prev_snap: Snapshot | None,
          base_snap: Snapshot, prev_missing_reason: str | None) -> dict:
    """One `deprecation` entry of the JSON contract."""
    entry: dict[str, Any] = {
        "constant": constant, "component": component,
        "scope": {"arch": scope[0], "hypervisor": scope[1]},
        "old": vstr(old), "new": vstr(new), "warned": False,
        "previous_release": previous.tag if previous else None,
        "previous_release_name": previous.name if previous else None,
        "next_constant": None, "next_value": None, "evidence": None,
    }
    if previous is None:
        entry["evidence"] = "the calendar has no release before this change, so no warning can have shipped"
        return entry
    if prev_snap is None:  # a missing tag is unknown, never "not warned"
        entry["warned"] = None
        entry["evidence"] = prev_missing_reason or f"tag {previous.tag} not found in the repository"
        nxt = find_next(base_snap, component, scope)
        if nxt is not None and nxt.value is not None and nxt.value >= new:
            entry["evidence"] += (f"; the base branch has {nxt.name} = {nxt.value} ({nxt.file}:{nxt.line}), "
                                  f"which {previous.tag} may have carried")
        return entry
    nxt = find_next(prev_snap, component, scope)
    if nxt is None:
        entry["evidence"] = (f"{previous.name} ({previous.tag}) has no NEXT_MIN marker for {component}"
                             + _scope_words(scope))
        return _base_hint(entry, base_snap, component, scope, new)
    entry["next_constant"], entry["next_value"] = nxt.name, vstr(nxt.value)
    where = f"{previous.tag}:{nxt.file}:{nxt.line}"
    assert nxt.value is not None
    if nxt.value < new:
        entry["evidence"] = (f"{where} {nxt.name} = {nxt.value}, below the new minimum {new}: "
                             "operators were warned about a lower version only")
        return _base_hint(entry, base_snap, component, scope, new)
    scan = prev_snap.files.get(nxt.file)
    found = uses(scan.text, nxt.name) if scan is not None else ()
    warning = [u for u in found if u.warns]
    if not warning:
        why = "is never read" if not found else "is read, but not by code that logs a warning"
        entry["evidence"] = f"{where} {nxt.name} = {nxt.value} {why}"
        return entry
    use = warning[0]
    entry["warned"] = True
    entry["evidence"] = (f"{where} {nxt.name} = {nxt.value}, warned in {use.function}() "
                         f"at {nxt.file}:{use.line}")
    return entry


def _scope_words(scope: tuple[str | None, str | None]) -> str:
    parts = [f"arch {scope[0]}" if scope[0] else "", f"hypervisor {scope[1]}" if scope[1] else ""]
    text = ", ".join(p for p in parts if p)
    return f" ({text})" if text else ""


def _base_hint(entry: dict, base: Snapshot, component: str, scope, new: Version) -> dict:
    nxt = find_next(base, component, scope)
    if nxt is not None and nxt.value is not None and nxt.value >= new:
        entry["evidence"] += (f"; {nxt.name} = {nxt.value} exists only on the unreleased base branch "
                              f"({nxt.file}:{nxt.line}), so no release has warned yet")
    return entry
