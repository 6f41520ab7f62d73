#!/usr/bin/env python3
"""Dry-run against its floor: `minbump dry-run` vs the bare git work on a Nova-sized repo.

minbump side: wall time of ``minbump dry-run --repo R --base main --head bump``
(the venv's console script, else ``python -m bot``).

Floor: what no Python tool answering the same question can avoid, run as
subprocesses in sequence: ``python -c pass`` (interpreter start), then
``git for-each-ref refs/tags`` (tag lookup), ``git merge-base --is-ancestor
refs/tags/<previous release> main`` (is the last release behind the base: the
release the change ships in is read from the tags' topology since issue 10,
and no tool can tell it without this walk; minbump asks the same of the
release's final and rc tags in one ``for-each-ref --merged``), ``git diff
--name-status main...bump`` (what the range changes) and one ``git cat-file
--batch`` that reads every watched file (``nova/virt/libvirt/*.py``) and the
config at base, head and the previous release tag. ``--floor-without-topology``
leaves the walk out (the floor before issue 10, for comparing with older
figures).

The two are timed in alternating pairs after one warm-up each; the figure is
the median of the per-pair ratios (target: at most 2.5).

    python bench/dryrun.py [--commits 60000] [--watched 10] [--pairs 9] [--repo PATH]

The fixture is built with bench/make_repo.py into bench/out/ (reused when it
matches the parameters). The last line printed is the ratio.
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
import make_repo  # noqa: E402

TARGET = 2.5


def fixture(commits: int, watched: int = 10, tags: int = 300, repo: Path | None = None) -> tuple[Path, dict]:
    """The benchmark repository and its metadata: `repo` when given (made by make_repo.py), else the one
    with these parameters in bench/out/ (built on first use)."""
    if repo is not None:
        meta = make_repo.read_meta(repo)
        if meta is None:
            raise SystemExit(f"{repo}: no .git/minbump-bench.json (build it with bench/make_repo.py)")
        return repo, meta
    repo = c.OUT / f"nova-{commits}c-{watched}w-{tags}t"
    return repo, make_repo.ensure_repo(repo, commits, watched, tags)


def floor_once(repo: Path, meta: dict, topology: bool = True) -> float:
    """Seconds for the floor: interpreter start + the git commands answering the question."""
    env = c.env_with_root()
    base, head, prev = meta["base"], meta["head"], meta["previous_release_tag"]
    specs = [f"{rev}:{p}" for rev in (base, head, prev) for p in meta["watched_paths"]]
    specs.append(f"{base}:{meta['config_path']}")
    batch_in = ("\n".join(specs) + "\n").encode()
    git = ["git", "-C", str(repo)]
    t = time.perf_counter()
    subprocess.run([c.python(), "-c", "pass"], check=True, env=env)
    subprocess.run(git + ["for-each-ref", "--format=%(refname) %(objectname) %(*objectname) %(creatordate:unix)",
                          "refs/tags"], check=True, stdout=subprocess.DEVNULL, env=env)
    if topology:  # exit 0: the tag is an ancestor of the base
        subprocess.run(git + ["merge-base", "--is-ancestor", f"refs/tags/{prev}", base], check=True, env=env)
    subprocess.run(git + ["diff", "--name-status", f"{base}...{head}"], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    out = subprocess.run(git + ["cat-file", "--batch"], input=batch_in, check=True,
                         stdout=subprocess.PIPE, env=env).stdout
    elapsed = time.perf_counter() - t
    if b" missing\n" in out:
        raise SystemExit("floor: a watched file is missing from the fixture")
    return elapsed


def minbump_args(repo: Path, meta: dict, fmt: str | None = None) -> list[str]:
    args = c.minbump_cmd() + ["dry-run", "--repo", str(repo), "--base", meta["base"], "--head", meta["head"]]
    if fmt:
        args += ["--format", fmt]
    return args


def minbump_once(repo: Path, meta: dict, fmt: str | None = None) -> float:
    args = minbump_args(repo, meta, fmt)
    t = time.perf_counter()
    p = subprocess.run(args, capture_output=True, env=c.env_with_root(), cwd=c.run_cwd())
    elapsed = time.perf_counter() - t
    if p.returncode not in (0, 1) or not p.stdout.strip():
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise SystemExit(f"minbump dry-run failed (exit {p.returncode}): {err[-1] if err else 'no output'}")
    return elapsed


def verdict(repo: Path, meta: dict) -> str:
    p = subprocess.run(minbump_args(repo, meta, "json"), capture_output=True, env=c.env_with_root(), cwd=c.run_cwd())
    try:
        return json.loads(p.stdout).get("verdict", "?")
    except ValueError:
        return f"? (exit {p.returncode})"


def max_rss_kb(cmd: list[str]) -> int | None:
    """Peak RSS of one run, by /usr/bin/time -v (None when it is absent)."""
    if not Path("/usr/bin/time").exists():
        return None
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=c.env_with_root(), cwd=c.run_cwd(), text=True)
    for line in p.stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.rsplit(":", 1)[1])
    return None


def profile(repo: Path, meta: dict, top: int = 15) -> None:
    """Where the time goes: the slowest imports (-X importtime) and a cProfile of one run."""
    import io
    import pstats

    env = c.env_with_root()
    tail = minbump_args(repo, meta)[len(c.minbump_cmd()):]
    err = subprocess.run([c.python(), "-X", "importtime", "-m", "bot"] + tail, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=c.run_cwd()).stderr
    rows = []  # (cumulative us, self us, name with its nesting indent)
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|")
        rows.append((int(cum_us), int(self_us), name.rstrip()))
    top_level = sum(cum for cum, _, name in rows if name[1:2] != " ")
    print(f"imports: {top_level / 1000:.0f} ms in all (top-level modules); slowest {top} by cumulative time:")
    for cum, self_us, name in sorted(rows, reverse=True)[:top]:
        print(f"  {cum / 1000:7.1f} ms cumulative {self_us / 1000:6.1f} ms self  {name.strip()}")
    prof = c.OUT / "dryrun.prof"
    subprocess.run([c.python(), "-m", "cProfile", "-o", str(prof), "-m", "bot"] + tail,
                   stdout=subprocess.DEVNULL, env=env, cwd=c.run_cwd(), check=False)
    buf = io.StringIO()
    pstats.Stats(str(prof), stream=buf).sort_stats("tottime").print_stats(top)
    lines = buf.getvalue().splitlines()
    start = next((i for i, ln in enumerate(lines) if "ncalls" in ln), 0)
    print(f"cProfile of one run (under the profiler), top {top} by own time; profile kept in {prof}:")
    print("\n".join("  " + ln for ln in lines[start:] if ln.strip()))


def breakdown(repo: Path, meta: dict, rounds: int = 7) -> None:
    """Additive stages, each a whole process, interleaved: start-up, imports, the run."""
    env = c.env_with_root()
    py = c.python()
    stages = [
        ("python -c pass", [py, "-c", "pass"]),
        ("+ import bot.cli (click + commands)", [py, "-c", "import bot.cli"]),
        ("+ import bot.git.gather (analyzer)", [py, "-c", "import bot.cli, bot.git.gather, bot.core.report"]),
        ("+ run_refs (git + analysis)", [py, "-c", "import sys, bot.cli, bot.git.gather, bot.core.report; "
                                        "bot.git.gather.run_refs(sys.argv[1], sys.argv[2], sys.argv[3])",
                                        str(repo), meta["base"], meta["head"]]),
        ("+ render (= minbump dry-run)", minbump_args(repo, meta)),
    ]
    times: list[list[float]] = [[] for _ in stages]
    for r in range(rounds + 1):
        idx = list(range(len(stages)))
        for i in (idx if r % 2 == 0 else idx[::-1]):
            t = time.perf_counter()
            subprocess.run(stages[i][1], stdout=subprocess.DEVNULL, env=env, cwd=c.run_cwd())
            if r:
                times[i].append(time.perf_counter() - t)
    print(f"breakdown (median of {rounds} interleaved rounds; each stage a whole process):")
    prev = 0.0
    for (name, _), ts in zip(stages, times):
        m = c.median(ts)
        print(f"  {name:34s} {m * 1000:6.0f} ms  (+{(m - prev) * 1000:4.0f} ms)")
        prev = m


def measure(repo: Path, meta: dict, pairs: int, warmup: int = 1, topology: bool = True) -> dict:
    """Alternating pairs; returns medians and the median per-pair ratio (None if minbump absent)."""
    if not c.have_module("bot/cli/__init__.py"):
        floors = [floor_once(repo, meta, topology) for _ in range(pairs)]
        return {"floor_s": c.median(floors), "minbump_s": None, "ratio": None, "pairs": pairs}
    tm, tf = c.alternate(lambda: minbump_once(repo, meta), lambda: floor_once(repo, meta, topology), pairs, warmup)
    ratios = c.pair_ratios(tm, tf)
    return {"floor_s": c.median(tf), "minbump_s": c.median(tm), "ratio": c.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios), "pairs": pairs,
            "minbump_all": tm, "floor_all": tf}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="minbump dry-run vs the git floor")
    ap.add_argument("--commits", type=int, default=60_000)
    ap.add_argument("--watched", type=int, default=10)
    ap.add_argument("--tags", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=9, help="alternating pairs (default 9; at least 5 for the figure)")
    ap.add_argument("--repo", type=Path, help="an existing fixture made by make_repo.py")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured runs of each side first (default 1)")
    ap.add_argument("--quick", action="store_true", help="skip the verdict and peak-RSS runs (smoke test)")
    ap.add_argument("--breakdown", action="store_true", help="also time start-up, imports and run as stages")
    ap.add_argument("--profile", action="store_true", help="also print the slowest imports and a cProfile top list")
    ap.add_argument("--floor-without-topology", dest="topology", action="store_false",
                    help="leave the release-topology walk out of the floor (the floor before issue 10)")
    args = ap.parse_args(argv)
    repo, meta = fixture(args.commits, args.watched, args.tags, args.repo)
    print(f"machine: {c.machine()}")
    print(f"fixture: {meta['commits_total']} commits ({meta['commits_main']} on main), {meta['tags']} tags, "
          f"{meta['paths']} paths, driver.py {meta['driver_lines']} lines, "
          f"{meta['watched_constants']} watched constants, built in {meta['build_seconds']} s")
    print(f"command: {' '.join(minbump_args(repo, meta))}")
    print("floor: python -c pass, for-each-ref, " + ("merge-base --is-ancestor (topology), " if args.topology else "")
          + "diff, cat-file --batch")
    r = measure(repo, meta, args.pairs, args.warmup, args.topology)
    if r["ratio"] is None:
        print(f"floor median {c.fmt_ms(r['floor_s'])} over {r['pairs']} runs")
        print("ratio dry-run/floor: pending (bot/cli/__init__.py does not exist yet)")
        return 0
    if not args.quick:
        rss = max_rss_kb(minbump_args(repo, meta))
        v = verdict(repo, meta)
        print(f"verdict: {v}; peak RSS {rss / 1024:.0f} MiB (/usr/bin/time -v)" if rss else f"verdict: {v}")
    print("minbump runs: " + ", ".join(c.fmt_ms(x) for x in r["minbump_all"]))
    print("floor runs:   " + ", ".join(c.fmt_ms(x) for x in r["floor_all"]))
    print(f"median minbump {c.fmt_ms(r['minbump_s'])}, floor {c.fmt_ms(r['floor_s'])}; "
          f"per-pair ratio range {r['ratio_min']:.2f}..{r['ratio_max']:.2f}")
    if args.breakdown:
        breakdown(repo, meta)
    if args.profile:
        profile(repo, meta)
    ok = "PASS" if r["ratio"] <= TARGET else "FAIL"
    print(f"ratio dry-run/floor: {r['ratio']:.2f} (median of {r['pairs']} alternating pairs; "
          f"target <= {TARGET}) {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
