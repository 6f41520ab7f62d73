"""Questions asked of the support matrix alone, with no repository: what ships on a day, what a minimum drops.

`minbump matrix show` and `matrix what-if` print these answers; keeping them
here (pure, no click) lets tests and other callers ask the same questions.
"""

from __future__ import annotations

from datetime import date

from bot.core.impact import dropped, shipped_on
from bot.core.matrix import Matrix, Platform
from bot.core.version import Version
from bot.errors import MinbumpError


def status(matrix: Matrix, p: Platform, day: date, rule: str) -> str:
    """One word for a platform on `day`: supported, ended, not yet released or out of scope."""
    if p.id in matrix.out_of_scope:
        return "out of scope"
    if p.released and p.released > day:
        return "not yet released"
    return "supported" if p.supported_on(day, rule) else "ended"


def show_rows(matrix: Matrix, components: list[str], day: date, rule: str, arch: str | None,
              include_all: bool) -> list[dict]:
    """What each platform ships on `day`, for table, csv and json alike."""
    out: list[dict] = []
    for p in matrix.platforms:
        if not p.has_arch(arch):
            continue
        state = status(matrix, p, day, rule)
        if state != "supported" and not include_all:
            continue
        ships: dict[str, dict] = {}
        minors = matrix.minors_on(p, day)
        for c in components:
            cell = shipped_on(matrix, p, c, day)
            entry: dict = {"version": str(cell.version) if cell.version else None, "confidence": cell.confidence}
            in_minor = [m for m in minors if c in m.ships]
            if in_minor:
                entry["minor"] = in_minor[-1].minor
            ships[c] = entry
        end = p.support_end(rule)
        row = {
            "platform": p.id, "label": p.label, "distro": p.distro, "release": p.release,
            "released": p.released.isoformat() if p.released else None,
            "eol": p.eol.isoformat() if p.eol else None,
            "extended_support": ({"name": p.extended_name, "end": p.extended_end.isoformat()}
                                 if p.extended_end else None),
            "support_end": end.isoformat() if end else None,
            "status": state, "supported": state == "supported",
            "arches": list(p.arches), "ships": ships,
            "confidence": {"dates": p.confidence.get("dates", "low")},
            "data_origin": p.origin,
        }
        if p.id in matrix.out_of_scope:
            row["out_of_scope"] = matrix.out_of_scope[p.id]
        out.append(row)
    return out


def what_if(matrix: Matrix, component: str, version: str, day: date, rule: str,
            arch: str | None, hypervisor: str | None) -> dict:
    """The JSON answer of `matrix what-if`: the platforms a minimum of `version` would drop on `day`."""
    try:
        need = Version.parse(version)
    except ValueError:
        raise MinbumpError(f"{version!r} is not a version (e.g. 8.0.0)") from None
    items = dropped(matrix, component, None, need, day=day, rule=rule, arch=arch, hypervisor=hypervisor)
    return {"as_of": day.isoformat(), "support_rule": rule, "impacted": [i.to_dict() for i in items]}


def what_if_groups(matrix: Matrix, impacted: list[dict], day: date, rule: str) -> dict[str, list[dict]]:
    """Split `impacted` for reading: still supported, no longer supported, version not known.

    A minor release whose own support ended (superseded by a later minor,
    its EUS/E4S over) counts as no longer supported even while its major is,
    by `Matrix.minor_supported`; its row shows when the minor's support ended.
    A minor kept alive by an add-on (EUS, E4S) shows when that ends.
    """
    groups: dict[str, list[dict]] = {"live": [], "gone": [], "unknown": []}
    for i in impacted:
        if i["shipped"] is None:
            groups["unknown"].append(i)
            continue
        p = matrix.get(i["platform"])
        minor = next((m for m in matrix.minors_of(p) if m.minor == i["minor"]), None) if p and i["minor"] else None
        if i["still_supported"] and p is not None and minor is not None:
            end = matrix.minor_support_end(p, minor, rule)
            if not matrix.minor_supported(p, minor, day, rule):
                i = {**i, "still_supported": False, "support_end": end.isoformat() if end else i["support_end"],
                     "superseded": True}
            elif end and matrix.minors_on(p, day)[-1] != minor:  # kept alive by EUS/E4S: until then
                i = {**i, "support_end": end.isoformat()}
        if i.get("superseded_by"):  # the analysis judged the minor already (bot.core.impact)
            i = {**i, "superseded": True}
        groups["live" if i["still_supported"] else "gone"].append(i)
    return groups
