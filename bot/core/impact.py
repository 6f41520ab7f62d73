"""Which platforms a raised minimum newly drops, and what their operators can do about it.

Pure: takes the matrix, a component, old and new minimums, a scope and a
date; returns entries in the JSON contract's `impacted` shape.
"""

from __future__ import annotations

from datetime import date

from bot.core.matrix import Addon, Cell, Matrix, Minor, Platform, lower_confidence
from bot.core.version import Version, vstr
from bot.core.records import Record

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
    mitigations: list[dict] = list

    @property
    def label(self) -> str:
        if self.minor:
            return f"{_product(self.platform)} {self.minor}"
        return self.platform.label

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
        }


def available_minors(matrix: Matrix, p: Platform, day: date) -> list[Minor]:
    """Minors released by `day`; undated minors count as out if a dated minor before them is."""
    out: list[Minor] = []
    for m in matrix.minors_of(p):
        if m.released and m.released > day:
            break
        out.append(m)
    return out


def shipped_on(matrix: Matrix, p: Platform, component: str, day: date) -> Cell:
    """What an up-to-date install of `p` has on `day`: its newest minor by then, or its snapshot."""
    minors = [m for m in available_minors(matrix, p, day) if component in m.ships]
    if minors:
        return minors[-1].ships[component]
    return p.shipped(component, day)


def _addon_ok(matrix: Matrix, addon: Addon, component: str, need: Version, day: date) -> bool:
    v = addon.ships.get(component)
    if v is None or v < need:
        return False
    if addon.derived_from:  # a Cloud Archive pocket exists once its source release does
        src = matrix.get(addon.derived_from)
        if src and src.released and src.released > day:
            return False
    return True


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
    for addon in addons:
        if _addon_ok(matrix, addon, component, need, day):
            out.append(_addon_mitigation(addon, component))
    if minor is not None:
        for m in available_minors(matrix, p, day):
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


def dropped(matrix: Matrix, component: str, old: Version | None, new: Version, *, day: date,
            rule: str = "standard", arch: str | None = None, hypervisor: str | None = None,
            exclude: set[str] | None = None) -> list[Impacted]:
    """Platforms that meet `old` (or anything, when old is None) but not `new`, as of `day`.

    Platforms not yet released on `day` are left out; unknown versions are
    reported as unknown. `exclude` skips platform ids already reported for a
    wider scope.
    """
    out: list[Impacted] = []
    for p in matrix.in_scope():
        if exclude and p.id in exclude:
            continue
        if not (p.released_by(day) and p.has_arch(arch) and p.runs_hypervisor(hypervisor)
                and p.knows(component)):
            continue
        supported = p.supported_on(day, rule)
        end = p.support_end(rule)
        cell = shipped_on(matrix, p, component, day)
        conf = lower_confidence(cell.confidence, p.confidence.get("dates", "low")) if supported else cell.confidence
        if cell.version is None:
            out.append(Impacted(p, component, arch, hypervisor, None, new, supported, end, "low"))
            continue
        if cell.version < new and (old is None or cell.version >= old):
            imp = Impacted(p, component, arch, hypervisor, cell.version, new, supported, end, conf)
            imp.mitigations = mitigations_for(matrix, p, component, new, day)
            out.append(imp)
            continue
        if cell.version < new:
            continue  # already below the old minimum: not newly dropped
        # The newest minor is fine; older minors still in use may not be.
        minors = available_minors(matrix, p, day)
        for m in minors[:-1]:
            mc = m.ships.get(component)
            if mc is None or mc.version is None:
                continue
            if mc.version < new and (old is None or mc.version >= old):
                imp = Impacted(p, component, arch, hypervisor, mc.version, new, supported, end,
                               mc.confidence, minor=m.minor)
                imp.mitigations = mitigations_for(matrix, p, component, new, day, minor=m)
                out.append(imp)
    return out
