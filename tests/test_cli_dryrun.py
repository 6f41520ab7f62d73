"""`minbump dry-run` as a user runs it: exit codes, formats, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot.cli import main
from tests.support.nova import ocata_bump


def run(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture
def bump(repo):
    ocata_bump(repo)
    return repo


def test_fail_exits_1_with_markdown(bump, capsys):
    code, out, _ = run(["dry-run", "--repo", str(bump.path), "--base", "main", "--head", "bump"], capsys)
    assert code == 1
    assert out.startswith("## ❌ minbump: fail")
    assert "Ubuntu 14.04 (trusty)" in out and "UCA" in out


def test_json_format_and_as_of(bump, capsys):
    code, out, _ = run(["dry-run", "--repo", str(bump.path), "--base", "main", "--head", "bump",
                        "--format", "json", "--as-of", "2019-05-01"], capsys)
    data = json.loads(out)
    assert code == (1 if data["verdict"] == "fail" else 0)
    assert data["as_of"] == "2019-05-01"
    # Ubuntu 14.04's standard support ended 2019-04-02.
    trusty = [d for d in data["impacted"] if d["platform"] == "ubuntu-14.04"][0]
    assert trusty["still_supported"] is False


def test_preset_and_config_file(bump, capsys, tmp_path):
    code, out, _ = run(["dry-run", "--repo", str(bump.path), "--base", "main", "--head", "bump",
                        "--preset", "openstack-nova", "--format", "json"], capsys)
    assert json.loads(out)["verdict"] == "fail" and code == 1
    cfg = tmp_path / "lenient.yml"
    cfg.write_text("preset: openstack-nova\nstrictness: {unwarned_drop: warn}\n")
    code, out, _ = run(["dry-run", "--repo", str(bump.path), "--base", "main", "--head", "bump",
                        "--config", str(cfg), "--format", "json"], capsys)
    assert json.loads(out)["verdict"] == "warn" and code == 0


@pytest.mark.parametrize("args,needle", [
    (["--base", "main", "--head", "nosuchref"], "unknown ref 'nosuchref'"),
    (["--base", "main", "--head", "bump", "--preset", "nosuch"], "unknown preset 'nosuch'"),
    (["--base", "main", "--head", "bump", "--as-of", "2016-13-01"], "not a date"),
    (["--base", "main", "--head", "bump", "--config", "missing.yml"], "cannot read"),
])
def test_bad_input_is_one_line_exit_2(bump, capsys, args, needle):
    code, out, err = run(["dry-run", "--repo", str(bump.path), *args], capsys)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_not_a_repo_exit_2(tmp_path, capsys):
    code, _, err = run(["dry-run", "--repo", str(tmp_path), "--base", "a", "--head", "b"], capsys)
    assert code == 2 and err.strip() == f"minbump: {tmp_path}: not a git repository"


def test_invalid_config_file_exit_2(bump, capsys, tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text("preset: openstack-nova\nwatch: [unclosed\n")
    code, _, err = run(["dry-run", "--repo", str(bump.path), "--base", "main", "--head", "bump",
                        "--config", str(cfg)], capsys)
    assert code == 2 and "bad.yml:" in err and "not valid YAML" in err


def test_console_script_runs(bump):
    """The installed entry point, as a user types it."""
    out = subprocess.run([sys.executable, "-m", "bot.cli", "dry-run", "--repo", str(bump.path),
                          "--base", "main", "--head", "bump", "--format", "json"],
                         capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)["verdict"] == "fail"


def test_impossible_date_in_config_matrix_is_one_line(bump, capsys, tmp_path):
    bad = tmp_path / "matrix.yml"
    bad.write_text("platforms:\n- {id: x-1, distro: x, release: '1', released: 2026-13-01}\n")
    code, _, err = run(["dry-run", "--repo", str(bump.path), "--base", "main", "--head", "bump",
                        "--matrix", str(bad)], capsys)
    assert code == 2 and "matrix.yml" in err and "Traceback" not in err
