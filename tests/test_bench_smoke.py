"""The benchmarks still run: each script at tiny sizes, in a temp dir.

Benchmarks are not tests: nothing here checks a figure against its target
(that is a measurement on a quiet machine, see BENCHMARKS.md). These only
check that every script runs to completion and ends with its ratio line, so
the benchmarks do not rot as the code under them changes.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """One bench/out for the module: the tiny fixture repository is built once and reused."""
    return tmp_path_factory.mktemp("bench-out")


def run_script(name: str, args: list[str], out: Path, timeout: float = 60) -> list[str]:
    env = dict(os.environ, MINBUMP_BENCH_OUT=str(out))
    p = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True,
                       env=env, timeout=timeout, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    lines = p.stdout.strip().splitlines()
    assert lines, p.stderr[-2000:]
    return lines


def test_make_repo_builds_the_nova_shape(tmp_path):
    repo = tmp_path / "nova"
    lines = run_script("make_repo.py", [str(repo), "--commits", "200", "--watched", "12", "--tags", "180"], tmp_path)
    assert lines[-1].startswith("built ")
    meta = json.loads((repo / ".git" / "minbump-bench.json").read_text())
    assert meta["commits_main"] == 200 and meta["tags"] == 180

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True, check=True).stdout

    assert git("rev-list", "--count", "main").strip() == "200"
    assert git("rev-list", "--count", "main..bump").strip() == "1"
    tags = git("tag").split()
    assert len(tags) == 180 and {"2013.1", "2015.1.0", "12.0.0", "32.0.0", "32.0.0.0rc1"} <= set(tags)
    assert git("for-each-ref", "--format=%(creatordate:short)", "refs/tags/31.0.0").strip() == "2025-04-02"
    assert git("log", "-1", "--format=%cs", "bump").strip() == "2025-11-20"
    prev = git("show", "32.0.0:nova/virt/libvirt/driver.py")
    head = git("show", "bump:nova/virt/libvirt/driver.py")
    ast.parse(head)
    assert "NEXT_MIN_LIBVIRT_VERSION = (8, 0, 0)" in prev and "MIN_LIBVIRT_VERSION = (7, 0, 0)" in prev
    assert "\nMIN_LIBVIRT_VERSION = (8, 0, 0)" in head and "\nMIN_QEMU_VERSION = (6, 2, 0)" in head
    assert "def _check_min_version" in head and "LOG.warning(" in head
    names = [ln.split(" = ")[0] for ln in head.splitlines() if ln.startswith(("MIN_", "NEXT_MIN_"))]
    assert len(names) == 12 and 13_500 < head.count("\n") < 14_500
    assert "preset: openstack-nova" in git("show", "main:.github/minbump.yml")


def test_dryrun_script(out):
    lines = run_script("dryrun.py", ["--commits", "200", "--pairs", "1", "--warmup", "0", "--quick"], out)
    assert lines[-1].startswith("ratio dry-run/floor: ")


def test_audit_script(out):
    lines = run_script("audit.py", ["--commits", "200", "--pairs", "1"], out)
    assert any(line.startswith("pickaxe finds ") for line in lines)
    assert lines[-1].startswith("ratio audit/pickaxe: ")


def test_webhook_ack_script(out):
    lines = run_script("webhook_ack.py", ["--engine", "python", "--requests", "30", "--pairs", "1"], out)
    assert lines[-1].startswith("ratio webhook/bare throughput: ")
    assert any(line.startswith("lopsided rounds measured again") for line in lines)


def test_webhook_ack_script_with_a_connection_per_delivery(out):
    lines = run_script("webhook_ack.py", ["--engine", "python", "--requests", "30", "--pairs", "1", "--close"], out)
    assert "a new one per delivery" in lines[1] and lines[-1].startswith("ratio webhook/bare throughput: ")


def test_a_round_is_lopsided_when_one_worker_did_the_work():
    sys.path.insert(0, str(BENCH))
    try:
        import webhook_ack as w
    finally:
        sys.path.remove(str(BENCH))
    assert w.busiest_share([10, 10], [60, 110]) == pytest.approx(100 / 150)
    assert w.busiest_share([0, 0], [90, 1]) > w.LOPSIDED
    assert w.busiest_share([5], [50]) is None  # one worker: nothing to balance
    assert w.busiest_share([5, 5], [5, 5]) is None  # no figures (gone, or no /proc)
    me = w.cpu_ticks([os.getpid(), 2 ** 22 + 12345])
    assert me[0] > 0 and me[1] == 0


def test_growth_script(out, tmp_path):
    svg = tmp_path / "g.svg"
    lines = run_script("growth.py", ["--commits", "200", "--watched", "10,30", "--watched-commits", "200",
                                     "--pairs", "1", "--warmup", "0", "--svg", str(svg)], out)
    assert lines[-1].startswith("growth dry-run time ")
    assert svg.read_text().startswith("<svg ")


def test_e2e_script(out):
    lines = run_script("e2e.py", ["--commits", "200", "--deliveries", "1", "--gap", "0", "--no-pacing"], out,
                       timeout=120)
    assert lines[-1].startswith("e2e ")


@pytest.mark.parametrize("engine", ["python"])
def test_loadgen_refuses_other_hosts(engine):
    sys.path.insert(0, str(BENCH))
    try:
        import loadgen
    finally:
        sys.path.remove(str(BENCH))
    with pytest.raises(ValueError):
        loadgen.run_python("192.0.2.1", 80, "/webhook", [(b"{}", "sha256=0")], 1)
