"""The console script's fast lane for dry-run must accept exactly what the click command does."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from bot.cli.entry import DRY_RUN_OPTIONS, parse_dry_run
from tests.support.nova import CONFIG, driver


def test_fast_table_matches_click_options():
    from bot.cli import cli

    cmd = cli.commands["dry-run"]
    click_opts = {}
    for p in cmd.params:
        if isinstance(p, click.Option):
            for flag in p.opts:
                click_opts[flag] = (p.name, p.multiple)
    assert {f: v for f, v in click_opts.items() if f.startswith("--")} == DRY_RUN_OPTIONS


@pytest.mark.parametrize("args", [
    [], ["--base", "a"], ["--base", "a", "--head"], ["--help"], ["-h"], ["--base", "a", "--head", "b", "--bogus", "x"],
    ["--base", "a", "--head", "b", "--format", "yaml"], ["--base", "a", "--head", "b", "--as-of", "2016-13-01"],
    ["--base", "a", "--base", "c", "--head", "b"], ["--base", "a", "--head", "b", "--config", "x", "--preset", "y"],
])
def test_anything_unusual_goes_to_click(args):
    assert parse_dry_run(args) is None


def test_well_formed_arguments_are_parsed():
    opts = parse_dry_run(["--repo=r", "--base", "a", "--head", "b", "--matrix", "m1", "--matrix", "m2",
                          "--format", "json", "--as-of", "2016-04-07"])
    assert opts["repo"] == "r" and opts["matrix_files"] == ["m1", "m2"] and opts["fmt"] == "json"
    assert str(opts["as_of"]) == "2016-04-07"


def _run(*args):
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True)


def test_both_lanes_give_the_same_report(repo):
    repo.commit({"nova/virt/libvirt/driver.py": driver("(1, 2, 1)", "(1, 2, 1)"),
                 ".github/minbump.yml": CONFIG}, date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")  # without Newton's tag the warning is unknown, not a fail
    repo.branch("bump")
    repo.commit({"nova/virt/libvirt/driver.py": driver("(1, 2, 9)", "(1, 2, 9)")},
                date="2016-11-20T10:00:00+00:00")
    fast = _run("dry-run", "--repo", str(repo.path), "--base", "main", "--head", "bump", "--format", "json")
    slow = subprocess.run([sys.executable, "-m", "bot.cli", "dry-run", "--repo", str(repo.path), "--base", "main",
                           "--head", "bump", "--format", "json"], capture_output=True, text=True)
    assert fast.returncode == slow.returncode == 1
    assert json.loads(fast.stdout) == json.loads(slow.stdout)
    bad = _run("dry-run", "--repo", str(repo.path), "--base", "main", "--head", "nope")
    assert bad.returncode == 2 and bad.stderr.strip() == f"minbump: unknown ref 'nope' in {repo.path}"
    usage = _run("dry-run", "--repo", str(repo.path), "--head", "bump")  # --head defaults to HEAD; --base is needed
    assert usage.returncode == 2 and "--base" in usage.stderr and "Traceback" not in usage.stderr
