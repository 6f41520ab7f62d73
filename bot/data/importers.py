"""Update the support matrix from data people already publish: endoflife.date and repology.

Pure functions over the raw matrix mapping (as parsed from YAML, dates as
`datetime.date`): they return the updated mapping plus a list of changes to
show as a diff. Nothing here reads the clock or the network except
`fetch_json`, which the CLI calls only when given `--url`.

Rules: dates follow endoflife.date (a moved date takes the new value); versions
only move forward (an older version seen elsewhere is recorded, not applied).
Every changed fact gets the importer's source appended to the platform's
`sources`, and when the old value disagrees it is kept in `conflicts`.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from bot.errors import MinbumpError
from bot.core.dates import parse_day
from bot.core.data_audit import KnownRelease
from bot.core.matrix import version_or_none
from bot.core.version import Version

# endoflife.date product -> (matrix distro, platform id prefix)
EOL_PRODUCTS: dict[str, tuple[str, str]] = {
    "ubuntu": ("ubuntu", "ubuntu"), "debian": ("debian", "debian"), "rhel": ("rhel", "rhel"),
    "centos": ("centos", "centos"), "centos-stream": ("centos-stream", "centos-stream"),
    "almalinux": ("almalinux", "almalinux"), "rocky-linux": ("rocky", "rocky"), "rocky": ("rocky", "rocky"),
    "fedora": ("fedora", "fedora"), "sles": ("sles", "sles"), "opensuse": ("opensuse", "opensuse"),
}

# What each distro calls its extended phase when endoflife.date gives only a date.
EXTENDED_NAMES = {"ubuntu": "ESM (Ubuntu Pro)", "debian": "LTS", "rhel": "ELS", "sles": "LTSS"}

# repology repository name prefix -> platform id prefix (the rest is the release, "_" for ".")
REPOLOGY_REPOS: list[tuple[str, str]] = [
    ("centos_stream_", "centos-stream"), ("opensuse_leap_", "opensuse"), ("ubuntu_", "ubuntu"),
    ("debian_", "debian"), ("centos_", "centos"), ("fedora_", "fedora"), ("almalinux_", "almalinux"),
    ("rocky_", "rocky"), ("rockylinux_", "rocky"),
]

# repology statuses that say the version string is not a real upstream version
_REPOLOGY_BAD = {"ignored", "incorrect", "untrusted", "noscheme", "rolling"}


@dataclass
class Change:
    """One fact the import touched, for the printed diff."""

    platform: str
    key: str
    old: Any
    new: Any
    kind: str  # "added" | "changed" | "new-platform" | "kept" (disagrees; ours kept) | "skipped"

    def line(self) -> str:
        old, new = _txt(self.old), _txt(self.new)
        if self.kind == "new-platform":
            return f"+ {self.platform}: new release ({new})"
        if self.kind == "added":
            return f"+ {self.platform}: {self.key} = {new}"
        if self.kind == "changed":
            return f"~ {self.platform}: {self.key} {old} -> {new}"
        if self.kind == "kept":
            return f"! {self.platform}: {self.key} source says {new}, kept {old} (noted in conflicts)"
        return f"? {self.platform}: {self.key}: {new}"


@dataclass
class ImportResult:
    data: dict
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.kind != "skipped" for c in self.changes)

    def diff_text(self) -> str:
        if not self.changes:
            return "no changes"
        lines = [c.line() for c in self.changes]
        counts: dict[str, int] = {}
        for c in self.changes:
            counts[c.kind] = counts.get(c.kind, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in counts.items())
        return "\n".join(lines + [f"({summary})"])


def _txt(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# ------------------------------------------------------------- reading ---

def load_json_file(path: str | Path) -> Any:
    """A downloaded API answer; a one-line error for anything unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MinbumpError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MinbumpError(f"{path}: not valid JSON: {exc}") from None


def fetch_json(url: str, timeout: float = 20.0) -> Any:
    """GET a JSON document; offline or HTTP errors become one line."""
    import urllib.error
    import urllib.request

    if not url.startswith(("https://", "http://")):
        raise MinbumpError(f"{url}: only http(s) URLs can be fetched")
    req = urllib.request.Request(url, headers={"User-Agent": "minbump-matrix-import",
                                               "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (scheme checked above)
            body = resp.read()
    except urllib.error.HTTPError as exc:
        raise MinbumpError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MinbumpError(f"{url}: cannot fetch ({reason}); download it and pass the file instead") from None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise MinbumpError(f"{url}: answer is not JSON: {exc}") from None


def _as_date(value: Any) -> date | bool | None:
    """endoflife.date fields are a date, a boolean (known yes/no, date unknown) or absent."""
    if value is None or isinstance(value, bool):
        return value
    try:
        return parse_day(value)
    except ValueError:
        raise MinbumpError(f"not a date or boolean: {value!r}") from None


def parse_endoflife(payload: Any) -> list[dict]:
    """Both API shapes -> [{cycle, released, support, eol, extended, lts, codename, latest}].

    Classic `/api/<product>.json` is a list of cycles; v1 `/api/v1/products/<p>/`
    wraps releases in `result` and names fields `eolFrom`/`isEol` etc.
    """
    if isinstance(payload, dict) and isinstance(payload.get("result"), dict):
        releases = payload["result"].get("releases")
        if not isinstance(releases, list):
            raise MinbumpError("endoflife.date v1 answer has no result.releases list")
        out = []
        for r in releases:
            if not isinstance(r, dict) or "name" not in r:
                raise MinbumpError("endoflife.date v1 release without a name")
            latest = r.get("latest")
            out.append({
                "cycle": str(r["name"]),
                "released": _as_date(r.get("releaseDate")),
                "support": _as_date(r.get("eoasFrom") if r.get("eoasFrom") else r.get("isEoas")),
                "eol": _as_date(r.get("eolFrom") if r.get("eolFrom") else r.get("isEol")),
                "extended": _as_date(r.get("eoesFrom") if r.get("eoesFrom") else r.get("isEoes")),
                "lts": bool(r.get("isLts")),
                "codename": r.get("codename"),
                "latest": latest.get("name") if isinstance(latest, dict) else latest,
            })
        return out
    if isinstance(payload, list):
        out = []
        for r in payload:
            if not isinstance(r, dict) or "cycle" not in r:
                raise MinbumpError("endoflife.date answer: every item needs a 'cycle'")
            out.append({
                "cycle": str(r["cycle"]),
                "released": _as_date(r.get("releaseDate")),
                "support": _as_date(r.get("support")),
                "eol": _as_date(r.get("eol")),
                "extended": _as_date(r.get("extendedSupport")),
                "lts": bool(r.get("lts")),
                "codename": r.get("codename"),
                "latest": r.get("latest"),
            })
        return out
    raise MinbumpError("not an endoflife.date answer (expected a list of cycles or {result: {releases}})")


# ------------------------------------------------------------ updating ---

class _Recorder:
    """Applies changes to one platform, appending the source and noting disagreements."""

    def __init__(self, result: ImportResult, source: str) -> None:
        self.result = result
        self.source = source
        self.touched: dict[str, list[str]] = {}

    def note(self, plat: dict, key: str, old: Any, new: Any, kind: str) -> None:
        self.result.changes.append(Change(plat["id"], key, old, new, kind))
        if kind in ("added", "changed", "kept"):
            self.touched.setdefault(plat["id"], []).append(key)
        if kind in ("changed", "kept"):
            chosen = new if kind == "changed" else old
            plat.setdefault("conflicts", []).append(
                f"{key}: {_txt(old)} before {self.source} gave {_txt(new)}; chosen: {_txt(chosen)}")

    def finish(self, platforms: list[dict]) -> None:
        by_id = {p["id"]: p for p in platforms}
        for pid, keys in self.touched.items():
            uniq = list(dict.fromkeys(keys))
            by_id[pid].setdefault("sources", []).append(f"{', '.join(uniq)}: {self.source}")


def candidate_ids(prefix: str, release: str) -> list[str]:
    """The matrix ids a source's release may go by: `sles-15` is `sles-15.0`, `fedora-40.0` is `fedora-40`."""
    cands = [f"{prefix}-{release}"]
    if "." not in release:
        cands.append(f"{prefix}-{release}.0")
    elif release.endswith(".0"):
        cands.append(f"{prefix}-{release[:-2]}")
    return cands


def _find(platforms: list[dict], prefix: str, release: str) -> dict | None:
    cands = candidate_ids(prefix, release)
    for p in platforms:
        if p.get("id") in cands:
            return p
    return None


def _set_date(rec: _Recorder, plat: dict, key: str, new: date | bool | None, today: date) -> None:
    """Dates follow the source; a boolean only checks our date and never replaces it."""
    path = key.split(".")
    holder = plat
    for part in path[:-1]:
        holder = holder.get(part) or {}
    old = holder.get(path[-1]) if isinstance(holder, dict) else None
    if old is not None and not isinstance(old, date):
        old = _as_date(old)
    if new is None:
        return
    if isinstance(new, bool):
        if key == "eol" and isinstance(old, date) and new != (old <= today):
            rec.note(plat, key, old, "already ended" if new else "not ended yet", "kept")
        return
    if old == new:
        return
    if key == "extended.end" and not isinstance(plat.get("extended"), dict):
        plat["extended"] = {"name": EXTENDED_NAMES.get(plat.get("distro", ""), "extended support"), "end": new}
        rec.note(plat, key, None, new, "added")
        return
    target = plat
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    rec.note(plat, key, old, new, "added" if old is None else "changed")


def _new_platform(distro: str, prefix: str, c: dict, source: str) -> dict:
    release = c["cycle"]
    if distro in ("sles",) and "." not in release:
        release += ".0"
    codename = c.get("codename")
    if distro == "ubuntu" and codename:
        codename = str(codename).split()[0].lower()
    p: dict = {"id": f"{prefix}-{release}", "distro": distro, "release": release, "codename": codename}
    if c.get("lts"):
        p["lts"] = True
    p["released"] = c["released"] if isinstance(c.get("released"), date) else None
    if isinstance(c.get("support"), date) and isinstance(c.get("eol"), date) and c["support"] != c["eol"]:
        p["full_support_end"] = c["support"]
    p["eol"] = c["eol"] if isinstance(c.get("eol"), date) else None
    ext = c.get("extended")
    p["extended"] = ({"name": EXTENDED_NAMES.get(distro, "extended support"), "end": ext}
                     if isinstance(ext, date) else None)
    p["arches"] = []
    p["ships"] = {}
    p["confidence"] = {"dates": "high", "arches": "low"}
    p["notes"] = "Added by an endoflife.date import: architectures and shipped versions still to fill in."
    p["sources"] = [f"dates: {source}"]
    return p


def import_endoflife(matrix: dict, payload: Any, product: str, today: date) -> ImportResult:
    """Move release/support dates to endoflife.date's and add releases the matrix lacks."""
    if product not in EOL_PRODUCTS:
        raise MinbumpError(f"unknown endoflife.date product {product!r} (known: {', '.join(sorted(EOL_PRODUCTS))})")
    distro, prefix = EOL_PRODUCTS[product]
    cycles = parse_endoflife(payload)
    data = copy.deepcopy(matrix)
    platforms: list[dict] = data.setdefault("platforms", [])
    source = f"endoflife.date API (imported {today.isoformat()})"
    result = ImportResult(data)
    rec = _Recorder(result, source)
    for c in cycles:
        plat = _find(platforms, prefix, c["cycle"])
        if plat is None:
            new = _new_platform(distro, prefix, c, source)
            same = [i for i, x in enumerate(platforms) if x.get("distro") == distro]
            platforms.insert(same[-1] + 1 if same else len(platforms), new)
            summary = ", ".join(f"{k} {_txt(new.get(k))}" for k in ("released", "eol"))
            result.changes.append(Change(new["id"], "platform", None, summary, "new-platform"))
            continue
        _set_date(rec, plat, "released", c.get("released"), today)
        eol = c.get("eol")
        if "full_support_end" in plat or (isinstance(eol, date) and isinstance(c.get("support"), date)
                                          and c["support"] != eol):
            _set_date(rec, plat, "full_support_end", c.get("support"), today)
        _set_date(rec, plat, "eol", c.get("eol"), today)
        ext = c.get("extended")
        if ext is False and isinstance(plat.get("extended"), dict) and plat["extended"].get("end"):
            rec.note(plat, "extended.end", plat["extended"]["end"], "no extended support", "kept")
        else:
            _set_date(rec, plat, "extended.end", ext, today)
    rec.finish(platforms)
    if result.changed:
        data["data_as_of"] = today
    return result


# ------------------------------------------------------------ repology ---

def repology_platform(repo: str) -> tuple[str, bool] | None:
    """`ubuntu_22_04` -> ("ubuntu-22.04", False); a `_backports` repo -> (id, True); unknown -> None."""
    backports = False
    name = repo
    if name.endswith("_backports"):
        name, backports = name[: -len("_backports")], True
    for pre, prefix in REPOLOGY_REPOS:
        if name.startswith(pre):
            rest = name[len(pre):]
            if re.fullmatch(r"\d+(_\d+)*", rest):
                return f"{prefix}-{rest.replace('_', '.')}", backports
            return None
    return None


def parse_repology(payload: Any) -> dict[str, dict[str, tuple[Version, str | None]]]:
    """repology project JSON -> {platform_id: {"base"|"backports": (newest version, origversion)}}."""
    if not isinstance(payload, list):
        raise MinbumpError("not a repology project answer (expected a list of packages)")
    out: dict[str, dict[str, tuple[Version, str | None]]] = {}
    for pkg in payload:
        if not isinstance(pkg, dict) or "repo" not in pkg or "version" not in pkg:
            raise MinbumpError("repology answer: every package needs 'repo' and 'version'")
        if pkg.get("status") in _REPOLOGY_BAD:
            continue
        hit = repology_platform(str(pkg["repo"]))
        if hit is None:
            continue
        pid, backports = hit
        if "backports" in str(pkg.get("subrepo") or ""):
            backports = True
        try:
            v = Version.parse(str(pkg["version"]))
        except ValueError:
            continue
        slot = "backports" if backports else "base"
        cur = out.setdefault(pid, {}).get(slot)
        if cur is None or v > cur[0]:
            out[pid][slot] = (v, pkg.get("origversion"))
    return out


def import_repology(matrix: dict, payload: Any, component: str, today: date) -> ImportResult:
    """Move each release's shipped `component` forward to the newest version repology lists."""
    if not re.fullmatch(r"[a-z][a-z0-9_.+-]*", component or ""):
        raise MinbumpError(f"not a component name: {component!r}")
    seen = parse_repology(payload)
    data = copy.deepcopy(matrix)
    platforms: list[dict] = data.setdefault("platforms", [])
    by_id = {p["id"]: p for p in platforms}
    source = f"repology project JSON (imported {today.isoformat()})"
    result = ImportResult(data)
    rec = _Recorder(result, source)
    for pid in sorted(seen):
        plat = by_id.get(pid)
        if plat is None:
            result.changes.append(Change(pid, component, None, "no such platform in the matrix; skipped", "skipped"))
            continue
        if "base" in seen[pid]:
            v, orig = seen[pid]["base"]
            cell = plat.setdefault("ships", {}).setdefault(component, {"version": None, "confidence": "low"})
            old = version_or_none(cell.get("version"))
            key = f"ships.{component}"
            if old is None:
                cell.update(version=str(v), confidence="high" if orig else "medium")
                if orig:
                    cell["package"] = orig
                rec.note(plat, key, None, v, "added")
            elif v > old:
                cell.setdefault("ga", cell.get("version"))
                cell.update(version=str(v), confidence="high" if orig else "medium")
                if orig:
                    cell["package"] = orig
                result.changes.append(Change(pid, key, old, v, "changed"))
                rec.touched.setdefault(pid, []).append(key)
            elif v < old:
                rec.note(plat, key, old, v, "kept")
        if "backports" in seen[pid]:
            v, orig = seen[pid]["backports"]
            addons = [a for a in plat.get("addons") or () if a.get("kind") == "debian-backports"]
            key = f"addons.backports.{component}"
            if not addons:
                if plat.get("distro") != "debian":
                    result.changes.append(Change(pid, key, None, f"{v} in backports; no backports add-on to update",
                                                 "skipped"))
                    continue
                name = f"{plat.get('codename') or plat.get('release')}-backports"
                plat.setdefault("addons", []).append({"name": name, "kind": "debian-backports",
                                                      "ships": {component: str(v)}, "confidence": "medium",
                                                      "notes": f"{orig or v} listed by repology"})
                rec.note(plat, key, None, v, "added")
                continue
            addon = addons[0]
            old = version_or_none((addon.get("ships") or {}).get(component))
            if old is None or v > old:
                addon.setdefault("ships", {})[component] = str(v)
                if old is None:
                    rec.note(plat, key, None, v, "added")
                else:
                    result.changes.append(Change(pid, key, old, v, "changed"))
                    rec.touched.setdefault(pid, []).append(key)
            elif v < old:
                rec.note(plat, key, old, v, "kept")
    rec.finish(platforms)
    if result.changed:
        data["data_as_of"] = today
    return result


# --------------------------------------------------------------- audit ---

def known_from_endoflife(payload: Any, product: str) -> list[KnownRelease]:
    """The releases an endoflife.date answer lists, for `minbump matrix audit`."""
    if product not in EOL_PRODUCTS:
        raise MinbumpError(f"unknown endoflife.date product {product!r} (known: {', '.join(sorted(EOL_PRODUCTS))})")
    distro, prefix = EOL_PRODUCTS[product]
    out = []
    for c in parse_endoflife(payload):
        ids = candidate_ids(prefix, c["cycle"])
        if distro == "sles" and "." not in c["cycle"]:
            ids.reverse()  # a new SLES major is added as <major>.0, as the importer does
        out.append(KnownRelease(f"endoflife.date {product}", c["cycle"], tuple(ids),
                                c["released"] if isinstance(c.get("released"), date) else None,
                                c["eol"] if isinstance(c.get("eol"), date) else None))
    return out


def known_from_repology(payload: Any) -> list[KnownRelease]:
    """The releases a repology project answer has repositories for (backports count as their release)."""
    return [KnownRelease("repology", pid, (pid,)) for pid in sorted(parse_repology(payload))]


# ------------------------------------------------------------- writing ---

def _dumper() -> type:
    import yaml  # lazy: only the writers need it

    class Dumper(yaml.SafeDumper):
        """Leaf mappings and short scalar lists on one line, so a row reads like a table row."""

    def repr_dict(dumper: yaml.SafeDumper, data: dict) -> Any:
        leaf = all(not isinstance(v, (dict, list)) or (isinstance(v, dict) and all(
            not isinstance(x, (dict, list)) for x in v.values())) for v in data.values())
        return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(),
                                        flow_style=leaf and len(data) <= 8 and "id" not in data)

    def repr_list(dumper: yaml.SafeDumper, data: list) -> Any:
        flat = all(not isinstance(v, (dict, list)) for v in data) and all(
            not isinstance(v, str) or len(v) < 20 for v in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)

    Dumper.add_representer(dict, repr_dict)
    Dumper.add_representer(list, repr_list)
    return Dumper


def dump_policy_yaml(data: Any, header: str = "") -> str:
    """YAML in the one-row-per-line style of policy/matrix.yaml, after an optional comment header."""
    import yaml

    return header + yaml.dump(data, Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=120)


def leading_comments(text: str) -> str:
    """The comment block at the top of a file, kept when a tool rewrites the data below it."""
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("#") or (lines and not line.strip()):
            lines.append(line)
        else:
            break
    return "".join(lines)


def read_matrix_yaml(path: str | Path) -> tuple[dict, str]:
    """The raw matrix with real dates (not the JSON cache), and the file's header comments."""
    from bot.data.yamlcache import parse_yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MinbumpError(f"{path}: cannot read: {exc.strerror or exc}") from None
    raw = parse_yaml(text, str(path), "matrix")  # the matrix size limit, not the config one
    if not isinstance(raw, dict) or not isinstance(raw.get("platforms"), list):
        raise MinbumpError(f"{path}: not a support matrix (no 'platforms' list)")
    return raw, leading_comments(text)


def write_matrix_yaml(path: str | Path, data: dict, header: str) -> None:
    """Rewrite atomically, so a crash never leaves half a matrix behind."""
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(dump_policy_yaml(data, header), encoding="utf-8")
    os.replace(tmp, path)
