"""The support matrix: which component versions each distribution release ships, and until when.

Loaded from `policy/matrix.yaml` (plus project-local override files); every
fact keeps its sources and confidence so a report can say why it believes
"RHEL 7.1 ships libvirt 1.2.8" and how sure it is.
"""

from __future__ import annotations

from datetime import date
from typing import overload  # typing is loaded already (bot.core.dates)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

from bot.core.dates import optional_day as _day
from bot.core.version import Version
from bot.core.records import Record, factory

CONFIDENCE_ORDER = {"low": 0, "medium": 1, "high": 2}
# Every platform runs KVM/QEMU. A platform's `hypervisors` list names the others it packages drivers for;
# where it is not recorded, mainstream drivers (lxc, xen) are assumed, Parallels/Virtuozzo never: only a
# Virtuozzo-style platform that lists them runs them.
DEFAULT_HYPERVISORS = ("kvm", "qemu")
LISTED_ONLY_HYPERVISORS = ("parallels", "virtuozzo")

# Architecture names as projects spell them -> the matrix's names.
ARCH_ALIASES = {
    "x86_64": "x86_64", "amd64": "x86_64", "x86-64": "x86_64", "i686": "i686", "i386": "i686",
    "aarch64": "aarch64", "arm64": "aarch64", "armv7": "armhf", "armv7l": "armhf", "armhf": "armhf",
    "ppc64le": "ppc64le", "ppc64el": "ppc64le", "ppc64": "ppc64", "ppc": "ppc64", "ppcle": "ppc64le",
    "s390x": "s390x", "s390": "s390x", "mips": "mips", "mipsel": "mipsel",
}


@overload
def norm_arch(name: str) -> str: ...
@overload
def norm_arch(name: None) -> None: ...
def norm_arch(name: str | None) -> str | None:
    """A spelling-independent architecture name (x86-64 and amd64 are one); None stays None."""
    if name is None:
        return None
    key = str(name).strip().lower().replace("-", "_")
    return ARCH_ALIASES.get(key, key)




def version_or_none(value: Any) -> Version | None:
    if value is None:
        return None
    try:
        return Version.parse(str(value))
    except ValueError:
        return None


def lower_confidence(*levels: str) -> str:
    return min(levels, key=lambda c: CONFIDENCE_ORDER.get(c, 0)) if levels else "low"


class Cell(Record):
    """One shipped version of one component, with how sure we are of it."""

    version: Version | None
    confidence: str = "low"
    package: str | None = None
    ga: Version | None = None


def _cell(raw: Any, default_conf: str = "low") -> Cell:
    if isinstance(raw, dict):
        return Cell(version_or_none(raw.get("version")), raw.get("confidence", default_conf),
                    raw.get("package"), version_or_none(raw.get("ga")))
    return Cell(version_or_none(raw), default_conf)


class Addon(Record):
    """An optional repository (Cloud Archive pocket, backports, layered product) on top of a release."""

    name: str
    kind: str
    ships: dict[str, Version]
    confidence: str = "low"
    enable: str | None = None
    derived_from: str | None = None
    notes: str | None = None


def _addon(raw: dict) -> Addon:
    ships = {c: v for c, v in ((c, version_or_none(x)) for c, x in (raw.get("ships") or {}).items()) if v}
    return Addon(raw["name"], raw.get("kind", "other"), ships, raw.get("confidence", "low"),
                 raw.get("enable"), raw.get("derived_from"), raw.get("notes"))


class SupportPhase(Record):
    """A named, dated support phase (EUS, E4S, LTSS...); `end` None when the vendor gives no date."""

    name: str
    end: date | None = None


class Minor(Record):
    """A minor release or service pack judged on its own (RHEL 7.1 is not RHEL 7.9).

    `support_end` is when the minor stops getting updates without an add-on
    (usually: the next minor ships); `extended` is the add-on that keeps it
    alive longer (EUS, E4S / Update Services for SAP). Both None: not recorded.
    """

    minor: str
    released: date | None
    ships: dict[str, Cell]
    addons: tuple[Addon, ...] = ()
    confidence: str = "low"
    stream: str | None = None
    support_end: date | None = None
    extended: SupportPhase | None = None


class Observation(Record):
    """A dated observation of a rolling release (CentOS Stream)."""

    as_of: date | None
    ships: dict[str, Version]
    source: str
    confidence: str


class Platform(Record):
    id: str
    distro: str
    release: str
    codename: str | None
    released: date | None
    eol: date | None
    extended_name: str | None
    extended_end: date | None
    arches: tuple[str, ...]
    other_arches: tuple[str, ...]
    ships: dict[str, Cell]
    minors: tuple[Minor, ...] = ()
    snapshots: tuple[Observation, ...] = ()
    addons: tuple[Addon, ...] = ()
    full_support_end: date | None = None
    confidence: dict[str, str] = factory(dict)
    sources: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    notes: str | None = None
    rebuild_of: str | None = None
    lts: bool = False
    hypervisors: tuple[str, ...] | None = None
    origin: str = "policy/matrix.yaml"
    raw: dict = factory(dict)

    @property
    def label(self) -> str:
        names = {"ubuntu": "Ubuntu", "debian": "Debian", "rhel": "RHEL", "centos": "CentOS",
                 "centos-stream": "CentOS Stream", "almalinux": "AlmaLinux", "rocky": "Rocky Linux",
                 "fedora": "Fedora", "sles": "SLES", "opensuse": "openSUSE"}
        name = names.get(self.distro, self.distro)
        if self.distro == "sles" and "." in self.release:
            major, sp = self.release.split(".", 1)
            return f"SLES {major}" + (f" SP{sp}" if sp != "0" else "")
        if self.distro == "opensuse" and self.codename and self.codename.startswith("Leap"):
            return f"openSUSE {self.codename}"
        text = f"{name} {self.release}"
        if self.codename and self.distro in ("ubuntu", "debian"):
            text += f" ({self.codename})"
        return text

    @property
    def major(self) -> str:
        return self.release.split(".", 1)[0]

    def support_end(self, rule: str = "standard") -> date | None:
        """End of support under `rule`: 'standard' (vendor's eol) or 'extended' (ESM, ELS, LTSS...)."""
        if rule == "extended" and self.extended_end:
            return max(self.extended_end, self.eol) if self.eol else self.extended_end
        return self.eol

    def supported_on(self, day: date, rule: str = "standard") -> bool:
        end = self.support_end(rule)
        if self.released and self.released > day:
            return False
        return end is None or end > day

    def released_by(self, day: date) -> bool:
        return self.released is None or self.released <= day

    def has_arch(self, arch: str | None) -> bool:
        if arch is None:
            return True
        arch = norm_arch(arch)
        every = {norm_arch(a) for a in self.arches}
        if arch == "ppc64":
            return "ppc64" in every or "ppc64le" in every
        return arch in every

    def runs_hypervisor(self, hypervisor: str | None) -> bool:
        """KVM/QEMU everywhere; others as `hypervisors` lists, or when not recorded, all but Parallels/Virtuozzo."""
        if hypervisor is None or hypervisor in DEFAULT_HYPERVISORS:
            return True
        if self.hypervisors is None:
            return hypervisor not in LISTED_ONLY_HYPERVISORS
        return hypervisor in self.hypervisors

    def shipped(self, component: str, day: date | None = None) -> Cell:
        """What an up-to-date install ships on `day`: for rolling releases the newest snapshot by then."""
        if self.snapshots and day is not None:
            best: Observation | None = None
            for snap in self.snapshots:
                if component in snap.ships and snap.as_of is not None and snap.as_of <= day:
                    if best is None or snap.as_of > (best.as_of or date.min):
                        best = snap
            if best is not None:
                return Cell(best.ships[component], best.confidence)
        return self.ships.get(component, Cell(None, "low"))

    def knows(self, component: str) -> bool:
        return component in self.ships


def _phase(raw: Any) -> SupportPhase | None:
    if not isinstance(raw, dict) or not raw.get("name"):
        return None
    return SupportPhase(str(raw["name"]), _day(raw.get("end")))


def _platform(raw: dict, origin: str) -> Platform:
    ext = raw.get("extended") or {}
    minors = tuple(
        Minor(str(m["minor"]), _day(m.get("released")),
              {c: _cell(x, m.get("confidence", "low")) for c, x in (m.get("ships") or {}).items()},
              tuple(_addon(a) for a in m.get("addons") or ()), m.get("confidence", "low"), m.get("stream"),
              _day(m.get("support_end")), _phase(m.get("extended")))
        for m in raw.get("minors") or ()
    )
    snaps = tuple(
        Observation(_day(s.get("as_of")),
                 {c: v for c, v in ((c, version_or_none(x)) for c, x in (s.get("ships") or {}).items()) if v},
                 s.get("source", ""), s.get("confidence", "medium"))
        for s in raw.get("snapshots") or ()
    )
    hv = raw.get("hypervisors")
    return Platform(
        id=raw["id"], distro=raw["distro"], release=str(raw["release"]), codename=raw.get("codename"),
        released=_day(raw.get("released")), eol=_day(raw.get("eol")),
        extended_name=ext.get("name") if isinstance(ext, dict) else None,
        extended_end=_day(ext.get("end")) if isinstance(ext, dict) else None,
        arches=tuple(norm_arch(a) for a in raw.get("arches") or ()),
        other_arches=tuple(norm_arch(a) for a in raw.get("other_arches") or ()),
        ships={c: _cell(x) for c, x in (raw.get("ships") or {}).items()},
        minors=minors, snapshots=snaps,
        addons=tuple(_addon(a) for a in raw.get("addons") or ()),
        full_support_end=_day(raw.get("full_support_end")),
        confidence=dict(raw.get("confidence") or {}),
        sources=tuple(raw.get("sources") or ()), conflicts=tuple(raw.get("conflicts") or ()),
        notes=raw.get("notes"), rebuild_of=raw.get("rebuild_of"), lts=bool(raw.get("lts")),
        hypervisors=tuple(hv) if hv is not None else None, origin=origin, raw=raw,
    )


class Matrix(Record):
    platforms: list[Platform]
    data_as_of: date | None = None
    components: tuple[str, ...] = ("libvirt", "qemu")
    source_refs: dict[str, str] = factory(dict)
    origins: list[str] = factory(list)
    out_of_scope: dict[str, str] = factory(dict)
    by_id: dict[str, Platform] = factory(dict)  # derived from platforms

    def __post_init__(self) -> None:
        self.by_id = {p.id: p for p in self.platforms}

    def get(self, pid: str) -> Platform | None:
        return self.by_id.get(pid)

    def minors_of(self, p: Platform) -> tuple[Minor, ...]:
        """A rebuild (CentOS, AlmaLinux, Rocky) follows its upstream's minors when it lists none."""
        if p.minors or not p.rebuild_of:
            return p.minors
        up = self.by_id.get(p.rebuild_of)
        return up.minors if up else ()

    def minors_on(self, p: Platform, day: date) -> list[Minor]:
        """Minors released by `day`, in order; an undated minor counts once the dated one before it does."""
        out: list[Minor] = []
        for m in self.minors_of(p):
            if m.released and m.released > day:
                break
            out.append(m)
        return out

    def minor_support_end(self, p: Platform, minor: Minor, rule: str = "standard") -> date | None:
        """When `minor` stops being supported under `rule`; None when the data does not give that day.

        The newest minor lasts as long as its release. An older one ends on its
        recorded `support_end` (under the extended rule, its EUS/E4S end if
        later), else when the next minor ships: a rebuild following its
        upstream's minors (AlmaLinux, Rocky, CentOS) has no EUS, and where the
        data records nothing, the vendor's next minor replaces it. A next minor
        with no release date leaves the end unknown, never "as long as the release".
        """
        minors = self.minors_of(p)
        i = next((k for k, m in enumerate(minors) if m is minor), len(minors) - 1)  # identity: no field compares
        if i + 1 >= len(minors):
            return p.support_end(rule)
        if p.rebuild_of and not p.minors:
            return minors[i + 1].released
        end = minor.support_end or minors[i + 1].released
        if rule == "extended" and minor.extended and minor.extended.end:
            end = max(end, minor.extended.end) if end else minor.extended.end
        return end

    def minor_supported(self, p: Platform, minor: Minor, day: date, rule: str = "standard") -> bool:
        """Is `minor` of `p` still supported on `day`? The newest released minor is while `p` is."""
        if not p.supported_on(day, rule) or (minor.released and minor.released > day):
            return False
        avail = self.minors_on(p, day)
        if avail and avail[-1] is minor:
            return True
        end = self.minor_support_end(p, minor, rule)
        return end is not None and end > day

    def knows_component(self, component: str) -> bool:
        return any(p.knows(component) for p in self.platforms)

    def in_scope(self) -> Iterable[Platform]:
        return (p for p in self.platforms if p.id not in self.out_of_scope)


def from_raw(raw: dict, origin: str) -> Matrix:
    return Matrix(
        platforms=[_platform(p, origin) for p in raw.get("platforms") or ()],
        data_as_of=_day(raw.get("data_as_of")),
        components=tuple(raw.get("components") or ("libvirt", "qemu")),
        source_refs=dict(raw.get("source_refs") or {}),
        origins=[origin],
    )


def apply_override(base: Matrix, raw: dict, origin: str) -> Matrix:
    """A project's own matrix file: replaces or adds platforms, or marks them out of scope."""
    platforms = {p.id: p for p in base.platforms}
    order = [p.id for p in base.platforms]
    for item in raw.get("platforms") or ():
        p = _platform(item, origin)
        if p.id not in platforms:
            order.append(p.id)
        platforms[p.id] = p
    out_of_scope = dict(base.out_of_scope)
    for item in raw.get("out_of_scope") or ():
        if isinstance(item, dict):
            out_of_scope[item["id"]] = item.get("reason", f"marked out of scope by {origin}")
        else:
            out_of_scope[str(item)] = f"marked out of scope by {origin}"
    m = Matrix([platforms[i] for i in order], base.data_as_of, base.components, base.source_refs,
               base.origins + [origin], out_of_scope)
    if raw.get("data_as_of"):  # the older date wins: an override must not hide stale shipped data
        theirs = _day(raw["data_as_of"])
        if theirs and (m.data_as_of is None or theirs < m.data_as_of):
            m.data_as_of = theirs
    return m


# Data older than this gets a warning: about one release cycle of the distributions it tracks.
DEFAULT_MAX_DATA_AGE_DAYS = 180


def freshness_warning(matrix: Matrix, today: date, max_days: int = DEFAULT_MAX_DATA_AGE_DAYS) -> str | None:
    """A one-line warning when the matrix is older than `max_days`: old data hides new releases and moved dates."""
    if matrix.data_as_of is None:
        return "the support matrix has no data_as_of date, so its age is unknown"
    age = (today - matrix.data_as_of).days
    if age > max_days:
        return (f"the support matrix data is {age} days old (as of {matrix.data_as_of.isoformat()}, "
                f"limit {max_days} days); update it, e.g. with `minbump matrix import`")
    return None
