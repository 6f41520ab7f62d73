"""`minbump audit --format html`: one self-contained page (no network): the table and a chart per component."""

from __future__ import annotations

from datetime import date
from html import escape
from typing import TYPE_CHECKING

from bot.cli import chart
from bot.core.timeline import chart_data, chart_span, summarize

if TYPE_CHECKING:  # pragma: no cover
    from bot.core.calendar import Calendar
    from bot.core.matrix import Matrix

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1f2933}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #d9e2ec;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f4f8}
td.fail{background:#fde8e8}td.warn{background:#fff4de}td.pass{background:#e3f9e5}td.error{background:#eee}
code{font-size:12px}.chart svg{max-width:100%;height:auto}.hint{background:#fff4de;padding:.6em 1em}
"""


def _table(doc: dict) -> str:
    head = ("date", "commit", "subject", "release", "changes", "verdict", "still-supported dropped", "warned")
    out = ["<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in doc["rows"]:
        r = summarize(row)
        verdict = escape(r["verdict"]) + (f"<br><small>{escape(r['error'])}</small>" if r.get("error") else "")
        dropped = (f"{r['dropped']}: " + escape(", ".join(r["dropped_names"]))) if r["dropped"] else "0"
        cells = [escape(r["date"]), f"<code>{escape(r['sha'])}</code>", escape(r["subject"]), escape(r["release"]),
                 escape(r["changes"]).replace("; ", "<br>").replace(" -&gt; ", "&nbsp;→&nbsp;"), verdict, dropped,
                 escape(r["warned"])]
        out.append("<tr>" + "".join(f'<td class="{escape(r["verdict"])}">{c}</td>' if i == 5 else f"<td>{c}</td>"
                                    for i, c in enumerate(cells)) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _charts(doc: dict, matrix: Matrix, calendar: Calendar | None) -> str:
    components = list(doc["timeline"])
    if not components:
        return "<p>No watched constant changed: nothing to chart.</p>"
    if not chart.available():
        return (f'<p class="hint">The timeline charts need matplotlib: <code>{escape(chart.INSTALL_HINT)}</code>, '
                "then run the same command again.</p>")
    start, end = chart_span(doc["rows"], date.today())
    parts = []
    for comp in components:
        data = chart_data(comp, doc["rows"], matrix, calendar, doc["data"]["support_rule"], start, end)
        svg = chart.draw_svg(data)
        svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype: the page is HTML
        parts.append(f'<h2>{escape(comp)}</h2>\n<div class="chart">{svg}</div>')
    return "\n".join(parts)


def render_html(doc: dict, matrix: Matrix, calendar: Calendar | None) -> str:
    title = f"minbump audit of {doc['branch']}"
    counts: dict[str, int] = {}
    for row in doc["rows"]:
        counts[row.get("verdict", "neutral")] = counts.get(row.get("verdict", "neutral"), 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "none"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>{escape(title)}</h1>\n"
            f"<p>{escape(doc['repo'])} at <code>{escape(doc['head'][:12])}</code>: {len(doc['rows'])} commit(s) "
            f"changed a watched constant ({escape(summary)}). Config {escape(doc['config'])}; matrix data as of "
            f"{escape(str(doc['data'].get('as_of')))}; calendar {escape(str(doc['data'].get('calendar')))}.</p>\n"
            f"{_table(doc)}\n{_charts(doc, matrix, calendar)}\n</body></html>\n")
