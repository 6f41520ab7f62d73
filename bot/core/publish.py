"""What the bot writes on a pull request, as text: the comment, the status title, annotations.

Pure (no GitHub, no I/O): :mod:`bot.service.github` sends what this builds,
:mod:`bot.service.job` decides which to build. Kept apart so the wording and
GitHub's size limits can be tested without a server.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = "<!-- minbump -->"
COMMENT_LIMIT = 65_536
SUMMARY_LIMIT = 65_535
STATUS_LIMIT = 140
_VERDICT_MARK = re.compile(r"<!-- minbump:verdict=(\w+) -->")


def truncate(text: str, limit: int, note: str) -> str:
    """Cut ``text`` at a line boundary so that text + note fits in ``limit`` characters."""
    if len(text) <= limit:
        return text
    room = limit - len(note) - 2
    cut = text.rfind("\n", 0, room)
    cut = room if cut < room // 2 else cut
    return text[:cut].rstrip() + "\n\n" + note


def previous_verdict(body: str | None) -> str | None:
    """The verdict an earlier version of our comment recorded (for "resolved")."""
    m = _VERDICT_MARK.search(body or "")
    return m.group(1) if m else None


def comment_body(report_md: str, verdict: str, head_sha: str, watched_changed: bool,
                 previous: str | None, limit: int = COMMENT_LIMIT) -> str:
    """The comment: marker, state, (resolved note), report, and the head sha it describes.

    "Resolved" appears when an earlier version of this comment reported an impact
    (fail/warn) and the new head has none.
    """
    impact = verdict in ("fail", "warn")
    resolved = not impact and previous in ("fail", "warn", "resolved")
    state = "resolved" if resolved else verdict
    head = f"{MARKER}\n<!-- minbump:verdict={state} -->\n"
    foot = f"\n\n<sub>minbump checked head {head_sha}</sub>\n"
    if resolved:
        why = ("no longer changes a watched minimum" if not watched_changed
               else "no longer drops a still-supported platform without a release of warning")
        banner = f"### ✅ Resolved\n\nAs of head `{head_sha[:12]}`, this pull request {why}.\n\n"
        report_md = banner + (report_md if watched_changed else "")
    room = limit - len(head) - len(foot) - 100  # margin for GitHub's own counting
    note = (f"_The report was truncated to fit GitHub's comment limit; run "
            f"`minbump dry-run --base BASE --head {head_sha[:12]}` for the full report._")
    return head + truncate(report_md, room, note) + foot


def report_title(verdict: str, summary: str | None) -> str:
    """The status / check-run title of a report."""
    return f"minbump: {verdict} — {summary}" if summary else f"minbump: {verdict}"


def error_title(problem: str) -> str:
    """The status / check-run title when the bot could not check the pull request."""
    return f"minbump: cannot check — {problem}"


def not_configured_title(problem: str) -> str:
    return f"minbump: not configured — {problem}"


def error_markdown(problem: str, verdict: str) -> str:
    """The report body when an input could not be read or the job ran out of time.

    ``verdict`` is the repository's ``strictness.error`` (default neutral): an
    unreadable input neither blocks nor passes a PR unless the project says so.
    """
    return ("### ⚠️ minbump could not check this pull request\n\n"
            f"{problem}\n\n"
            f"Verdict `{verdict}` (the repository's `strictness.error`). Nothing was retried: "
            "the same input gives the same result. Run `minbump dry-run` locally for details.")


def annotations_for(report: Any) -> list[dict[str, Any]]:
    """One annotation per changed constant line, at the level of the verdict."""
    level = {"fail": "failure", "warn": "warning"}.get(report.verdict, "notice")
    drops = report.still_supported_drops
    plats = ", ".join(sorted({d.get("label") or d["platform"] for d in drops})[:10])
    out = []
    for c in report.changes:
        if not c.get("file") or not c.get("line"):
            continue
        msg = f"{c['constant']}: {c.get('old') or '—'} → {c.get('new') or '—'}."
        if drops:
            msg += f" Drops still-supported: {plats}."
        out.append({"path": c["file"], "start_line": int(c["line"]), "end_line": int(c["line"]),
                    "annotation_level": level, "title": f"minbump: {report.verdict}",
                    "message": msg[:64000]})
    return out
