"""Shared helpers for the benchmark scripts: paths, alternating timing, machine facts.

Every benchmark compares minbump with a floor measured in the same run, in
alternating pairs (A B, B A, A B, ...), so that a noisy machine moves both
sides alike and the ratio holds. Standard library only.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable, Sequence

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# git-ignored: generated repositories and data dirs (MINBUMP_BENCH_OUT moves it, e.g. for the smoke test)
OUT = Path(os.environ["MINBUMP_BENCH_OUT"]) if os.environ.get("MINBUMP_BENCH_OUT") else BENCH / "out"


def dev_python() -> str:
    """The checkout's venv interpreter (else this one)."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


_INSTALLED: str | None = None
MODE = os.environ.get("MINBUMP_BENCH_INSTALL", "snapshot")  # "snapshot" | "dev"
# The tree whose bot/ and policy/ the snapshot copies: the checkout, or (to try a patch
# without touching the checkout) another copy of it.
SOURCE = Path(os.environ["MINBUMP_BENCH_SOURCE"]) if os.environ.get("MINBUMP_BENCH_SOURCE") else ROOT


def installed_python() -> str:
    """An interpreter where minbump is installed as a wheel installs it, not as an editable checkout.

    The checkout's venv has minbump as an *editable* install, whose path-finder
    hook (a .pth file) costs every interpreter start ~20 ms: a user's
    ``pip install minbump`` has no such hook. So the benchmarks run both sides
    in ``bench/out/venv-installed``: a venv without pip whose site-packages
    holds a copy of ``bot/`` with ``policy/`` as ``bot/policy`` (the wheel's
    layout) and one .pth line pointing at the checkout venv's site-packages
    for the dependencies (a plain path line: that directory's own .pth hooks
    are not run). The copy is refreshed on every run of a script.
    """
    global _INSTALLED
    if _INSTALLED:
        return _INSTALLED
    base = dev_python()
    venv = OUT / "venv-installed"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    paths = subprocess.run([base, "-c", "import sysconfig, json; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    site.mkdir(parents=True, exist_ok=True)
    (site / "_minbump_bench_deps.pth").write_text(paths + "\n")
    dest = site / "bot"
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(SOURCE / "bot", dest, ignore=ignore)
    if (SOURCE / "policy").is_dir():
        shutil.copytree(SOURCE / "policy", dest / "policy", ignore=ignore, dirs_exist_ok=True)
    _INSTALLED = str(py)
    return _INSTALLED


def python() -> str:
    """The interpreter both sides of a benchmark run with (see installed_python; MINBUMP_BENCH_INSTALL=dev
    uses the checkout's venv as it is)."""
    return dev_python() if MODE == "dev" else installed_python()


def env_with_root() -> dict[str, str]:
    """Environment for the measured processes: in dev mode ``python -m bot...`` imports the checkout."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if MODE == "dev":
        env["PYTHONPATH"] = str(ROOT)
    for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(k, None)
    # Measure what an installed minbump costs: an installed wheel has bytecode, so do not
    # let PYTHONDONTWRITEBYTECODE make every run recompile the sources (the snapshot's
    # bytecode is written inside bench/out/venv-installed by the warm-up runs).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def run_cwd() -> Path:
    """Working directory of the measured processes: not the checkout in snapshot mode
    (``python -m`` puts the working directory first on sys.path)."""
    if MODE == "dev":
        return ROOT
    OUT.mkdir(parents=True, exist_ok=True)
    return OUT


def minbump_cmd() -> list[str]:
    """``python -m bot`` with the benchmark interpreter (what the console script runs: bot.cli:main)."""
    return [python(), "-m", "bot"]


def have_module(relpath: str) -> bool:
    return (ROOT / relpath).is_file()


def alternate(a: Callable[[], float], b: Callable[[], float], pairs: int,
              warmup: int = 1) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` in alternating order (ABBA...), after ``warmup`` runs of each.

    Each callable returns its own measured seconds (so it can exclude setup).
    """
    for _ in range(warmup):
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    for i in range(pairs):
        if i % 2 == 0:
            ta.append(a())
            tb.append(b())
        else:
            tb.append(b())
            ta.append(a())
    return ta, tb


def pair_ratios(ta: Sequence[float], tb: Sequence[float]) -> list[float]:
    return [x / y for x, y in zip(ta, tb)]


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def percentile(xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def timed_run(cmd: Sequence[str], **kw) -> float:
    """Wall seconds of one subprocess run (output discarded); raises on failure."""
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, **kw)
    return time.perf_counter() - t


def machine() -> str:
    """One line: cores, CPU model, memory, OS, Python, git."""
    cores = os.cpu_count()
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        git = "git ?"
    return (f"nproc={cores}; cpu={model}; mem={mem}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; {git}")


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def which(name: str) -> str | None:
    return shutil.which(name)
