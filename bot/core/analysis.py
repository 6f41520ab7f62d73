"""The pure core: file contents, config, matrix, calendar and a date in; a Report out.

No network, no clock, no git: `bot.git.gather` (CLI) and `bot.service.job` (webhook)
differ only in how they gather these inputs and publish the result.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeGuard

from datetime import date

from bot.core import deprecation, policy_changes
from bot.core.calendar import Calendar, Release, ReleasePlan, plan_by_date
from bot.core.classify import classify
from bot.core.config import CONFIG_PATH, Config
from bot.core.deprecation import Constant, Snapshot
from bot.core.extract import (DEFAULT_LITERALS, FileScan, IntValue, Raw, Ref, Unsupported, check_region, default_filter,
                              scan_source)
from bot.core.impact import dropped
from bot.core.matrix import Matrix, freshness_warning
from bot.core.report import Report, way_out
from bot.core.version import Version, vstr
from bot.core.records import Record, factory

SEVERITY = {"pass": 0, "warn": 1, "fail": 2}


class Inputs(Record):
    config: Config
    matrix: Matrix
    calendar: Calendar | None
    base_sha: str
    head_sha: str
    head_date: date
    base_files: dict[str, bytes]
    head_files: dict[str, bytes]
    changed: list[tuple[str, str, str | None]] = factory(list)
    previous_files: dict[str, bytes] | None = None
    previous_missing: str | None = None
    as_of: date | None = None
    config_changed_at_head: bool = False
    today: date | None = None  # only for the data-freshness note; None skips it
    policy: policy_changes.PolicyFiles | None = None  # both refs' policy files, reviewed after the judgement
    merge_base: str | None = None  # where head forked from base; base_files are read there
    release_plan: ReleasePlan | None = None  # target/previous release from git (bot.git.gather); else the date rule


# ------------------------------------------------------------- resolution ---

def _decode(raw_value, name: str, cfg: Config, table: dict[str, tuple[Raw, str]], depth: int = 0):
    """A Version (or tuple of them for lists), or (None, note)."""
    if isinstance(raw_value, Version):
        return raw_value, None
    if isinstance(raw_value, IntValue):
        enc = cfg.constants.get(name, {}).get("encoding") or {}
        if enc == "plain":
            return Version((raw_value.number,)), None
        base = int(enc.get("base", cfg.int_base)) if isinstance(enc, dict) else cfg.int_base
        width = int(enc.get("width", cfg.int_width)) if isinstance(enc, dict) else cfg.int_width
        try:
            return Version.from_int(raw_value.number, base, width), None
        except ValueError as exc:
            return None, str(exc)
    if isinstance(raw_value, Ref):
        if depth > 10 or raw_value not in table:
            return None, f"refers to {raw_value}, which is not defined in a watched file"
        ref_raw, _ = table[raw_value]
        return _decode(ref_raw.value, str(raw_value), cfg, table, depth + 1)
    if isinstance(raw_value, list):
        out = []
        for item in raw_value:
            v, _ = _decode(item, name, cfg, table, depth + 1)
            if isinstance(v, Version):
                out.append(v)
        return tuple(out), None
    if isinstance(raw_value, Unsupported):
        return None, f"value {raw_value.text[:60]} is not a literal version minbump can read"
    return None, "not a version"


_SCANS: dict[tuple[str, int, int, tuple[str, ...]], object] = {}


def _scan(path: str, data: bytes, cfg: Config):
    """Scan each distinct file content once: base, head and the release tag mostly share blobs.

    Names the config lists are read too, whatever they are called.
    """
    extra = tuple(cfg.constants)
    key = (path, len(data), hash(data), extra)
    hit = _SCANS.get(key)
    if hit is None:
        if len(_SCANS) > 512:
            _SCANS.clear()
        if extra:
            names = set(extra)
            hit = scan_source(data, path, lambda n: default_filter(n) or n in names, DEFAULT_LITERALS + extra)
        else:
            hit = scan_source(data, path)
        _SCANS[key] = hit
    return hit


def snapshot(label: str, sha: str | None, files: dict[str, bytes], cfg: Config) -> tuple[Snapshot, list[dict]]:
    scans = {path: _scan(path, data, cfg) for path, data in sorted(files.items())}
    errors = [{"file": p, "line": line, "message": msg, "ref": label}
              for p, s in scans.items() for line, msg in s.errors]
    # A watched constant whose own statement does not parse is an error; any other broken line is a note.
    errors += [{"file": p, "line": line, "message": f"{name}: {msg}", "ref": label}
               for p, s in scans.items() for name, (line, msg) in s.broken.items() if classify(name, cfg)]
    table: dict[str, tuple[Raw, str]] = {}
    for path, s in scans.items():
        for name, raw in s.constants.items():
            table.setdefault(name, (raw, path))
    consts: dict[str, Constant] = {}
    for name, (raw, path) in table.items():
        meaning = classify(name, cfg)
        if meaning is None:
            continue
        if meaning.per_arch or isinstance(raw.value, dict):
            if not isinstance(raw.value, dict):  # a table minbump cannot read: unreadable, not gone
                _, note = _decode(raw.value, name, cfg, table)
                consts[name] = Constant(name, name, path, raw.line, meaning.component, meaning.kind, None,
                                        meaning.hypervisor, None, note=note or "not a table of versions")
                continue
            for arch, item in raw.value.items():
                v, note = _decode(item, name, cfg, table)
                key = f"{name}[{arch}]"
                consts[key] = Constant(name, key, path, raw.line, meaning.component, meaning.kind, arch,
                                       meaning.hypervisor, v if isinstance(v, Version) else None, note=note)
            continue
        v, note = _decode(raw.value, name, cfg, table)
        if meaning.kind == "denylist":
            vals = v if isinstance(v, tuple) else ((v,) if isinstance(v, Version) else ())
            consts[name] = Constant(name, name, path, raw.line, meaning.component, "denylist", meaning.arch,
                                    meaning.hypervisor, None, values=tuple(vals), note=note)
            continue
        if isinstance(v, tuple):
            v, note = None, "a list where a single version was expected"
        consts[name] = Constant(name, name, path, raw.line, meaning.component, meaning.kind, meaning.arch,
                                meaning.hypervisor, v, note=note)
    return Snapshot(label, sha, consts, scans), errors


def effective(snap: Snapshot) -> dict[tuple[str, str | None, str | None], tuple[Version, Constant]]:
    """Effective hard minimum per (component, arch, hypervisor): max of the global and the scoped one."""
    glob: dict[str, tuple[Version, Constant]] = {}
    scoped: dict[tuple[str, str | None, str | None], tuple[Version, Constant]] = {}
    for c in snap.constants.values():
        if c.kind != "hard" or c.value is None:
            continue
        if c.scope == (None, None):
            if c.component not in glob or c.value > glob[c.component][0]:
                glob[c.component] = (c.value, c)
        else:
            k = (c.component, c.arch, c.hypervisor)
            if k not in scoped or c.value > scoped[k][0]:
                scoped[k] = (c.value, c)
    out: dict[tuple[str, str | None, str | None], tuple[Version, Constant]] = {
        (comp, None, None): v for comp, v in glob.items()}
    for k, (v, c) in scoped.items():
        g = glob.get(k[0])
        out[k] = (v, c) if g is None or v >= g[0] else g
    return out


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by bisection on slice compares (C speed on 500 kB files)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _changed_region(old: str, new: str) -> tuple[int, int] | None:
    """First and last line (1-based, in `new`) that differ from `old`."""
    if old == new:
        return None
    pre = _common_prefix(old, new)
    suf = _common_prefix(old[pre:][::-1], new[pre:][::-1])
    first = new.count("\n", 0, pre) + 1
    last = new.count("\n", 0, len(new) - suf) + 1
    return first, max(first, last)


# ---------------------------------------------------------------- analyze ---

def _unreadable(c: Constant | None) -> TypeGuard[Constant]:
    """A watched hard or next constant whose value minbump cannot read: never taken as removed."""
    return c is not None and c.kind in ("hard", "next") and c.value is None


def expression(scan: FileScan | None, line: int) -> str:
    """The value of the assignment at `line` as written (up to 200 characters), for the report."""
    lines = scan.text.splitlines() if scan is not None else []
    if not 0 < line <= len(lines):
        return ""
    parts: list[str] = []
    depth = 0
    for text in lines[line - 1:line + 19]:
        parts.append(text.strip())
        depth += sum(text.count(ch) for ch in "([{") - sum(text.count(ch) for ch in ")]}")
        if depth <= 0 and not text.rstrip().endswith("\\"):
            break
    joined = " ".join(parts)
    value = joined.split("=", 1)[1].strip() if "=" in joined else joined
    return value if len(value) <= 200 else value[:199] + "…"


def analyze(inp: Inputs) -> Report:
    """Judge the constants with the base's policy, then review what the change does to the policy itself."""
    report = _judge(inp)
    policy_changes.apply(report, inp.policy, snapshot("head", inp.head_sha, inp.head_files, inp.config)[0],
                         inp.matrix, inp.config)
    return report


def _judge(inp: Inputs) -> Report:
    cfg, matrix = inp.config, inp.matrix
    rplan = inp.release_plan or plan_by_date(inp.calendar, inp.head_date)
    target, previous = rplan.target, rplan.previous
    as_of = inp.as_of or (target.date if target else inp.head_date)
    rule = cfg.support
    report = Report(base=inp.base_sha, head=inp.head_sha, as_of=as_of, support_rule=_rule_text(rule, as_of),
                    target_release=rplan.target_dict(), config_origin=cfg.origin,
                    matrix_origins=list(matrix.origins),
                    data_as_of=matrix.data_as_of.isoformat() if matrix.data_as_of else None)
    report.previous_release = previous.to_dict() if previous else None
    report.merge_base = inp.merge_base or inp.base_sha
    report.notes.extend(rplan.notes)
    stale = freshness_warning(matrix, inp.today, cfg.max_data_age_days) if inp.today else None
    if stale:
        report.notes.append(stale)

    base, base_errors = snapshot("base", inp.base_sha, inp.base_files, cfg)
    head, head_errors = snapshot("head", inp.head_sha, inp.head_files, cfg)
    report.errors.extend(head_errors)
    _parse_notes(report, inp, base, head, cfg)
    if inp.config_changed_at_head:
        report.notes.append(f"this change edits {CONFIG_PATH}; the check uses the base branch's version "
                            "(a pull request cannot loosen its own check)")
    report.watched_changed = bool(inp.changed)

    # Changes, constant by constant.
    unreadable: list[dict] = []
    for key in sorted(set(base.constants) | set(head.constants)):
        old, new = base.constants.get(key), head.constants.get(key)
        old_shown, new_shown = (old.shown() if old else None), (new.shown() if new else None)
        o_expr = expression(base.files.get(old.file), old.line) if _unreadable(old) else None
        n_expr = expression(head.files.get(new.file), new.line) if _unreadable(new) else None
        if old_shown == new_shown and (o_expr == n_expr or not _unreadable(new)) and bool(old) == bool(new):
            continue
        c = new or old
        assert c is not None
        entry = {"constant": c.name, "file": c.file, "line": c.line, "component": c.component,
                 "kind": c.kind, "scope": {"arch": c.arch, "hypervisor": c.hypervisor}, "old": old_shown,
                 "new": new_shown}
        if new is None:
            entry["removed"] = True
        elif _unreadable(new):
            entry["unreadable"] = True
            entry["expression"] = n_expr
            unreadable.append(entry)
        if old and new and old.file != new.file:
            entry["moved_from"] = old.file
        if (new and new.note) or (old and old.note):
            entry["note"] = (new.note if new else None) or (old.note if old else None)
        report.changes.append(entry)
    for key in set(head.constants) & set(base.constants):
        was, now = base.constants[key], head.constants[key]
        if was.shown() == now.shown() and was.file != now.file:
            report.notes.append(f"{now.name} moved from {was.file} to {now.file} with the same value")

    if report.errors and any(e["ref"] == "head" for e in report.errors):
        report.verdict = "neutral"
        report.summary = "a watched file does not parse at head; nothing judged"
        return report
    if not report.changes:
        report.verdict = "neutral"
        report.summary = "no watched minimum changed"
        return report

    # Effective minimums and what each raise drops. A scope whose head minimum is unreadable is not
    # judged (neither lowered nor removed); a global one leaves every scope of its component unjudged.
    blind: set[tuple] = set()
    for c in head.constants.values():
        if _unreadable(c) and c.kind == "hard":
            table = (c.key == c.name and c.arch is None and (m := classify(c.name, cfg)) is not None and m.per_arch)
            blind.add((c.component, "*" if table else c.arch, c.hypervisor))
    eff_old, eff_new = effective(base), effective(head)
    prev_snap = None
    if previous is not None and inp.previous_files is not None:
        prev_snap, _ = snapshot(previous.tag, None, inp.previous_files, cfg)
    global_drops: dict[str, set] = {}
    global_raise: dict[str, tuple[Version | None, Version]] = {}  # component -> the (old, new) judged unscoped
    skipped: list[str] = []
    raised: list[tuple[tuple, Version | None, Version, Constant]] = []
    for scope in sorted(set(eff_old) | set(eff_new), key=lambda k: (k[0], k[1] or "", k[2] or "")):
        if scope in blind or (scope[0], None, None) in blind or (scope[1] and (scope[0], "*", None) in blind):
            continue
        # A scope without its own constant on one side is held to the global minimum there.
        o = eff_old.get(scope) or eff_old.get((scope[0], None, None))
        n = eff_new.get(scope) or eff_new.get((scope[0], None, None))
        ov, nv = (o[0] if o else None), (n[0] if n else None)
        if ov == nv:
            continue
        comp, arch, hv = scope
        report.effective.append({"component": comp, "scope": {"arch": arch, "hypervisor": hv},
                                 "old": vstr(ov), "new": vstr(nv)})
        if nv is None or (ov is not None and nv < ov):
            continue  # a removed or lowered minimum drops nobody
        assert n is not None
        raised.append((scope, ov, nv, n[1]))
    for scope, ov, nv, const in raised:
        comp, arch, hv = scope
        if not matrix.knows_component(comp):
            report.notes.append(f"the support matrix has no data for {comp}; platforms needing "
                                f"{comp} >= {nv} are not judged")
            skipped.append(f"{const.name} not judged: the support matrix has no data for {comp}")
            continue
        if hv and not any(p.runs_hypervisor(hv) for p in matrix.in_scope()):
            skipped.append(f"{const.name} not judged: no platform in the data runs {hv}")
            report.notes.append(f"{skipped[-1]}; nothing fails for it")
            continue
        if (arch or hv) and global_raise.get(comp) == (ov, nv):
            # Held to the component's own old and new minimum: the platforms of this scope were
            # judged with the same numbers just before, and what that dropped is reported once.
            hits = []
        else:
            exclude = set(global_drops.get(comp, ())) if (arch or hv) else set()
            hits = dropped(matrix, comp, ov, nv, day=as_of, rule=rule, arch=arch, hypervisor=hv, exclude=exclude,
                           others=_other_minimums(matrix, eff_old, comp))
        if not (arch or hv):
            global_drops[comp] = {h.platform.id if h.minor is None else (h.platform.id, h.minor) for h in hits}
            global_raise[comp] = (ov, nv)
        dep = deprecation.check(comp, (arch, hv), nv, const.name, ov, previous, prev_snap, base,
                                inp.previous_missing)
        report.deprecation.append(dep)
        for h in hits:
            d = h.to_dict()
            d["constant"] = const.name
            d["warned"] = dep["warned"]
            d["severity"], d["reason"] = _severity(h, d, dep["warned"], cfg)
            (report.unknown if h.shipped is None else report.impacted).append(d)

    # Announcements: what the next release will drop.
    for ch in report.changes:
        if ch["kind"] != "next" or ch["new"] is None:
            continue
        nv = Version.parse(ch["new"])
        scope = (ch["component"], ch["scope"]["arch"], ch["scope"]["hypervisor"])
        cur = eff_new.get(scope) or eff_new.get((ch["component"], None, None))
        if cur is not None and nv <= cur[0]:
            continue
        if not matrix.knows_component(ch["component"]):
            continue
        if scope[2] and not any(p.runs_hypervisor(scope[2]) for p in matrix.in_scope()):
            continue
        nxt_release = _release_after(inp.calendar, target) if target else None
        day = nxt_release.date if nxt_release else as_of
        hits = dropped(matrix, ch["component"], cur[0] if cur else None, nv, day=day, rule=rule,
                       arch=scope[1], hypervisor=scope[2], others=_other_minimums(matrix, eff_new, ch["component"]))
        report.next_drops.append({
            "constant": ch["constant"], "component": ch["component"], "scope": ch["scope"], "value": ch["new"],
            "release": nxt_release.to_dict() if nxt_release else None, "as_of": day.isoformat(),
            "impacted": [h.to_dict() for h in hits if h.shipped is not None],
            "unknown": [h.to_dict() for h in hits if h.shipped is None],
        })

    # Feature gates a raised hard minimum made pointless.
    for scope, ov, nv, _const in raised:
        comp, arch, hv = scope
        for c in head.constants.values():
            if c.kind == "feature" and c.component == comp and c.value is not None and c.value <= nv \
                    and (c.arch == arch or arch is None) and (c.hypervisor == hv or hv is None):
                report.obsolete_feature_minimums.append({
                    "constant": c.name, "value": str(c.value), "hard_minimum": str(nv),
                    "file": c.file, "line": c.line, "newly": ov is None or c.value > ov})

    _verdict(report, cfg, unreadable, skipped)
    return report


def _parse_notes(report: Report, inp: Inputs, base: Snapshot, head: Snapshot, cfg: Config) -> None:
    """Code that does not parse outside the constants' statements (Python 2-era files) is a note, not an error."""
    for path, data in inp.head_files.items():
        scan = head.files[path]
        for line, msg in scan.notes:
            report.notes.append(f"{path}:{line} {msg}; its constants were read statement by statement")
        for name, (line, msg) in scan.broken.items():
            if not classify(name, cfg):
                report.notes.append(f"{path}:{line} {name} {msg} (not a watched constant)")
        if scan.errors or scan.full_parse or path not in inp.base_files or inp.base_files[path] == data:
            continue
        # Lines the change touched that do not parse: the constants' own statements parsed (above),
        # so the problem is elsewhere in the file.
        region = _changed_region(base.files[path].text if path in base.files else "", scan.text)
        if region:
            problem = check_region(scan.text, *region, path)
            if problem:
                report.notes.append(f"{path}:{problem[0]} {problem[1]} (outside the watched constants, "
                                    "which were read statement by statement)")


def _other_minimums(matrix: Matrix, eff: dict, comp: str) -> dict[str, Version]:
    """The global minimums of the other components: a platform below one of them (even with its add-ons)
    was out already, so raising `comp` changes nothing for it.

    Nova's first MIN_QEMU_VERSION (Newton) did not drop Ubuntu 12.04: its
    libvirt was already below MIN_LIBVIRT_VERSION since Mitaka.
    """
    return {other: v for (other, arch, hv), (v, _c) in eff.items()
            if other != comp and not arch and not hv and matrix.knows_component(other)}


def _release_after(calendar: Calendar | None, release: Release) -> Release | None:
    if calendar is None:
        return None
    later = [r for r in calendar.releases if r.date > release.date]
    return later[0] if later else None


def _rule_text(rule: str, as_of: date) -> str:
    if rule == "extended":
        return (f"a platform counts as supported on {as_of} while its vendor's extended support "
                "(ESM, ELS, LTSS, Debian LTS) lasts, or its standard support where it has none")
    return (f"a platform counts as supported on {as_of} while its vendor's standard support lasts; "
            "paid extended support (ESM, ELS, LTSS) is not counted")


def _severity(h, d: dict, warned: bool | None, cfg: Config) -> tuple[str, str]:
    s = cfg.strictness
    if not h.still_supported:
        if h.superseded_by:
            return "pass", f"an older minor release, superseded by {h.superseded_by}"
        return "pass", "past its vendor's end of support"
    if h.shipped is None:
        return s["unknown"], "shipped version unknown"
    if h.minor and any(m["kind"] == "minor-release" for m in d["mitigations"]):
        level, why = s["minor_drop"], "an older minor release; a newer minor of the same release is fine"
    elif warned:
        level, why = s["warned_drop"], "still supported; a released version warned first"
    elif warned is None:  # the previous release's tag is missing: unknown, never "not warned"
        level = min(s["unwarned_drop"], s["unknown"], key=SEVERITY.__getitem__)
        why = "still supported; whether a released version warned first is unknown (its tag is missing)"
    else:
        level, why = s["unwarned_drop"], "still supported, and no released version warned first"
    if h.confidence == "low" and SEVERITY[s["low_confidence"]] > SEVERITY[level]:
        level, why = s["low_confidence"], why + " (low-confidence data)"
    return level, why


def still_supported_labels(report: Report) -> list[str]:
    """The one count: distinct labels of still-supported drops, in report order (= rows of the table)."""
    return list(dict.fromkeys(d["label"] for d in report.impacted if d["still_supported"]))


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _verdict(report: Report, cfg: Config, unreadable: list[dict], skipped: list[str]) -> None:
    s = cfg.strictness
    level = "pass"
    for d in report.impacted + [u for u in report.unknown if u["still_supported"]]:
        if SEVERITY[d["severity"]] > SEVERITY[level]:
            level = d["severity"]
    if unreadable and SEVERITY[s["unknown"]] > SEVERITY[level]:
        level = s["unknown"]
    report.verdict = level
    parts: list[str] = []
    labels = still_supported_labels(report)
    if labels:
        n = len(labels)
        worst = sorted(labels, key=lambda lb: -max(SEVERITY[d["severity"]] for d in report.impacted
                                                    if d["label"] == lb and d["still_supported"]))
        named = [f"{label} ({way_out([d for d in report.impacted if d['label'] == label])})" for label in worst[:3]]
        text = (f"drops {n} still-supported platform{'s' if n != 1 else ''}, "
                + ("including " if n > 3 else "") + _names(named) + ",")
        rows = [d for d in report.impacted if d["still_supported"]]
        if any(d["warned"] is False for d in rows):
            text += " without a release of warning"
        elif all(d["warned"] for d in rows):
            text += " after a release of warning"
        else:
            text += " (whether a release warned first is unknown)"
        parts.append(text)
    unknown = list(dict.fromkeys(d["label"] for d in report.unknown if d["still_supported"]))
    if unknown:
        parts.append(f"cannot tell for {len(unknown)} still-supported platform{'s' if len(unknown) != 1 else ''} "
                     "whose shipped version is unknown")
    for u in unreadable:
        parts.append(f"cannot read {u['constant']} at head ({u['file']}:{u['line']}: {u['expression'] or '?'})")
    if not parts:
        if report.impacted:
            parts.append("drops only platforms past their vendor's end of support or superseded minor releases")
        else:
            parts.append(_moves(report, skipped))
    report.summary = "; ".join(parts)


def _moves(report: Report, skipped: list[str]) -> str:
    """What the change did to the minimums, when it drops nothing: never "raises" for a lowered or removed one."""
    judged = bool(report.deprecation)  # one entry per raise that was judged
    lowered = [e for e in report.effective if e["new"] is not None and e["old"] is not None
               and Version.parse(e["new"]) < Version.parse(e["old"])]
    removed = [c for c in report.changes if c.get("removed") and c["kind"] == "hard"]
    words = ["raises minimums without dropping any platform in the matrix"] if judged else []
    words += skipped
    if lowered:
        words.append("lowers " + _names([f"the {e['component']} minimum{_scope_text(e['scope'])} "
                                         f"({e['old']} → {e['new']})" for e in lowered]))
    if removed:
        words.append("removes " + _names([c["constant"] for c in removed]))
    if not words:
        return "changes no effective hard minimum"
    return "; ".join(words) + ("" if judged or skipped else "; drops nothing")


def _scope_text(scope: dict) -> str:
    parts = [p for p in (scope.get("arch"), scope.get("hypervisor")) if p]
    return f" for {', '.join(parts)}" if parts else ""
