#!/usr/bin/env python3
"""`minbump audit` against its floor on the Nova-sized benchmark repository (60k commits).

minbump side: wall time of ``minbump audit --repo R --branch main --format json``
(the whole history: every first-parent commit that changed a watched
constant, each judged as ``dry-run`` would).

Floor: git's own pickaxe over the same paths, the least work that finds
the commits whose diff touches a watched name:
``git log --first-parent -G'<regex of the watched names>' --format=%H -- <watched paths>``,
the regex built from the config's component and hypervisor tokens
(``MIN_(LIBVIRT|QEMU|...)``, which NEXT_MIN_* also matches).

Timed in alternating pairs after one warm-up each; the figure is the median
of the per-pair ratios (goal: at most 2.0). The last line printed is the ratio.

    python bench/audit.py [--commits 60000] [--pairs 5] [--repo PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import dryrun  # noqa: E402
import make_repo  # noqa: E402

TARGET = 2.0


def names_regex(repo: Path) -> str:
    """The watched names as a regex, from the benchmark repository's config (its preset)."""
    code = ("import json, sys; from bot.data.config import from_text; "
            "cfg = from_text(open(sys.argv[1], 'rb').read(), 'config'); "
            "print(json.dumps([sorted(cfg.components), sorted(cfg.hypervisors), cfg.watch]))")
    text = subprocess.run(["git", "-C", str(repo), "show", f"main:{make_repo.CONFIG}"], capture_output=True,
                          check=True).stdout
    cfg_file = c.OUT / "audit-config.yml"
    cfg_file.write_bytes(text)
    comps, hvs, watch = json.loads(subprocess.run([c.python(), "-c", code, str(cfg_file)], capture_output=True,
                                                  text=True, check=True, env=c.env_with_root(),
                                                  cwd=c.run_cwd()).stdout)
    return "MIN_(" + "|".join(comps + hvs) + ")", watch


def floor_cmd(repo: Path, regex: str, watch: list[str]) -> list[str]:
    return ["git", "-C", str(repo), "log", "--first-parent", f"-G{regex}", "--format=%H", "main", "--", *watch]


def minbump_cmd(repo: Path) -> list[str]:
    return c.minbump_cmd() + ["audit", "--repo", str(repo), "--branch", "main", "--format", "json"]


def once(cmd: list[str]) -> tuple[float, bytes]:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=c.env_with_root(), cwd=c.run_cwd())
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise SystemExit(f"{cmd[0]} failed (exit {p.returncode}): {err[-1] if err else 'no output'}")
    return elapsed, p.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="minbump audit vs git's pickaxe")
    ap.add_argument("--commits", type=int, default=60_000)
    ap.add_argument("--watched", type=int, default=10)
    ap.add_argument("--tags", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--repo", type=Path, help="an existing fixture made by make_repo.py")
    args = ap.parse_args(argv)
    repo, meta = dryrun.fixture(args.commits, args.watched, args.tags, args.repo)
    print(f"machine: {c.machine()}")
    print(f"fixture: {meta['commits_total']} commits ({meta['commits_main']} on main), {meta['tags']} tags, "
          f"driver.py {meta['driver_lines']} lines, {meta['driver_commits']} commits edit it")
    regex, watch = names_regex(repo)
    floor, mine = floor_cmd(repo, regex, watch), minbump_cmd(repo)
    print(f"floor:   {' '.join(floor)}")
    print(f"minbump: {' '.join(mine)}")
    _, out = once(floor)
    _, doc = once(mine)
    data = json.loads(doc)
    verdicts: dict[str, int] = {}
    for r in data["rows"]:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    print(f"pickaxe finds {len(out.split())} commits; audit read {data['commits_scanned']} commits touching "
          f"watched files and made {len(data['rows'])} rows "
          f"({', '.join(f'{n} {v}' for v, n in sorted(verdicts.items()))})")
    tm, tf = c.alternate(lambda: once(mine)[0], lambda: once(floor)[0], args.pairs, warmup=0)
    ratios = c.pair_ratios(tm, tf)
    print("minbump runs: " + ", ".join(c.fmt_ms(x) for x in tm))
    print("floor runs:   " + ", ".join(c.fmt_ms(x) for x in tf))
    print(f"median minbump {c.fmt_ms(c.median(tm))}, floor {c.fmt_ms(c.median(tf))}; "
          f"per-pair ratio range {min(ratios):.2f}..{max(ratios):.2f}")
    ratio = c.median(ratios)
    print(f"ratio audit/pickaxe: {ratio:.2f} (median of {args.pairs} alternating pairs; target <= {TARGET}) "
          f"{'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
