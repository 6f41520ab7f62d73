"""The report: the JSON contract other tools rely on, and the markdown people read."""

from __future__ import annotations

from datetime import date
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from bot import __version__
from bot.core.policy_changes import render as render_policy_changes
from bot.core.records import Record

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
    changes: list[dict] = list
    effective: list[dict] = list
    impacted: list[dict] = list
    deprecation: list[dict] = list
    obsolete_feature_minimums: list[dict] = list
    next_drops: list[dict] = list
    errors: list[dict] = list
    notes: list[str] = list
    watched_changed: bool = False
    config_origin: str = ""
    matrix_origins: list[str] = list
    data_as_of: str | None = None
    policy_changes: list[dict] = list  # what the change does to the policy itself (bot.core.policy_changes)
    link_base: str | None = None  # where the head's files are browsed, for links in the comment
    merge_base: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "summary": self.summary,
            "base": self.base, "merge_base": self.merge_base, "head": self.head, "as_of": self.as_of.isoformat(),
            "support_rule": self.support_rule,
            "target_release": self.target_release, "previous_release": self.previous_release,
            "changes": self.changes, "effective": self.effective, "impacted": self.impacted,
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


def _group_minors(rows: list[dict]) -> list[dict]:
    """RHEL 8.0 ... 8.5 with one mitigation read better as one row."""
    out: list[dict] = []
    for d in rows:
        prev = out[-1] if out else None
        if (prev and d["minor"] and prev.get("minor") and prev["platform"] == d["platform"]
                and prev["component"] == d["component"] and prev["mitigations"] == d["mitigations"]
                and prev["scope"] == d["scope"]):
            prev["_last"] = d
            continue
        out.append(dict(d))
    for d in out:
        last = d.pop("_last", None)
        if last:
            d["label"] = f"{d['label']}–{last['minor']}"
            if last["shipped"] != d["shipped"]:
                d["shipped"] = f"{d['shipped']}–{last['shipped']}"
    return out


def _impact_table(rows: list[dict]) -> list[str]:
    lines = ["| | platform | component | scope | ships | needs | support ends | mitigation |",
             "|---|---|---|---|---|---|---|---|"]
    for d in _group_minors(rows):
        mit = _mitigations(d["mitigations"])
        end = d.get("support_end") or "unknown"
        icon = ICON.get(d.get("severity", ""), "") if d.get("still_supported") else ""
        lines.append(f"| {icon} | {d['label']} | {d['component']} | {_scope(d['scope'])} | {_shipped(d)} | "
                     f"{d['required']} | {end} | {mit} |")
    return lines


def render_markdown(report: Report, max_rows: int = 200) -> str:
    """The dry-run output and the body of the bot's comment (without its marker)."""
    r = report
    out: list[str] = [f"## {ICON.get(r.verdict, '')} minbump: {r.verdict} — {r.summary}", ""]
    when = f"Judged as of **{r.as_of.isoformat()}**"
    if r.target_release:
        t = r.target_release
        when += f", the date of the release this change ships in ({t['name']}, `{t['tag']}`)"
        when += f": {t['evidence']}" if t.get("evidence") else ""  # how the target was found
    out += [when + ".", f"Rule: {r.support_rule}.", ""]
    if r.errors:
        out += ["### Could not read", ""]
        out += [f"- `{e['file']}:{e['line']}` ({e.get('ref', 'head')}): {e['message']}" for e in r.errors]
        out.append("")
    if r.changes:
        out += ["### Minimums changed", "", "| constant | kind | scope | old | new | where |", "|---|---|---|---|---|---|"]
        for c in r.changes:
            out.append(f"| `{c['constant']}` | {c['kind']} | {_scope(c['scope'])} | {c['old'] or '—'} | "
                       f"{c['new'] or '—'} | `{c['file']}:{c['line']}` |")
        out.append("")
    supported = r.still_supported_drops
    if supported:
        out += [f"### Still-supported platforms this drops ({len(supported)})", ""]
        out += _impact_table(supported[:max_rows])
        if len(supported) > max_rows:
            out.append(f"\n…and {len(supported) - max_rows} more (see the JSON report).")
        out.append("")
    elif r.impacted or r.effective:
        out += ["No still-supported platform is dropped.", ""]
    if r.deprecation:
        out += ["### One release of warning first?", ""]
        for d in r.deprecation:
            mark = "✅" if d["warned"] else "❔" if d["warned"] is None else "❌"
            scope = "" if _scope(d["scope"]) == "all" else f" ({_scope(d['scope'])})"
            out.append(f"- {mark} `{d['constant']}`{scope} {d['old'] or '—'} → {d['new']}: {d['evidence']}")
        out.append("")
    gone = [d for d in r.impacted if not d["still_supported"]]
    if gone:
        out += ["<details><summary>Also dropped, already past end of support "
                f"({len(gone)})</summary>", ""]
        out += _impact_table(gone[:max_rows])
        out += ["", "</details>", ""]
    for n in r.next_drops:
        rel = n["release"]
        when = f"{rel['name']} ({rel['date']})" if rel else n["as_of"]
        still = [d for d in n["impacted"] if d["still_supported"]]
        out += [f"### Announced: `{n['constant']}` = {n['value']}", "",
                f"When it becomes the minimum, as of {when} it would drop "
                f"{len(still)} still-supported platform{'s' if len(still) != 1 else ''}."]
        if still:
            out += [""] + _impact_table(still[:max_rows])
        out.append("")
    if r.obsolete_feature_minimums:
        out += ["### Feature checks now always true", "",
                "These feature minimums are at or below the new hard minimum; their version checks can go:", ""]
        out += [f"- `{o['constant']}` = {o['value']} ≤ {o['hard_minimum']} (`{o['file']}:{o['line']}`)"
                for o in r.obsolete_feature_minimums]
        out.append("")
    out += render_policy_changes(r.policy_changes, r.link_base)
    if r.notes:
        out += ["### Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    low = [d for d in r.impacted if d.get("confidence") == "low"]
    if low:
        out += ["Versions marked `?` rest on low-confidence data; check them before relying on them.", ""]
    origins = ", ".join(r.matrix_origins) or "policy/matrix.yaml"
    out.append(f"<sub>minbump {__version__} · head `{r.head[:12]}` · base `{r.base[:12]}` · config: "
               f"{r.config_origin} · matrix: {origins}" + (f" (data as of {r.data_as_of})" if r.data_as_of else "")
               + "</sub>")
    return "\n".join(out) + "\n"
