"""Pull requests that change the policy itself: the config, the project's matrix, its support tables.

The judgement of a change always uses the base branch's policy (a pull
request must not loosen its own check); the head's policy is a subject of
review here. Pure: the edge (bot.data.policy_files) reads both refs' files,
parses them and finds their YAML lines; this module compares them and says
what a maintainer should look at. Every entry is a dict
`{file, line, kind, subject, before, after, severity, detail, still_supported?, support_end?, source?}`.
"""

from __future__ import annotations

import re
from datetime import date

from bot.core import tables as tbl
from bot.core.classify import classify
from bot.core.config import Config
from bot.core.deprecation import Snapshot
from bot.core.matrix import Matrix, Platform
from bot.core.records import Record, factory
from bot.core.version import Version

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bot.core.report import Report

SEVERITY = {"note": -1, "pass": 0, "warn": 1, "fail": 2}
WATCHED_KINDS = ("hard", "next", "denylist")
KIND_TITLES = {
    "invalid": "Invalid at head",
    "loosened": "Loosened: needs a maintainer's review",
    "leaves-support": "Platforms leaving support",
    "contradicts-data": "Project matrix values that contradict the shipped data",
    "support-table": "Support table",
    "changed": "Other policy changes",
}


class PolicySide(Record):
    """One ref's policy files, as the edge read them."""

    config: Config | None = None               # merged over its preset; None when missing or invalid
    config_present: bool = True
    overrides: dict[str, dict] = factory(dict)          # the project's matrix files: path -> parsed mapping
    tables: dict[str, str] = factory(dict)              # support tables: path -> text
    lines: dict[str, dict[str, int]] = factory(dict)    # file -> key path ("strictness.unwarned_drop") -> line
    errors: list[dict] = factory(list)                  # {file, line, subject, message}: what fails to load
    watch_files: list[str] = factory(list)              # files the side's watch globs match at its commit


class PolicyFiles(Record):
    config_file: str
    base: PolicySide
    head: PolicySide
    changed: list[str] = factory(list)                  # policy files that differ between the refs
    data: Matrix | None = None                 # the shipped matrix, without the project's files


def _entry(file: str, line: int | None, kind: str, subject: str, before, after, severity: str,
           detail: str, **extra) -> dict:
    out = {"file": file, "line": line, "kind": kind, "subject": subject, "before": before, "after": after,
           "severity": severity, "detail": detail}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _line(side: PolicySide, file: str, *keys: str) -> int | None:
    found = side.lines.get(file) or {}
    for key in keys:
        if key in found:
            return found[key]
    return 1 if file in side.lines else None


# ------------------------------------------------------------- loosened ---

def _loosened(pf: PolicyFiles, head_snap: Snapshot | None, matrix: Matrix, as_of: date,
              level: str) -> list[dict]:
    b, h, f = pf.base.config, pf.head.config, pf.config_file
    out: list[dict] = []
    if b is None:
        return out
    if not pf.head.config_present:
        out.append(_entry(f, None, "loosened", f, "present", "deleted", level,
                          "the config is deleted: after this change the repository is not checked"))
        return out
    if h is None:
        return out  # invalid at head: listed as such
    for key in sorted(set(b.strictness) | set(h.strictness)):
        old, new = b.strictness.get(key, "fail"), h.strictness.get(key, "fail")
        if SEVERITY.get(new, 0) < SEVERITY.get(old, 0):  # strictness.error's "neutral" ranks with pass
            out.append(_entry(f, _line(pf.head, f, f"strictness.{key}", "strictness", "preset"), "loosened",
                              f"strictness.{key}", old, new, level, f"strictness lowered from {old} to {new}"))
    if b.support == "extended" and h.support == "standard":
        out.append(_entry(f, _line(pf.head, f, "support", "preset"), "loosened", "support", b.support, h.support,
                          level, "paid extended support (ESM, ELS, LTSS) no longer counts as supported"))
        for p in matrix.in_scope():
            if p.supported_on(as_of, "extended") and not p.supported_on(as_of, "standard"):
                out.append(_leaving(p, f, _line(pf.head, f, "support"), "extended support",
                                    "standard support only", "note", as_of, "extended"))
    elif b.support != h.support:
        # standard -> extended protects more platforms (ESM/ELS/LTSS count): stricter, but a reviewer sees it.
        out.append(_entry(f, _line(pf.head, f, "support", "preset"), "changed", "support", b.support, h.support,
                          "note", "paid extended support (ESM, ELS, LTSS) now counts as supported: more platforms "
                          "are protected"))
    names = set(b.constants) | set(h.constants)
    if head_snap is not None:
        for scan in head_snap.files.values():
            names.update(scan.constants)
    for name in sorted(names):
        mb, mh = classify(name, b), classify(name, h)
        if mb is None or mb.kind not in WATCHED_KINDS:
            continue
        if mh is None or mh.kind not in WATCHED_KINDS or mh.component != mb.component:
            after = "ignore" if mh is None else (mh.kind if mh.component == mb.component
                                                 else f"{mh.kind} of {mh.component}")
            out.append(_entry(f, _line(pf.head, f, f"constants.{name}.ignore", f"constants.{name}.kind",
                                       f"constants.{name}", "components", "preset"),
                              "loosened", f"constants.{name}", mb.kind, after, level,
                              f"{name} is no longer checked as a {mb.kind} minimum"))
    if head_snap is not None:
        held: dict[str, list[str]] = {}
        for c in head_snap.constants.values():
            if c.kind in WATCHED_KINDS:
                held.setdefault(c.file, []).append(c.name)
        lost = sorted(p for p in held if p not in set(pf.head.watch_files))
        for path in lost:
            out.append(_entry(f, _line(pf.head, f, "watch", "preset"), "loosened", "watch",
                              ", ".join(b.watch), ", ".join(h.watch), level,
                              f"{path} holds {', '.join(sorted(set(held[path])))} and is no longer watched"))
    return out


def _leaving(p: Platform, file: str, line: int | None, before: str, after: str, severity: str,
             as_of: date, rule: str) -> dict:
    end = p.support_end(rule)
    still = p.supported_on(as_of, rule)
    detail = (f"{p.label} is still supported by its vendor on {as_of.isoformat()}"
              + (f" (until {end.isoformat()})" if end else "") if still
              else f"{p.label} is past its vendor's end of support on {as_of.isoformat()}")
    return _entry(file, line, "leaves-support", p.id, before, after, severity, detail,
                  still_supported=still, support_end=end.isoformat() if end else None, label=p.label)


def _out_of_scope(raw: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw.get("out_of_scope") or ():
        if isinstance(item, dict) and item.get("id"):
            out[str(item["id"])] = str(item.get("reason") or "")
        elif isinstance(item, (str, int, float)):
            out[str(item)] = ""
    return out


def _leaving_scope(pf: PolicyFiles, matrix: Matrix, as_of: date, rule: str, level: str) -> list[dict]:
    before: set[str] = set()
    for raw in pf.base.overrides.values():
        before |= set(_out_of_scope(raw))
    out: list[dict] = []
    for path, raw in sorted(pf.head.overrides.items()):
        items = raw.get("out_of_scope") or []
        for i, (pid, reason) in enumerate(_out_of_scope(raw).items()):
            if pid in before:
                continue
            p = matrix.get(pid) or (pf.data.get(pid) if pf.data else None)
            line = _line(pf.head, path, f"out_of_scope[{i}]", "out_of_scope") if i < len(items) else None
            if p is None:
                out.append(_entry(path, line, "leaves-support", pid, "in scope", "out of scope", "note",
                                  f"{pid} is not a platform in the support matrix"))
                continue
            still = p.supported_on(as_of, rule)
            out.append(_leaving(p, path, line, "in scope", "out of scope" + (f": {reason}" if reason else ""),
                                level if still else "note", as_of, rule))
    return out


# ------------------------------------------------- contradicting the data ---

def version_or_none(value) -> Version | None:
    if isinstance(value, dict):
        value = value.get("version")
    try:
        return Version.parse(str(value)) if value is not None else None
    except ValueError:
        return None


def _day(value) -> date | None:
    try:
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _contradictions(pf: PolicyFiles, level: str, as_of: date) -> list[dict]:
    out: list[dict] = []
    if pf.data is None:
        return out
    for path, raw in sorted(pf.head.overrides.items()):
        if path not in pf.changed:
            continue
        for i, item in enumerate(raw.get("platforms") or ()):
            if not isinstance(item, dict):
                continue
            p = pf.data.get(str(item.get("id")))
            if p is None:
                continue
            eol = _day(item.get("eol")) if item.get("eol") is not None else None
            if eol is not None and p.eol is not None and eol != p.eol:
                hides = eol < p.eol and p.supported_on(as_of)
                out.append(_entry(path, _line(pf.head, path, f"platforms[{i}].eol", f"platforms[{i}]"),
                                  "contradicts-data", f"{p.id} eol", p.eol.isoformat(), eol.isoformat(),
                                  level if hides else "note",
                                  f"{path} ends {p.label}'s support on {eol.isoformat()}; the shipped data says "
                                  f"{p.eol.isoformat()}" + (": an earlier end hides drops" if hides else ""),
                                  source="; ".join(p.sources) or p.origin))
            for comp, claimed in sorted((item.get("ships") or {}).items()):
                cv, cell = version_or_none(claimed), p.ships.get(comp)
                if cv is None or cell is None or cell.version is None or cv in (cell.version, cell.ga):
                    continue
                higher = cv > cell.version
                out.append(_entry(path, _line(pf.head, path, f"platforms[{i}].ships.{comp}", f"platforms[{i}]"),
                                  "contradicts-data", f"{p.id} {comp}", str(cell.version), str(cv),
                                  level if higher else "note",
                                  f"{path} says {p.label} ships {comp} {cv}; the shipped data says {cell.version}"
                                  f" ({cell.confidence} confidence)" + (
                                      ": a higher claim hides drops" if higher else ""),
                                  source="; ".join(p.sources) or p.origin))
    return out


# --------------------------------------------------------- support tables ---

_CONST = re.compile(r"^[A-Z][A-Z0-9_]*$")
COMPONENT_WORDS = (("libvirt", "libvirt"), ("qemu", "qemu"))
DISTROS = (("centos stream", "centos-stream"), ("red hat enterprise linux", "rhel"), ("rhel", "rhel"),
           ("centos", "centos"), ("almalinux", "almalinux"), ("rocky", "rocky"), ("debian", "debian"),
           ("ubuntu", "ubuntu"), ("fedora", "fedora"), ("suse linux enterprise", "sles"), ("sles", "sles"),
           ("opensuse", "opensuse"))


def _release_row(table: tbl.Table, name_cols: list[int], target: dict) -> tbl.Row | None:
    name, tag = str(target.get("name") or ""), str(target.get("tag") or "")
    words = {w.lower() for w in name.split() if w.isalpha()}
    by_tag = None
    for row in table.rows:
        cells = [tbl.clean(row.cells[i]) for i in name_cols if i < len(row.cells)]
        if any(c.lower() == name.lower() or (words and words & {w.lower() for w in c.split()}) for c in cells):
            return row
        if by_tag is None and tag and any(c == tag or _same_version(c, tag) for c in cells):
            by_tag = row
    return by_tag


def _same_version(a: str, b: str) -> bool:
    if not re.fullmatch(r"v?\d+(\.\d+)*", a) or not re.fullmatch(r"v?\d+(\.\d+)*", b):
        return False
    return Version.parse(a) == Version.parse(b)


def _release_table(path: str, table: tbl.Table, head_snap: Snapshot | None, target: dict | None) -> list[dict]:
    header = [tbl.clean(h) for h in table.header]
    const_cols = {i: h for i, h in enumerate(header) if _CONST.match(h)}
    if not const_cols or head_snap is None:
        return []
    name_cols = [i for i in range(len(header)) if i not in const_cols]
    if target is None:
        return [_entry(path, table.line, "support-table", "release table", None, None, "note",
                       "no target release is known, so the release table's row could not be checked")]
    row = _release_row(table, name_cols, target)
    if row is None:
        return [_entry(path, table.line, "support-table", f"row for {target['name']}", None, None, "note",
                       f"the release table has no row for the target release {target['name']} "
                       f"({target.get('tag')})")]
    out: list[dict] = []
    for i, const in sorted(const_cols.items()):
        c = head_snap.constants.get(const)
        if c is None or c.value is None:
            continue
        said = tbl.clean(row.cells[i]) if i < len(row.cells) else ""
        sv = version_or_none(said) if said else None
        if sv is not None and sv == c.value:
            continue
        out.append(_entry(path, row.line, "support-table", f"{const} for {target['name']}", said or None,
                          str(c.value), "note",
                          f"the table says {const} {said or '(empty)'} for {target['name']}, "
                          f"the code says {c.value} ({c.file}:{c.line})"))
    return out


def _distro(text: str) -> str | None:
    low = text.lower()
    for word, distro in DISTROS:
        if low.startswith(word):
            return distro
    return None


def _platform_of(matrix: Matrix, distro: str, release: str) -> tuple[Platform | None, str | None]:
    """(platform, minor) for a table's release text: `13.x (Trixie)`, `8.4`, `15 (SP2)`, `20.04 (Focal)`."""
    m = re.match(r"\s*(\d+(?:\.\d+)?)(?:\.x)?", release)
    if not m:
        return None, None
    num = m.group(1)
    sp = re.search(r"\bSP\s*(\d+)", release, re.I)
    if distro == "sles":
        major = num.split(".")[0]
        return matrix.get(f"sles-{major}.{sp.group(1) if sp else (num.split('.') + ['0'])[1]}"), None
    p = matrix.get(f"{distro}-{num}")
    if p is not None:
        return p, None
    if "." in num:
        p = matrix.get(f"{distro}-{num.split('.')[0]}")
        if p is not None and any(mi.minor == num for mi in matrix.minors_of(p)):
            return p, num
    return None, None


def _data_versions(matrix: Matrix, p: Platform, minor: str | None, comp: str) -> list[Version]:
    out: list[Version] = []
    cells = [p.ships.get(comp)]
    addons = list(p.addons)
    for mi in matrix.minors_of(p) if minor else ():
        if mi.minor == minor:
            cells = [mi.ships.get(comp)]
            addons += list(mi.addons)
    for cell in cells:
        if cell is not None and cell.version is not None:
            out += [cell.version] + ([cell.ga] if cell.ga else [])
    out += [a.ships[comp] for a in addons if comp in a.ships]
    out += [s.ships[comp] for s in p.snapshots if comp in s.ships]
    return out


def _distribution_table(path: str, table: tbl.Table, matrix: Matrix) -> list[dict]:
    header = [tbl.clean(h).lower() for h in table.header]
    comps = {i: comp for i, h in enumerate(header) for word, comp in COMPONENT_WORDS if word in h}
    if not comps or not any(r.cells and tbl.is_bold(r.cells[0]) for r in table.rows):
        return []
    out: list[dict] = []
    unmatched: list[str] = []
    distro = group = None
    for row in table.rows:
        if not row.cells:
            continue
        first = row.cells[0]
        if tbl.is_bold(first) and not any(c.strip() for c in row.cells[1:]):
            group = tbl.clean(first)
            distro = _distro(group)
            continue
        release = tbl.clean(first)
        p, minor = _platform_of(matrix, distro, release) if distro else (None, None)
        if p is None:
            unmatched.append(f"{group or '?'} {release} (line {row.line})")
            continue
        label = f"{p.label}" + (f" {minor}" if minor and minor != p.release else "")
        for i, comp in sorted(comps.items()):
            said = tbl.clean(row.cells[i]) if i < len(row.cells) else ""
            sv = version_or_none(said)
            known = _data_versions(matrix, p, minor, comp)
            if sv is None or not known or sv in known:
                continue
            data = known[0]
            out.append(_entry(path, row.line, "support-table", f"{label} {comp}", str(data), said, "note",
                              f"the table says {label} ships {comp} {said}; the data says {data}",
                              source="; ".join(p.sources) or p.origin))
    if unmatched:
        out.append(_entry(path, table.line, "support-table", "rows not matched to a platform", None,
                          "; ".join(unmatched), "note",
                          f"{len(unmatched)} row(s) of the distribution table name no platform in the matrix: "
                          + "; ".join(unmatched)))
    return out


def _support_tables(pf: PolicyFiles, head_snap: Snapshot | None, matrix: Matrix, target: dict | None,
                    constants_changed: bool) -> list[dict]:
    out: list[dict] = []
    for path, text in sorted(pf.head.tables.items()):
        if not (constants_changed or path in pf.changed):
            continue
        try:
            found = tbl.parse(text, path)
        except tbl.TableError as exc:
            line = re.match(r"line (\d+)", str(exc))
            out.append(_entry(path, int(line.group(1)) if line else None, "support-table", "table", None, None,
                              "note", f"cannot read the table: {exc}"))
            continue
        for table in found:
            out += _release_table(path, table, head_snap, target)
            out += _distribution_table(path, table, matrix)
    for path in sorted(set(pf.base.tables) - set(pf.head.tables)):
        out.append(_entry(path, None, "support-table", path, "present", "deleted", "note",
                          "the support table the config names is deleted"))
    return out


# ------------------------------------------------------------------ api ---

def review(pf: PolicyFiles, head_snap: Snapshot | None, matrix: Matrix, cfg: Config, as_of: date,
           target: dict | None, constants_changed: bool) -> list[dict]:
    """Every entry for the head's policy, judged with the base's `cfg` (its strictness and rule)."""
    level = cfg.strictness.get("policy_loosened", "warn")
    out = [_entry(e["file"], e.get("line"), "invalid", e.get("subject") or "file", None, e["message"], "fail",
                  e["message"]) for e in pf.head.errors if e["file"] in pf.changed]
    if pf.changed:
        out += _loosened(pf, head_snap, matrix, as_of, level)
        out += _leaving_scope(pf, matrix, as_of, cfg.support, level)
        out += _contradictions(pf, level, as_of)
    out += _support_tables(pf, head_snap, matrix, target, constants_changed)
    return out


def apply(report: Report, pf: PolicyFiles | None, head_snap: Snapshot | None, matrix: Matrix, cfg: Config) -> None:
    """Add `policy_changes` to `report` and raise its verdict for an invalid or loosened head policy."""
    if pf is None:
        return
    entries = review(pf, head_snap, matrix, cfg, report.as_of, report.target_release, bool(report.changes))
    report.policy_changes = entries
    level = max((e["severity"] for e in entries), key=lambda s: SEVERITY[s], default="note")
    if SEVERITY[level] <= 0:
        return
    invalid = [e for e in entries if e["kind"] == "invalid"]
    if level == "fail" and invalid:
        text = (f"the head's policy files do not load ({len(invalid)} error{'s' if len(invalid) != 1 else ''}); "
                "the check would break for every change after this one")
    else:
        n = sum(1 for e in entries if SEVERITY[e["severity"]] >= SEVERITY[level])
        text = f"loosens the project's policy ({n} change{'s' if n != 1 else ''}); needs a maintainer's review"
    report.summary = text if report.verdict == "neutral" or not report.summary else f"{report.summary}; {text}"
    if SEVERITY[level] > SEVERITY.get(report.verdict, -1):
        report.verdict = level


def render(entries: list[dict], link_base: str | None = None) -> list[str]:
    """The comment's markdown section, one table per kind; each row links to its line at head."""
    if not entries:
        return []
    icon = {"fail": "❌", "warn": "⚠️", "pass": "", "note": "ℹ️"}
    out = ["### Policy changes", "",
           "The check above used the base branch's policy; this is what the change does to the policy itself.", ""]
    for kind, title in KIND_TITLES.items():
        rows = [e for e in entries if e["kind"] == kind]
        if not rows:
            continue
        leaving = kind == "leaves-support"
        out += [f"#### {title} ({len(rows)})", "",
                "| | subject | before | after | " + ("still supported | support ends | " if leaving else "")
                + "where | why |",
                "|---|---|---|---|---|" + ("---|---|" if leaving else "") + "---|"]
        for e in rows:
            where = f"{e['file']}:{e['line']}" if e.get("line") else e["file"]
            if link_base:
                anchor = f"#L{e['line']}" if e.get("line") else ""
                where = f"[`{where}`]({link_base.rstrip('/')}/{e['file']}{anchor})"
            else:
                where = f"`{where}`"
            extra = ""
            if leaving:
                still = {True: "yes", False: "no"}.get(bool(e["still_supported"]), "unknown") \
                    if "still_supported" in e else "unknown"
                extra = f"{still} | {e.get('support_end') or 'unknown'} | "
            why = _cell(e["detail"]) + (f" (source: {_cell(e['source'])})" if e.get("source") else "")
            out.append(f"| {icon.get(e['severity'], '')} | `{_cell(e['subject'])}` | {_cell(e['before'])} | "
                       f"{_cell(e['after'])} | {extra}{where} | {why} |")
        out.append("")
    return out


def _cell(value) -> str:
    if value is None:
        return "—"
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."
