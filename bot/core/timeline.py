"""`minbump audit`'s pure half: rows of dry-run reports -> the table, the timeline and the chart's data.

The git walk (bot/git/audit.py) produces one row per commit that changed a
watched constant: the dry-run report of (parent, commit) plus sha, subject and
date, or an error. Everything people read is derived here, so the markdown,
JSON and HTML outputs say the same thing.
"""

from __future__ import annotations

from datetime import date, timedelta

from bot.core.calendar import Calendar
from bot.core.dates import parse_day
from bot.core.impact import shipped_on
from bot.core.matrix import Matrix
from bot.core.version import Version

ROW_KEYS = ("sha", "subject", "date")  # what a row adds to the dry-run report
ABOVE = 4  # distinct shipped versions above the highest minimum that the chart still shows


def _scope_text(scope: dict | None) -> str:
    parts = [v for v in ((scope or {}).get("arch"), (scope or {}).get("hypervisor")) if v]
    return f" [{', '.join(parts)}]" if parts else ""


def warned(row: dict) -> str:
    """yes, no, unknown or n.a.: did a released version warn before each raise this commit makes?

    n.a. when nothing was raised; unknown when the previous release's tag is
    not in the repository (the warning could not be checked); yes only when
    every raise was warned.
    """
    deps = row.get("deprecation") or []
    if not deps:
        return "n.a."
    if all(d.get("warned") for d in deps):
        return "yes"
    if any(not d.get("warned") and "in the repository" in (d.get("evidence") or "") for d in deps):
        return "unknown"
    return "no"


def summarize(row: dict) -> dict:
    """One table line: date, short sha, subject, release, changes, verdict, drops, warned, error."""
    out = {"date": row["date"], "sha": row["sha"][:10], "subject": row["subject"]}
    if row.get("error"):
        return {**out, "release": "-", "changes": "-", "verdict": "error", "dropped": 0, "dropped_names": [],
                "warned": "n.a.", "error": row["error"]}
    target = row.get("target_release")
    changes = [f"{c['constant']}{_scope_text(c.get('scope'))} {c['old'] or '-'} -> {c['new'] or 'removed'}"
               for c in row.get("changes", [])]
    names: list[str] = []
    for d in row.get("impacted", []):
        if d.get("still_supported") and d["label"] not in names:
            names.append(d["label"])
    problems = [f"{e['file']}:{e['line']}: {e['message']}" for e in row.get("errors", []) if e.get("ref") == "head"]
    return {**out, "release": f"{target['name']} ({target['tag']})" if target else "-",
            "changes": "; ".join(changes) or "-", "verdict": row.get("verdict", "neutral"),
            "dropped": len(names), "dropped_names": names, "warned": warned(row),
            "error": "; ".join(problems) or None}


def judged(row: dict) -> bool:
    """False for a row whose commit could not be judged: an error, or a watched file that does not parse."""
    return not row.get("error") and not any(e.get("ref") == "head" for e in row.get("errors", []))


def timeline(rows: list[dict]) -> dict[str, list[dict]]:
    """Per component, every change of a watched constant in date order: {date, sha, constant, kind, scope, value}.

    Commits that could not be judged are left out: their values are not known.
    """
    out: dict[str, list[dict]] = {}
    for row in filter(judged, rows):
        for c in row.get("changes", []):
            out.setdefault(c["component"], []).append({
                "date": row["date"], "sha": row["sha"], "constant": c["constant"], "kind": c["kind"],
                "scope": c.get("scope") or {"arch": None, "hypervisor": None}, "value": c["new"]})
    return out


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: dict) -> str:
    """The audit as a markdown table (the default output)."""
    rows = [summarize(r) for r in doc["rows"]]
    verdicts: dict[str, int] = {}
    for r in rows:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    counts = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) or "none"
    lines = [f"## minbump audit of {doc['branch']} in {doc['repo']}", "",
             f"{len(rows)} commit(s) changed a watched constant ({counts}); config {doc['config']}, "
             f"matrix data as of {doc['data'].get('as_of') or 'unknown'}.", ""]
    if doc.get("commits_scanned") is not None:
        lines[-2] += f" {doc['commits_scanned']} commit(s) touching watched files were read."
    if not rows:
        return "\n".join(lines) + "\n"
    lines += ["| date | commit | subject | release | changes | verdict | still-supported dropped | warned |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dropped = f"{r['dropped']}: {', '.join(r['dropped_names'])}" if r["dropped"] else "0"
        verdict = r["verdict"] + (f" ({r['error']})" if r.get("error") else "")
        lines.append("| " + " | ".join(_cell(x) for x in (r["date"], f"`{r['sha']}`", r["subject"], r["release"],
                                                          r["changes"], verdict, dropped, r["warned"])) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ chart ---

def chart_span(rows: list[dict], today: date) -> tuple[date, date]:
    """The chart's time range: a year before the first change to two years after the last (not past today)."""
    days = [parse_day(r["date"]) for r in rows if judged(r)] or [today]
    return min(days) - timedelta(days=365), max(min(max(days) + timedelta(days=730), today), max(days))


def chart_data(component: str, rows: list[dict], matrix: Matrix, calendar: Calendar | None,
               rule: str, start: date, end: date) -> dict:
    """What the timeline chart of one component shows; pure data, drawn by bot/cli/chart.py.

    hard/next: [(date, version)] steps, starting with the value before the
    first change; platforms: (label, from, to, shipped version) segments of
    releases supported within the chart whose version is at or near the
    plotted minimums; releases: the calendar's (date, name); drops:
    (date, version, label) of still-supported platforms a raise dropped.
    """
    mine = [r for r in rows if judged(r)]
    hard: list[tuple[date, str]] = []
    nxt: list[tuple[date, str]] = []
    for r in mine:
        day = parse_day(r["date"])
        for c in r.get("changes", []):
            scope = c.get("scope") or {}
            if c["component"] != component or scope.get("arch") or scope.get("hypervisor") \
                    or c["kind"] not in ("hard", "next"):
                continue
            series = hard if c["kind"] == "hard" else nxt
            if not series and c["old"]:
                series.append((start, c["old"]))
            if c["new"]:
                series.append((day, c["new"]))
    drops = []
    for r in mine:
        for d in r.get("impacted", []):
            if d["component"] == component and d.get("still_supported") and d.get("shipped"):
                drops.append((parse_day(r["date"]), d["shipped"], d["label"]))
    minimums = [Version.parse(v) for _, v in hard + nxt]
    # What each release ships over time, as the judgement sees it (minors, updates): sampled on the
    # days the chart is about and drawn as a segment per version.
    marks = sorted({start, *(parse_day(r["date"]) for r in mine),
                    *(r.date for r in (calendar.releases if calendar else []) if start <= r.date <= end)})
    candidates = []
    for p in matrix.platforms:
        end_of_support = p.support_end(rule) or end  # no announced end: supported past the chart
        if p.released is None or end_of_support < start or p.released > end:
            continue
        days = [max(p.released, start)] + [d for d in marks if max(p.released, start) < d < end_of_support]
        pieces: list[tuple[date, Version]] = []
        for day in days:
            v = shipped_on(matrix, p, component, day).version
            if v is not None and (not pieces or pieces[-1][1] != v):
                pieces.append((day, v))
        for i, (day, v) in enumerate(pieces):
            stop = pieces[i + 1][0] if i + 1 < len(pieces) else end_of_support
            candidates.append((p.label, day, stop, v))
    # The chart's question is who the minimums cut off: every release at or below the highest
    # minimum, and the few versions just above it.
    top = max(minimums) if minimums else None
    above = sorted({c[3] for c in candidates if top is not None and c[3] > top})[:ABOVE]
    platforms = [(label, rel, stop, str(v)) for label, rel, stop, v in candidates
                 if top is None or v <= top or v in above]
    releases = [(r.date, r.name) for r in (calendar.releases if calendar else []) if start <= r.date <= end]
    versions = {Version.parse(v) for _, v in hard + nxt} | {Version.parse(p[3]) for p in platforms} \
        | {Version.parse(d[1]) for d in drops}
    return {"axis": [str(v) for v in sorted(versions)], "component": component, "hard": hard, "next": nxt,
            "platforms": platforms, "releases": releases, "drops": drops, "start": start, "end": end}
