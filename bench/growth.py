#!/usr/bin/env python3
"""How `minbump dry-run` time grows with repository size and with watched constants.

Two series, each point timed against its own floor (bench/dryrun.py's floor)
in alternating pairs, all points interleaved round-robin so they compare:

* repository size: 1,000, 10,000 and 60,000 commits (10 watched constants);
* watched constants in driver.py: 10, 100 and 1,000 (60,000 commits).

Prints a markdown table and writes a hand-rolled SVG plot (no plotting
library) to bench/growth.svg. The last line is the growth ratio of the
largest repository over the smallest.

    python bench/growth.py [--commits 1000,10000,60000] [--watched 10,100,1000]
                           [--watched-commits 60000] [--pairs 5] [--svg bench/growth.svg]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import dryrun  # noqa: E402


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def measure_all(specs: list[tuple[int, int]], pairs: int, warmup: int) -> list[dict]:
    """Build every fixture first, then time all points round-robin (forward, backward, ...).

    Interleaving the points as well as the two sides of each pair means a slow
    spell on the machine hits every point alike, so the rows compare.
    """
    fixtures = {spec: dryrun.fixture(*spec) for spec in dict.fromkeys(specs)}
    have = c.have_module("bot/cli/__init__.py")
    times: dict[tuple[int, int], tuple[list[float], list[float]]] = {spec: ([], []) for spec in fixtures}
    order = list(fixtures)
    for rnd in range(warmup + pairs):
        for spec in (order if rnd % 2 == 0 else order[::-1]):
            repo, meta = fixtures[spec]
            if not have:
                f = dryrun.floor_once(repo, meta)
                if rnd >= warmup:
                    times[spec][1].append(f)
                continue
            if rnd % 2 == 0:
                m, f = dryrun.minbump_once(repo, meta), dryrun.floor_once(repo, meta)
            else:
                f, m = dryrun.floor_once(repo, meta), dryrun.minbump_once(repo, meta)
            if rnd >= warmup:
                times[spec][0].append(m)
                times[spec][1].append(f)
    rows = []
    for commits, watched in specs:
        tm, tf = times[(commits, watched)]
        meta = fixtures[(commits, watched)][1]
        rows.append({"commits": commits, "watched": watched, "build_s": meta["build_seconds"],
                     "floor_s": c.median(tf), "minbump_s": c.median(tm) if tm else None,
                     "ratio": c.median(c.pair_ratios(tm, tf)) if tm else None})
    return rows


def fmt(x: float | None) -> str:
    return "pending" if x is None else f"{x * 1000:.0f}"


def table(rows: list[dict], key: str, label: str) -> str:
    out = [f"| {label} | minbump dry-run (ms) | floor (ms) | ratio | fixture build (s) |",
           "|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = "pending" if r["ratio"] is None else f"{r['ratio']:.2f}"
        out.append(f"| {r[key]:,} | {fmt(r['minbump_s'])} | {fmt(r['floor_s'])} | {ratio} | {r['build_s']:.1f} |")
    return "\n".join(out)


def svg(size_rows: list[dict], watch_rows: list[dict], path: Path) -> None:
    """Two log-x panels (time in ms against commits, against watched constants)."""
    W, H, PAD, GAP = 900, 380, 60, 60
    pw = (W - 2 * PAD - GAP) / 2
    ph = H - 2 * PAD
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
             'font-family="sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">minbump dry-run time vs its git floor '
             '(median of alternating pairs; ×N = minbump/floor)</text>']
    all_ms = [v * 1000 for rows in (size_rows, watch_rows) for r in rows
              for v in (r["minbump_s"], r["floor_s"]) if v is not None]
    ymax = max(all_ms + [1.0]) * 1.15
    nice = 10 ** math.floor(math.log10(ymax))
    step = next(s * nice for s in (0.2, 0.25, 0.5, 1, 2, 5) if ymax / (s * nice) <= 6)
    for panel, (rows, key, title) in enumerate(((size_rows, "commits", "commits on main (10 watched constants)"),
                                                 (watch_rows, "watched", "watched MIN_* constants"))):
        x0 = PAD + panel * (pw + GAP)
        y0 = PAD + ph
        parts.append(f'<rect x="{x0}" y="{PAD}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{H - 15}" text-anchor="middle">{title}</text>')
        xs = [r[key] for r in rows]
        if not xs:
            continue
        lo, hi = math.log10(min(xs)), math.log10(max(xs))
        span = (hi - lo) or 1.0

        def X(v: float, x0: float = x0, lo: float = lo, span: float = span) -> float:
            return x0 + 20 + (math.log10(v) - lo) / span * (pw - 40)

        def Y(ms: float, y0: float = y0) -> float:
            return y0 - ms / ymax * ph

        tick = 0.0
        while tick <= ymax:
            parts.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{Y(tick):.1f}" y2="{Y(tick):.1f}" stroke="#eee"/>')
            parts.append(f'<text x="{x0 - 5}" y="{Y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
            tick += step
        parts.append(f'<text x="{x0 - 45}" y="{PAD + ph / 2}" transform="rotate(-90 {x0 - 45} {PAD + ph / 2})" '
                     'text-anchor="middle">ms</text>')
        for v in xs:
            parts.append(f'<text x="{X(v):.1f}" y="{y0 + 16}" text-anchor="middle">{v:,}</text>')
        for field, color, name in (("minbump_s", "#c0392b", "minbump dry-run"), ("floor_s", "#2471a3", "floor")):
            pts = [(X(r[key]), Y(r[field] * 1000)) for r in rows if r[field] is not None]
            if not pts:
                continue
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
            for x, y in pts:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>')
            if field == "minbump_s":
                for r, (x, y) in zip([r for r in rows if r[field] is not None], pts):
                    if r.get("ratio") is not None:
                        parts.append(f'<text x="{x:.1f}" y="{y - 9:.1f}" text-anchor="middle" fill="{color}">'
                                     f'\u00d7{r["ratio"]:.1f}</text>')
            if panel == 0:
                ly = PAD + 18 + (0 if field == "minbump_s" else 18)
                parts.append(f'<line x1="{x0 + 12}" x2="{x0 + 32}" y1="{ly}" y2="{ly}" stroke="{color}" '
                             'stroke-width="2"/>')
                parts.append(f'<text x="{x0 + 38}" y="{ly + 4}">{name}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="dry-run time growth")
    ap.add_argument("--commits", default="1000,10000,60000")
    ap.add_argument("--watched", default="10,100,1000")
    ap.add_argument("--watched-commits", type=int, default=60_000, help="repository size for the watched series")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--svg", type=Path, default=c.BENCH / "growth.svg")
    args = ap.parse_args(argv)
    print(f"machine: {c.machine()}")
    size_specs = [(n, 10) for n in ints(args.commits)]
    watch_specs = [(args.watched_commits, w) for w in ints(args.watched)]
    rows = measure_all(size_specs + watch_specs, args.pairs, args.warmup)
    size_rows, watch_rows = rows[:len(size_specs)], rows[len(size_specs):]
    print(table(size_rows, "commits", "commits on main"))
    print()
    print(table(watch_rows, "watched", f"watched constants ({args.watched_commits:,} commits)"))
    svg(size_rows, watch_rows, args.svg)
    print(f"plot: {args.svg}")
    first, last = size_rows[0], size_rows[-1]
    if first["minbump_s"] is None:
        print("growth dry-run time largest/smallest repo: pending (bot/cli/__init__.py does not exist yet)")
    else:
        print(f"growth dry-run time {last['commits']:,}/{first['commits']:,} commits: "
              f"{last['minbump_s'] / first['minbump_s']:.2f}x (floor {last['floor_s'] / first['floor_s']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
