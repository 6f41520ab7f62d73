"""What the support matrix does not know yet: the list a data maintainer works through.

Pure: given the matrix, a date and the releases an importer has seen
(endoflife.date, repology), it lists every still-supported release whose
libvirt/QEMU cell is unknown or low confidence, and every release the
importers know that the matrix lacks. `minbump matrix audit` prints it; CI
runs it for information and never fails on a finding.
"""

from __future__ import annotations

from datetime import date

from bot.core.matrix import Cell, Matrix, Platform
from bot.core.records import Record

UNKNOWN = "unknown"
LOW = "low-confidence"
MISSING = "missing-release"


class KnownRelease(Record):
    """A release an importer's source lists; `ids` are the matrix ids it may go by (first: the one to add)."""

    source: str
    release: str
    ids: tuple[str, ...]
    released: date | None = None
    eol: date | None = None


class Finding(Record):
    kind: str  # UNKNOWN | LOW | MISSING
    platform: str
    label: str
    component: str | None
    minor: str | None
    detail: str
    support_end: date | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "platform": self.platform, "label": self.label, "component": self.component,
                "minor": self.minor, "detail": self.detail,
                "support_end": self.support_end.isoformat() if self.support_end else None}


def _weak(cell: Cell) -> str | None:
    if cell.version is None:
        return UNKNOWN
    if cell.confidence == "low":
        return LOW
    return None


def _cells_in_use(matrix: Matrix, p: Platform, component: str, day: date, rule: str) -> list[tuple[str | None, Cell]]:
    """(minor or None, cell) for what up-to-date installs of `p` run on `day`: the newest minor, and older
    minors of the vendor's own that are still supported under `rule` (EUS, E4S). A component the release
    does not list at all is not its concern (as in the analysis)."""
    minors = [m for m in matrix.minors_on(p, day) if component in m.ships]
    if not minors:
        return [(None, p.shipped(component, day))] if p.knows(component) else []
    out: list[tuple[str | None, Cell]] = [(minors[-1].minor, minors[-1].ships[component])]
    if p.minors:  # a rebuild's minors are its upstream's: reported there
        out += [(m.minor, m.ships[component]) for m in minors[:-1] if matrix.minor_supported(p, m, day, rule)]
    return out


def weak_cells(matrix: Matrix, day: date, rule: str = "standard") -> list[Finding]:
    """Every supported release's libvirt/QEMU cell that is unknown or low confidence on `day`."""
    out: list[Finding] = []
    for p in matrix.in_scope():
        if not p.supported_on(day, rule):
            continue
        end = p.support_end(rule)
        for c in matrix.components:
            for minor, cell in _cells_in_use(matrix, p, c, day, rule):
                kind = _weak(cell)
                if kind is None:
                    continue
                label = f"{p.label.rsplit(' ', 1)[0]} {minor}" if minor else p.label
                detail = "not known" if kind == UNKNOWN else f"{cell.version} (low confidence)"
                out.append(Finding(kind, p.id, label, c, minor, detail, end))
    return out


def missing_releases(matrix: Matrix, known: list[KnownRelease] | tuple[KnownRelease, ...], day: date) -> list[Finding]:
    """Releases an importer's source lists that the matrix has under none of their ids."""
    out: list[Finding] = []
    seen: set[str] = set()
    for k in known:
        if not k.ids or any(i in matrix.by_id for i in k.ids) or k.ids[0] in seen:
            continue
        seen.add(k.ids[0])
        when = [f"released {k.released.isoformat()}" if k.released else None,
                (f"support ended {k.eol.isoformat()}" if k.eol <= day else f"support ends {k.eol.isoformat()}")
                if k.eol else None]
        extra = ", ".join(w for w in when if w)
        out.append(Finding(MISSING, k.ids[0], k.release, None, None,
                           f"{k.source} lists it" + (f" ({extra})" if extra else "") + "; the matrix lacks it",
                           k.eol))
    return out


def audit(matrix: Matrix, day: date, rule: str = "standard",
          known: list[KnownRelease] | tuple[KnownRelease, ...] = ()) -> list[Finding]:
    """The whole list, unknown cells first (they make answers incomplete), then low confidence, then missing
    releases."""
    order = {UNKNOWN: 0, LOW: 1, MISSING: 2}
    found = weak_cells(matrix, day, rule) + missing_releases(matrix, known, day)
    return sorted(found, key=lambda f: order[f.kind])  # stable: matrix order within a kind
