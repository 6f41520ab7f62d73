"""Which platforms a raised minimum newly drops, and what their operators can do about it.

Pure: takes the matrix, a component, old and new minimums, a scope and a
date; returns entries in the JSON contract's `impacted` shape.
"""

from __future__ import annotations

from datetime import date

from bot.core.matrix import Addon, Cell, Matrix, Minor, Platform, lower_confidence
from bot.core.version import Version, vstr
from bot.core.records import Record, factory

# Distros whose dotted releases are service packs of one product (SLES 12 SP1,
# Leap 15.3): moving to a later one is an in-product upgrade, a mitigation.
SERVICE_PACK_DISTROS = {"sles", "opensuse"}


class Impacted(Record):
    platform: Platform
    component: str
    arch: str | None
    hypervisor: str | None
    shipped: Version | None
    required: Version
    still_supported: bool
    support_end: date | None
    confidence: str
    minor: str | None = None
    mitigations: list[dict] = factory(list)
    via: str | None = None            # the add-on repository that kept this platform in use
    superseded_by: str | None = None  # an older minor release: the minor that ended its support

    @property
    def label(self) -> str:
        text = f"{_product(self.platform)} {self.minor}" if self.minor else self.platform.label
        return f"{text} with {self.via}" if self.via else text

    def to_dict(self) -> dict:
        p = self.platform
        return {
            "platform": p.id, "distro": p.distro, "release": p.release, "minor": self.minor,
            "label": self.label,
            "component": self.component,
            "scope": {"arch": self.arch, "hypervisor": self.hypervisor},
            "shipped": vstr(self.shipped), "required": vstr(self.required),
            "eol": p.eol.isoformat() if p.eol else None,
            "support_end": self.support_end.isoformat() if self.support_end else None,
            "extended_support": ({"name": p.extended_name, "end": p.extended_end.isoformat()}
                                 if p.extended_end else None),
            "still_supported": self.still_supported,
            "confidence": self.confidence,
            "mitigations": self.mitigations,
            "data_origin": p.origin,
            "via": self.via,
            "superseded_by": self.superseded_by,
        }


def shipped_on(matrix: Matrix, p: Platform, component: str, day: date,
               minors: list[Minor] | None = None) -> Cell:
    """What an up-to-date install of `p` has on `day`: its newest minor by then, or its snapshot.

    `minors`: `matrix.minors_on(p, day)` when the caller has it already.
    """
    for m in reversed(matrix.minors_on(p, day) if minors is None else minors):
        if component in m.ships:
            return m.ships[component]
    return p.shipped(component, day)


def _addon_ok(matrix: Matrix, addon: Addon, component: str, need: Version, day: date) -> bool:
    v = addon.ships.get(component)
    return v is not None and v >= need and _addon_available(matrix, addon, day)


def _addon_mitigation(addon: Addon, component: str) -> dict:
    out = {"kind": addon.kind, "name": addon.name, "version": vstr(addon.ships[component]),
           "confidence": addon.confidence}
    if addon.enable:
        out["enable"] = addon.enable
    return out


def mitigations_for(matrix: Matrix, p: Platform, component: str, need: Version, day: date,
                    minor: Minor | None = None) -> list[dict]:
    out: list[dict] = []
    addons = list(p.addons) + (list(minor.addons) if minor else [])
    # Oldest sufficient add-on first: the smallest step out.
    for addon in sorted((a for a in addons if _addon_ok(matrix, a, component, need, day)),
                        key=lambda a: a.ships[component]):
        mitigation = _addon_mitigation(addon, component)
        if mitigation not in out:
            out.append(mitigation)
    if minor is not None:
        for m in matrix.minors_on(p, day):
            cell = m.ships.get(component)
            if cell and cell.version and cell.version >= need and _minor_key(m) > _minor_key(minor):
                out.append({"kind": "minor-release", "name": f"{_product(p)} {m.minor}+",
                            "version": vstr(cell.version), "confidence": cell.confidence})
                break
    elif p.distro in SERVICE_PACK_DISTROS and _service_pack_line(p):
        for sib in matrix.platforms:
            if (sib.distro == p.distro and sib.major == p.major and sib.id != p.id and _service_pack_line(sib)
                    and _rel_key(sib.release) > _rel_key(p.release) and sib.released_by(day)):
                cell = sib.shipped(component, day)
                if cell.version and cell.version >= need:
                    kind = "service-pack" if p.distro == "sles" else "point-release"
                    out.append({"kind": kind, "name": f"{sib.label}+",
                                "version": vstr(cell.version), "confidence": cell.confidence})
                    break
    return out


def _service_pack_line(p: Platform) -> bool:
    """SLES service packs and openSUSE Leap point releases; openSUSE 12.x/13.x were separate releases."""
    return p.distro == "sles" or bool(p.codename and str(p.codename).startswith("Leap"))


def _product(p: Platform) -> str:
    return {"rhel": "RHEL", "centos": "CentOS", "almalinux": "AlmaLinux", "rocky": "Rocky Linux"}.get(
        p.distro, p.label.rsplit(" ", 1)[0])


def _rel_key(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split("."))
    except ValueError:
        return (0,)


def _minor_key(m: Minor) -> tuple[int, ...]:
    return _rel_key(m.minor)


def _addon_available(matrix: Matrix, addon: Addon, day: date) -> bool:
    """A Cloud Archive pocket exists once its source release does."""
    if addon.derived_from:
        src = matrix.get(addon.derived_from)
        if src and src.released and src.released > day:
            return False
    return True


def _unit_addons(matrix: Matrix, p: Platform, day: date, minor: Minor | None) -> list[Addon]:
    """Add-ons for a unit: an older minor's own plus the platform's; the current state: the newest minor's too."""
    if minor is not None:
        addons = list(minor.addons) + list(p.addons)
    else:
        minors = matrix.minors_on(p, day)
        addons = (list(minors[-1].addons) if minors else []) + list(p.addons)
    return [a for a in addons if _addon_available(matrix, a, day)]


def dropped(matrix: Matrix, component: str, old: Version | None, new: Version, *, day: date,
            rule: str = "standard", arch: str | None = None, hypervisor: str | None = None,
            exclude: set | None = None, others: dict[str, Version] | None = None) -> list[Impacted]:
    """Platforms in use that meet `old` (or anything, when old is None) but not `new`, as of `day`.

    A platform is in use by its base repositories or, when those are below an
    old minimum (of this component or, via `others`, of another one), through
    the oldest add-on repository with which it meets them all; `via` names it
    (Ubuntu 12.04 with UCA folsom). Platforms not yet released on `day` are
    left out; unknown versions come back with `shipped` None, for the caller
    to keep apart. Older minor releases are judged on their own: supported
    until the next minor ships unless the data gives them an extended end.
    `exclude` skips platform ids (or (id, minor) pairs) already reported for a
    wider scope.
    """
    olds = dict(others or {})
    if old is not None:
        olds[component] = old
    out: list[Impacted] = []
    for p in matrix.in_scope():
        if exclude and p.id in exclude:
            continue
        if not (p.released_by(day) and p.has_arch(arch) and p.runs_hypervisor(hypervisor)
                and p.knows(component)):
            continue
        supported = p.supported_on(day, rule)
        minors = matrix.minors_on(p, day)
        units: list[Minor | None] = [None] + (minors[:-1] if supported else [])  # an ended release: once
        for m in units:
            if m is not None and exclude and (p.id, m.minor) in exclude:
                continue
            state, hit = _judge_unit(matrix, p, m, minors, component, olds, new, day, supported, rule)
            if hit is not None:
                hit.arch, hit.hypervisor = arch, hypervisor
                out.append(hit)
            if m is None and state in ("out", "dropped"):
                break  # the release as updated is out or dropped: its older minors are too
    return out


def _judge_unit(matrix: Matrix, p: Platform, m: Minor | None, minors: list[Minor], component: str,
                olds: dict[str, Version], new: Version, day: date, supported: bool,
                rule: str) -> tuple[str, Impacted | None]:
    """One unit (the release as updated, or an older minor): its state and the entry if `new` drops it.

    States: "out" (below an old minimum even with its add-ons), "dropped" (by
    its base repositories), "via" (dropped, in use through an add-on), "fine",
    "unknown" (its version of `component` is not known).
    """
    comps = [c for c in olds if p.knows(c)] + ([component] if component not in olds else [])
    if m is None:
        base = {c: shipped_on(matrix, p, c, day, minors) for c in comps}
        still, end, superseded = supported, p.support_end(rule), None
        conf = (lower_confidence(base[component].confidence, p.confidence.get("dates", "low"))
                if supported else base[component].confidence)
    else:
        base = {c: m.ships.get(c) or Cell(None) for c in comps}
        if base[component].version is None:
            return "fine", None  # an older minor without data: the release itself is judged
        nxt = _next_minor(minors, m)
        end = matrix.minor_support_end(p, m, rule)
        still = supported and end is not None and end > day
        superseded = None if still else (f"{_product(p)} {nxt.minor}" if nxt else None)
        conf = base[component].confidence
    minor = m.minor if m else None

    def version(addon: Addon | None, c: str) -> Version | None:
        return addon.ships[c] if addon is not None and c in addon.ships else base[c].version

    def in_use(addon: Addon | None) -> bool:
        return all((v := version(addon, c)) is None or v >= o for c, o in olds.items() if c in base)

    via: Addon | None = None
    if not in_use(None):
        fits = [a for a in _unit_addons(matrix, p, day, m) if in_use(a)]
        if not fits:
            return "out", None
        via = min(fits, key=lambda a: version(a, component) or Version((0,)))
    shipped = version(via, component)
    if shipped is None:
        return "unknown", Impacted(p, component, None, None, None, new, still, end, "low", minor=minor,
                                   via=via.name if via else None, superseded_by=superseded)
    if shipped >= new:
        return "fine", None
    if via is not None:
        conf = lower_confidence(conf, via.confidence)
    imp = Impacted(p, component, None, None, shipped, new, still, end, conf, minor=minor,
                   via=via.name if via else None, superseded_by=superseded)
    imp.mitigations = mitigations_for(matrix, p, component, new, day, minor=m)
    return ("via" if via else "dropped"), imp


def _next_minor(minors: list[Minor], m: Minor) -> Minor | None:
    for i, x in enumerate(minors):
        if x is m:
            return minors[i + 1] if i + 1 < len(minors) else None
    return None
