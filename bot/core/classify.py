"""What a constant means, from its name: component, kind and scope.

Defaults follow Nova's naming (`MIN_<C>_VERSION` hard, `NEXT_MIN_<C>_VERSION`
the deprecation marker, `MIN_<C>_<FEATURE>_VERSION` a feature gate,
`MIN_<C>_OTHER_ARCH` a per-architecture table); a repository's config can
override any constant.
"""

from __future__ import annotations

TYPE_CHECKING = False

from bot.core.matrix import norm_arch
from bot.core.records import Record

if TYPE_CHECKING:
    from bot.core.config import Config

KINDS = ("hard", "feature", "next", "denylist")

ARCH_TOKENS = {
    "S390": "s390x", "S390X": "s390x", "PPC64": "ppc64", "PPC64LE": "ppc64le", "PPCLE": "ppc64le",
    "AARCH64": "aarch64", "ARM64": "aarch64", "ARMV7": "armhf", "X86": "x86_64", "X86_64": "x86_64",
    "I686": "i686", "MIPS": "mips",
}
NEUTRAL_TOKENS = {"KVM", "VERSION", "VERSIONS", "VER", "HOST"}


class Meaning(Record):
    component: str
    kind: str
    arch: str | None = None
    hypervisor: str | None = None
    per_arch: bool = False


def classify(name: str, cfg: Config) -> Meaning | None:
    """The meaning of `name`, or None when minbump should not watch it."""
    override = cfg.constants.get(name) or {}
    if override.get("ignore"):
        return None
    derived = _from_name(name, cfg)
    if not override:
        return derived
    if derived is None and not override.get("component"):
        return None
    base = derived or Meaning(override["component"], override.get("kind", "hard"))
    return Meaning(
        component=override.get("component", base.component),
        kind=override.get("kind", base.kind),
        arch=norm_arch(override["arch"]) if override.get("arch") else base.arch,
        hypervisor=override.get("hypervisor", base.hypervisor),
        per_arch=bool(override.get("per_arch", base.per_arch)),
    )


_MAPS: dict[int, tuple[object, object, dict[str, str], dict[str, str]]] = {}


def _token_maps(cfg: Config) -> tuple[dict[str, str], dict[str, str]]:
    """Upper-cased token maps, built once per config (a module may hold 1,000 constants)."""
    hit = _MAPS.get(id(cfg))
    if hit is None or hit[0] is not cfg.components or hit[1] is not cfg.hypervisors:
        hit = (cfg.components, cfg.hypervisors, {k.upper(): v for k, v in cfg.components.items()},
               {k.upper(): v for k, v in cfg.hypervisors.items()})
        if len(_MAPS) > 64:
            _MAPS.clear()
        _MAPS[id(cfg)] = hit
    return hit[2], hit[3]


def _from_name(name: str, cfg: Config) -> Meaning | None:
    tokens = name.upper().split("_")
    if tokens[:2] == ["NEXT", "MIN"]:
        kind, rest = "next", tokens[2:]
    elif tokens[0] == "MIN":
        kind, rest = "hard", tokens[1:]
    elif tokens[0] in ("BAD", "DENY", "DENYLIST", "BLACKLIST", "BROKEN"):
        kind, rest = "denylist", tokens[1:]
    else:
        return None
    comps, hvs = _token_maps(cfg)
    component = hypervisor = arch = None
    leftover: list[str] = []
    i = 0
    while i < len(rest):
        tok = rest[i]
        pair = f"{tok}_{rest[i + 1]}" if i + 1 < len(rest) else None
        if component is None and tok in comps:
            component = comps[tok]
        elif pair in ARCH_TOKENS:
            arch = ARCH_TOKENS[pair]
            i += 1
        elif tok in ARCH_TOKENS:
            arch = ARCH_TOKENS[tok]
        elif tok in hvs and hypervisor is None:
            hypervisor = hvs[tok]
        elif tok not in NEUTRAL_TOKENS:
            leftover.append(tok)
        i += 1
    if component is None:
        if hypervisor is None:
            return None
        component = hypervisor  # MIN_VIRTUOZZO_VERSION: the hypervisor's own version
    if leftover == ["OTHER", "ARCH"] or leftover == ["ARCH"]:
        return Meaning(component, "hard" if kind != "next" else "next", per_arch=True)
    if kind == "hard" and leftover:
        kind = "feature"
    return Meaning(component, kind, arch, hypervisor)
