#!/usr/bin/env python3
"""Run every benchmark in turn; each prints its own ratio as its last line.

    python bench/run.py            # full sizes (several minutes; builds fixtures into bench/out/)
    python bench/run.py --quick    # tiny sizes, as the smoke test runs them
    python bench/run.py dryrun webhook_ack   # a subset

The summary at the end repeats each script's last line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

SCRIPTS = {
    "dryrun": ([], ["--commits", "200", "--pairs", "1", "--warmup", "0", "--quick"]),
    "webhook_ack": ([], ["--engine", "python", "--requests", "40", "--pairs", "1", "--seconds", "1"]),
    "audit": ([], ["--commits", "200", "--pairs", "1"]),
    "e2e": ([], ["--commits", "200", "--deliveries", "1", "--gap", "0", "--no-pacing"]),
    "growth": ([], ["--commits", "200,400", "--watched", "10,40", "--watched-commits", "200", "--pairs", "1",
                    "--warmup", "0", "--svg", "{out}/growth-quick.svg"]),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="run all benchmarks")
    ap.add_argument("names", nargs="*", help=f"which of {', '.join(SCRIPTS)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the scripts run, measures nothing")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(BENCH))
    import _common as c

    names = args.names or list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}")
    summary = []
    rc = 0
    for name in names:
        full, quick = SCRIPTS[name]
        extra = [a.replace("{out}", str(c.OUT)) for a in (quick if args.quick else full)]
        cmd = [sys.executable, str(BENCH / f"{name}.py")] + extra
        print(f"$ {' '.join([Path(cmd[0]).name] + ['bench/' + Path(cmd[1]).name] + extra)}", flush=True)
        t = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(p.stdout)
        last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "(no output)"
        if p.returncode != 0:
            rc = 1
            last = f"FAILED (exit {p.returncode}): {last}"
        summary.append(f"{name:12s} {last}  [{time.perf_counter() - t:.0f} s]")
        print(flush=True)
    print("summary:")
    for line in summary:
        print("  " + line)
    return rc


if __name__ == "__main__":
    sys.exit(main())
