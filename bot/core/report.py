"""The report: the JSON contract other tools rely on, and the markdown people read."""

from __future__ import annotations

import re
from datetime import date
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from bot import __version__
from bot.core.policy_changes import render as render_policy_changes
from bot.core.records import Record, factory

ICON = {"fail": "❌", "warn": "⚠️", "pass": "✅", "neutral": "⚪"}


class Report(Record):
    base: str
    head: str
    as_of: date
    support_rule: str
    target_release: dict | None = None
    previous_release: dict | None = None
    verdict: str = "neutral"
    summary: str = ""
    changes: list[dict] = factory(list)
    effective: list[dict] = factory(list)
    impacted: list[dict] = factory(list)
    unknown: list[dict] = factory(list)
    deprecation: list[dict] = factory(list)
    obsolete_feature_minimums: list[dict] = factory(list)
    next_drops: list[dict] = factory(list)
    errors: list[dict] = factory(list)
    notes: list[str] = factory(list)
    watched_changed: bool = False
    config_origin: str = ""
    matrix_origins: list[str] = factory(list)
    data_as_of: str | None = None
    policy_changes: list[dict] = factory(list)  # what the change does to the policy itself (bot.core.policy_changes)
    link_base: str | None = None  # where the head's files are browsed, for links in the comment
    merge_base: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "summary": self.summary,
            "base": self.base, "merge_base": self.merge_base, "head": self.head, "as_of": self.as_of.isoformat(),
            "support_rule": self.support_rule,
            "target_release": self.target_release, "previous_release": self.previous_release,
            "changes": self.changes, "effective": self.effective, "impacted": self.impacted,
            "unknown": self.unknown,
            "deprecation": self.deprecation, "obsolete_feature_minimums": self.obsolete_feature_minimums,
            "next_drops": self.next_drops, "errors": self.errors, "notes": self.notes,
            "watched_changed": self.watched_changed, "policy_changes": self.policy_changes,
            "data": {"config": self.config_origin, "matrix": self.matrix_origins, "as_of": self.data_as_of},
            "minbump_version": __version__,
        }

    @property
    def still_supported_drops(self) -> list[dict]:
        return [d for d in self.impacted if d["still_supported"]]


def _scope(s: dict) -> str:
    parts = [s.get("arch") or "", s.get("hypervisor") or ""]
    text = ", ".join(p for p in parts if p)
    return text or "all"


def _where(path: str, line: int | None, link_base: str | None) -> str:
    """`file:line`, linked to that line at the head commit when a link base is given."""
    text = f"{path}:{line}" if line else path
    if not link_base:
        return f"`{text}`"
    anchor = f"#L{line}" if line else ""
    return f"[`{text}`]({link_base}{path}{anchor})"


_FILE_LINE = re.compile(r"^([\w./-]+\.\w+):(\d+) ")


def _note(text: str, link_base: str | None) -> str:
    m = _FILE_LINE.match(text)
    if not m or not link_base:
        return text
    return _where(m.group(1), int(m.group(2)), link_base) + text[m.end() - 1:]


def _mitigation(m: dict) -> str:
    text = f"{m['name']} ({m['version']}"
    if m.get("enable"):
        text += f", `{m['enable']}`"
    if m.get("confidence") == "low":
        text += ", unverified"
    return text + ")"


def _mitigations(ms: list[dict]) -> str:
    """The first sufficient add-on of each kind ("UCA kilo or later"); the JSON keeps them all."""
    shown: list[str] = []
    kinds: dict[str, int] = {}
    for m in ms:
        kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
    seen: set[str] = set()
    for m in ms:
        if m["kind"] in seen:
            continue
        seen.add(m["kind"])
        text = _mitigation(m)
        if kinds[m["kind"]] > 1 and m["kind"] in ("ubuntu-cloud-archive", "rhel-module-stream", "debian-backports"):
            text += " or later"
        shown.append(text)
    return "; ".join(shown) or "none known"


def _shipped(d: dict) -> str:
    if d["shipped"] is None:
        return "unknown"
    return d["shipped"] + ("?" if d.get("confidence") == "low" else "")


COMPONENT_NAMES = {"libvirt": "libvirt", "qemu": "QEMU"}


def _common(entries: list[dict]) -> list[dict]:
    """Mitigations that fix every component a platform misses (UCA kilo brings both libvirt and QEMU)."""
    names = set.intersection(*({m["name"] for m in d["mitigations"]} for d in entries)) if entries else set()
    return [m for m in entries[0]["mitigations"] if m["name"] in names] if names else []


def way_out(entries: list[dict]) -> str:
    """A platform's way out in a few words, for the headline: "UCA kilo+", "RHEL 7.2+", "no way out"."""
    def short(ms: list[dict]) -> str:
        m = ms[0]
        more = sum(1 for x in ms if x["kind"] == m["kind"]) > 1
        return m["name"] + ("+" if more and not m["name"].endswith("+") else "")

    common = _common(entries)
    if common:
        return short(common)
    if any(not d["mitigations"] for d in entries):
        return "no way out"
    return " with ".join(dict.fromkeys(short(d["mitigations"]) for d in entries))


def _rows(entries: list[dict]) -> list[tuple[str, list[dict]]]:
    """One row per platform label (a minor release or an add-on is its own platform), in report order."""
    rows: dict[str, list[dict]] = {}
    for d in entries:
        rows.setdefault(d["label"], []).append(d)
    return list(rows.items())


def _platform_table(entries: list[dict], max_rows: int) -> list[str]:
    """One row per platform, a column per component: "ships → needs" where this change drops it."""
    comps = list(dict.fromkeys(d["component"] for d in entries))
    head = "| | platform | " + " | ".join(COMPONENT_NAMES.get(c, c) for c in comps) + " | support ends | way out |"
    lines = [head, "|---|---|" + "---|" * len(comps) + "---|---|"]
    rows = _rows(entries)
    for label, ds in rows[:max_rows]:
        cells = []
        for c in comps:
            mine = [d for d in ds if d["component"] == c]
            cells.append("; ".join(f"{_shipped(d)} → {d['required']}"
                                   + ("" if _scope(d["scope"]) == "all" else f" ({_scope(d['scope'])})")
                                   for d in mine) or "—")
        common = _common(ds)
        ways = list(dict.fromkeys(_mitigations(d["mitigations"]) for d in ds))
        if common:
            ways = [_mitigations(common)]
        elif len(ways) > 1:
            ways = [f"{COMPONENT_NAMES.get(d['component'], d['component'])}: {_mitigations(d['mitigations'])}"
                    for d in ds]
        end = ds[0].get("support_end") or (f"when {ds[0]['superseded_by']} shipped"
                                           if ds[0].get("superseded_by") else "unknown")
        level = max((d.get("severity", "") for d in ds), key=lambda v: SEVERITY_ORDER.get(v, -1))
        icon = ICON.get(level, "") if ds[0].get("still_supported") else ""
        lines.append(f"| {icon} | {label} | " + " | ".join(cells) + f" | {end} | {'; '.join(ways)} |")
    if len(rows) > max_rows:
        lines.append(f"\n…and {len(rows) - max_rows} more (see the JSON report).")
    return lines


SEVERITY_ORDER = {"pass": 0, "warn": 1, "fail": 2}


def _details(summary: str, body: list[str]) -> list[str]:
    return [f"<details><summary>{summary}</summary>", ""] + body + ["", "</details>", ""]


def render_markdown(report: Report, max_rows: int = 200, *, link_base: str | None = None,
                    footer: bool = True) -> str:
    """The dry-run output and the body of the bot's comment (without its marker).

    `link_base` (`https://github.com/o/r/blob/<head sha>/`, else the
    report's own, which the bot sets) turns every `file:line` into a link to
    that line; the dry-run has one only with `--link-base`. `footer=False` leaves the one footer to the caller
    (the bot's comment has its own).
    """
    r = report
    link_base = link_base or r.link_base
    out: list[str] = [f"## {ICON.get(r.verdict, '')} minbump: {r.verdict} — {r.summary}", ""]
    when = f"Judged as of **{r.as_of.isoformat()}**"
    if r.target_release:
        t = r.target_release
        when += f", the date of the release this change ships in ({t['name']}, `{t['tag']}`)"
        when += f": {t['evidence']}" if t.get("evidence") else ""  # how the target was found
    origins = ", ".join(r.matrix_origins) or "policy/matrix.yaml"
    data = f"Data: config {r.config_origin}; matrix {origins}" + (f" (as of {r.data_as_of})" if r.data_as_of else "")
    out += [when + ".", f"Rule: {r.support_rule}.", data + ".", ""]
    if r.errors:
        out += ["### Could not read", ""]
        out += [f"- {_where(e['file'], e['line'], link_base if e.get('ref', 'head') == 'head' else None)} "
                f"({e.get('ref', 'head')}): {e['message']}" for e in r.errors]
        out.append("")
    unreadable = [c for c in r.changes if c.get("unreadable")]
    if unreadable:
        out += ["### Cannot read the new value", "",
                "minbump reads versions with `ast` and never runs code; these are judged as unknown, not as removed:",
                ""]
        out += [f"- `{c['constant']}` = `{c.get('expression') or '?'}` at {_where(c['file'], c['line'], link_base)}"
                for c in unreadable]
        out.append("")
    supported = [d for d in r.impacted if d["still_supported"]]
    if supported:
        n = len(_rows(supported))
        out += [f"### Still-supported platforms this drops ({n})", ""]
        out += _platform_table(supported, max_rows)
        out.append("")
    elif r.impacted or r.effective:
        out += ["No still-supported platform is dropped.", ""]
    if r.deprecation:
        out += ["### One release of warning first?", ""]
        for d in r.deprecation:
            mark = {True: "✅", False: "❌"}.get(d["warned"], "❔")
            scope = "" if _scope(d["scope"]) == "all" else f" ({_scope(d['scope'])})"
            out.append(f"- {mark} `{d['constant']}`{scope} {d['old'] or '—'} → {d['new']}: {d['evidence']}")
        out.append("")
    unknown = [d for d in r.unknown if d["still_supported"]]
    if unknown:
        out += _details(f"Unknown data: {len(_rows(unknown))} still-supported platform"
                        f"{'s' if len(_rows(unknown)) != 1 else ''} whose version is not in the matrix",
                        _platform_table(unknown, max_rows))
    older = [d for d in r.impacted if not d["still_supported"] and d.get("superseded_by")]
    if older:
        out += _details(f"Older minor releases, superseded by a newer minor ({len(_rows(older))})",
                        _platform_table(older, max_rows))
    gone = [d for d in r.impacted if not d["still_supported"] and not d.get("superseded_by")]
    if gone:
        out += _details(f"Also dropped, already past end of support ({len(_rows(gone))})",
                        _platform_table(gone, max_rows))
    if r.changes:
        body = ["| constant | kind | scope | old | new | where |", "|---|---|---|---|---|---|"]
        for c in r.changes:
            new = "unreadable" if c.get("unreadable") else ("removed" if c.get("removed") else (c["new"] or "—"))
            body.append(f"| `{c['constant']}` | {c['kind']} | {_scope(c['scope'])} | {c['old'] or '—'} | "
                        f"{new} | {_where(c['file'], c['line'], link_base)} |")
        out += _details(f"Minimums changed ({len(r.changes)})", body)
    for nd in r.next_drops:
        rel = nd["release"]
        when = f"{rel['name']} ({rel['date']})" if rel else nd["as_of"]
        still = [d for d in nd["impacted"] if d["still_supported"]]
        count = len(_rows(still))
        body = [f"When it becomes the minimum, as of {when} it would drop "
                f"{count} still-supported platform{'s' if count != 1 else ''}."]
        if still:
            body += [""] + _platform_table(still, max_rows)
        out += _details(f"Announced: <code>{nd['constant']}</code> = {nd['value']}", body)
    if r.obsolete_feature_minimums:
        body = ["These feature minimums are at or below the new hard minimum; their version checks can go:", ""]
        body += [f"- `{o['constant']}` = {o['value']} ≤ {o['hard_minimum']} ({_where(o['file'], o['line'], link_base)})"
                 for o in r.obsolete_feature_minimums]
        out += _details(f"Feature checks now always true ({len(r.obsolete_feature_minimums)})", body)
    out += render_policy_changes(r.policy_changes, link_base)
    if r.notes:
        out += ["### Notes", ""] + [f"- {_note(n, link_base)}" for n in r.notes] + [""]
    low = [d for d in r.impacted if d.get("confidence") == "low"]
    if low:
        out += ["Versions marked `?` rest on low-confidence data; check them before relying on them.", ""]
    if footer:
        out.append(f"<sub>minbump {__version__} · head `{r.head[:12]}` · base `{r.base[:12]}`</sub>")
    return "\n".join(out).rstrip("\n") + "\n"
