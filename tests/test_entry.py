"""The one command line: every command goes through the click application in `bot.cli`.

Run as a user does (`python -m bot`, what the console script `bot.cli:main` runs):
help works, a usage mistake is one line and exit 2, a user's error never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.nova import CONFIG, driver

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["audit", "cache", "dry-run", "jobs", "matrix", "serve", "validate", "worker"]


def _run(*args, module="bot"):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT)


def test_console_script_is_the_click_main():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["scripts"] == {"minbump": "bot.cli:main"}
    import bot.cli

    import click

    with click.Context(bot.cli.cli) as ctx:
        assert bot.cli.cli.list_commands(ctx) == COMMANDS
        assert all(bot.cli.cli.get_command(ctx, name) is not None for name in COMMANDS)


def test_there_is_no_second_parser():
    """No hand-written option table and no argparse beside click in the shipped code."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "bot").rglob("*.py")
                 if "argparse" in p.read_text() or "sys.argv[2" in p.read_text()]
    assert offenders == []
    assert not (ROOT / "bot" / "cli" / "entry.py").exists()


@pytest.mark.parametrize("module", ["bot", "bot.cli"])
def test_help_lists_every_command(module):
    out = _run("--help", module=module)
    assert out.returncode == 0 and out.stderr == ""
    listed = [line.split()[0] for line in out.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == COMMANDS


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c not in ("jobs", "matrix", "cache")]
                         + ["jobs list", "matrix show", "matrix what-if", "cache prune"])
def test_every_command_has_help(cmd):
    out = _run(*cmd.split(), "-h")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"Usage: minbump {cmd}")


@pytest.mark.parametrize("args, needle", [
    (["dry-run", "--head", "b"], "Missing option '--base'"),
    (["dry-run", "--base", "a", "--head", "b", "--bogus", "x"], "No such option '--bogus'"),
    (["dry-run", "--base", "a", "--head", "b", "--format", "yaml"], "'yaml' is not one of"),
    (["dry-run", "--base", "a", "--head", "b", "--as-of", "2016-13-01"], "'2016-13-01' is not a date"),
    (["dry-run", "--base", "a", "--head", "b", "--config", "x", "--preset", "y"], "alternatives"),
    (["serve", "--port", "http"], "'http' is not a valid integer"),
    (["serve", "--threads", "0"], "0 is not in the range"),
    (["worker", "--bogus"], "No such option"),
    (["audit", "--format", "pdf"], "'pdf' is not one of"),
    (["audit", "--config", "x", "--preset", "y"], "alternatives"),
    (["nonsense"], "No such command 'nonsense'"),
])
def test_bad_usage_is_one_line_exit_2(args, needle):
    out = _run(*args)
    assert out.returncode == 2, out
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("minbump: ") and needle in lines[0], out.stderr
    assert "--help" in lines[0]


def test_dry_run_report_errors_and_exit_codes(repo):
    repo.commit({"nova/virt/libvirt/driver.py": driver("(1, 2, 1)", "(1, 2, 1)"),
                 ".github/minbump.yml": CONFIG}, date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")  # without Newton's tag the warning is unknown, not a fail
    repo.branch("bump")
    repo.commit({"nova/virt/libvirt/driver.py": driver("(1, 2, 9)", "(1, 2, 9)")},
                date="2016-11-20T10:00:00+00:00")
    a = _run("dry-run", "--repo", str(repo.path), "--base", "main", "--head", "bump", "--format", "json")
    b = _run("dry-run", f"--repo={repo.path}", "--base=main", "--head=bump", "--format=json", "--as-of", "2016-11-20",
             module="bot.cli")
    assert a.returncode == b.returncode == 1
    ra, rb = json.loads(a.stdout), json.loads(b.stdout)
    assert ra["verdict"] == "fail" and ra["changes"][0]["new"] == "1.2.9"
    moving = ("as_of", "support_rule", "impacted", "summary", "verdict")
    assert rb["as_of"] == "2016-11-20" and {k: v for k, v in ra.items() if k not in moving} == \
        {k: v for k, v in rb.items() if k not in moving}
    bad = _run("dry-run", "--repo", str(repo.path), "--base", "main", "--head", "nope")
    assert bad.returncode == 2 and bad.stderr.strip() == f"minbump: unknown ref 'nope' in {repo.path}"
    usage = _run("dry-run", "--repo", str(repo.path), "--head", "bump")  # --head defaults to HEAD; --base is needed
    assert usage.returncode == 2 and "--base" in usage.stderr and "Traceback" not in usage.stderr
    assert bad.stdout == ""


def test_version_and_no_arguments():
    v = _run("--version")
    assert v.returncode == 0 and v.stdout.startswith("minbump ")
    none = _run()
    assert none.returncode == 0 and none.stdout.startswith("Usage: minbump") and "Commands:" in none.stdout


def test_start_up_imports_no_heavy_module():
    """Lazy imports inside commands: loading the CLI pulls in neither Flask, the queue, GitPython nor PyGithub."""
    code = ("import sys, bot.cli; heavy = [m for m in ('flask', 'git', 'github', 'rq', 'redis', 'sqlite3', "
            "'yaml', 'jsonschema', 'matplotlib', 'bot.service.wsgi', 'bot.git.gather', 'bot.cli.service', "
            "'bot.cli.matrix', 'bot.cli.audit') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr
