"""YAML a repository controls (config, matrix override, calendar file) is refused before it expands.

An alias bomb (nine levels of nine aliases) expanded to 5.6 GB before MemoryError; a file
over its size limit was parsed whole. Each test feeds exactly that input through a real edge.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time

import pytest

from bot.data import limits as limits_mod
from bot.data.config import from_text
from bot.data.matrix import load_raw
from bot.data.yamlcache import cached_yaml, parse_yaml
from bot.errors import MinbumpError
from tests.support.nova import driver

DRV = "nova/virt/libvirt/driver.py"


def bomb(levels: int = 9) -> str:
    """`a: &a [x,x,x,x,x,x,x,x,x]`, then each level a list of nine aliases of the one before."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [x,x,x,x,x,x,x,x,x]"]
    for prev, name in zip(names, names[1:]):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def _fresh_limits():
    limits_mod.reset()
    yield
    limits_mod.reset()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_alias_bomb_refused_before_it_expands():
    before, start = _rss_mb(), time.perf_counter()
    with pytest.raises(MinbumpError) as exc:
        parse_yaml(bomb(), ".github/minbump.yml", "config")
    assert time.perf_counter() - start < 5 and _rss_mb() - before < 200  # it never expands
    msg = str(exc.value)
    assert msg.startswith(".github/minbump.yml: refused: YAML aliases expand to") and "\n" not in msg


def test_alias_bomb_in_config_is_refused_before_the_schema_and_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINBUMP_CACHE_DIR", str(tmp_path / "cache"))
    checked = []
    with pytest.raises(MinbumpError, match="refused: YAML aliases"):
        cached_yaml(bomb().encode(), "cfg.yml", "config", lambda data, text: checked.append(data))
    assert checked == [] and not (tmp_path / "cache").exists()
    with pytest.raises(MinbumpError, match=r"^\.github/minbump\.yml@abc: refused: YAML aliases"):
        from_text(("watch: ['*.py']\n" + bomb()).encode(), ".github/minbump.yml@abc")


def test_many_aliases_and_recursive_aliases_are_refused():
    many = "a: &a 1\nb: [" + ", ".join(["*a"] * 101) + "]\n"
    with pytest.raises(MinbumpError, match=r"m.yml: refused: 101 YAML aliases, over the limit of 100 "
                                           r"\(setting MINBUMP_MAX_YAML_ALIASES\)"):
        parse_yaml(many, "m.yml")
    with pytest.raises(MinbumpError, match=r"r.yml:1: refused: a YAML alias refers to itself"):
        parse_yaml("a: &a [1, *a]\n", "r.yml")
    # a few plain aliases stay allowed
    assert parse_yaml("base: &s {unwarned_drop: warn}\nother: *s\n", "ok.yml") == {
        "base": {"unwarned_drop": "warn"}, "other": {"unwarned_drop": "warn"}}


def test_size_limits_are_checked_before_parsing(tmp_path, monkeypatch):
    big_config = b"watch: ['*.py']\n" + b"# padding\n" * 110_000  # > 1 MiB
    with pytest.raises(MinbumpError, match=r"^c.yml: not read: too large \(\d+ bytes; the limit is 1048576, "
                                           r"setting MINBUMP_MAX_CONFIG_BYTES\)$"):
        from_text(big_config, "c.yml")
    matrix = tmp_path / "big-matrix.yaml"
    matrix.write_bytes(b"out_of_scope: [debian-11]\n" + b"#" * (8 * 1024 * 1024))
    with pytest.raises(MinbumpError, match=r"big-matrix.yaml: not read: too large .* "
                                           r"the limit is 8388608, setting MINBUMP_MAX_MATRIX_BYTES"):
        load_raw(matrix)
    monkeypatch.setenv("MINBUMP_MAX_MATRIX_BYTES", str(16 * 1024 * 1024))
    limits_mod.reset()
    assert load_raw(matrix) == {"out_of_scope": ["debian-11"]}
    monkeypatch.setenv("MINBUMP_MAX_MATRIX_BYTES", "lots")
    limits_mod.reset()
    with pytest.raises(MinbumpError, match="MINBUMP_MAX_MATRIX_BYTES='lots': not a whole number"):
        load_raw(matrix)


# ------------------------------------------------- through the real CLI ---

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=120)


def _one_line_exit_2(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minbump: "), res.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def nova(repo):
    def make(config: str, files: dict[str, str] | None = None):
        repo.commit({DRV: driver("(1, 2, 1)"), ".github/minbump.yml": config, **(files or {})},
                    date="2016-09-01T10:00:00+00:00")
        repo.branch("bump")
        repo.commit({DRV: driver("(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
        return repo
    return make


def test_dry_run_alias_bomb_in_repository_config(nova):
    repo = nova("watch: [nova/virt/libvirt/*.py]\n" + bomb())
    res = _cli("dry-run", "--repo", str(repo.path), "--base", "main", "--head", "bump")
    _one_line_exit_2(res, ".github/minbump.yml@", "refused: YAML aliases expand to")


def test_dry_run_alias_bomb_in_matrix_override(nova):
    repo = nova("preset: openstack-nova\nmatrix: [ci/matrix.yaml]\n",
                {"ci/matrix.yaml": "out_of_scope: [debian-11]\n" + bomb()})
    res = _cli("dry-run", "--repo", str(repo.path), "--base", "main", "--head", "bump")
    _one_line_exit_2(res, "ci/matrix.yaml@base: refused: YAML aliases expand to")


def test_dry_run_alias_bomb_in_calendar_file(nova):
    repo = nova("preset: openstack-nova\ncalendar: {path: ci/calendar.yaml}\n",
                {"ci/calendar.yaml": "name: x\nreleases: []\n" + bomb()})
    res = _cli("dry-run", "--repo", str(repo.path), "--base", "main", "--head", "bump")
    _one_line_exit_2(res, "ci/calendar.yaml: refused: YAML aliases expand to")


def test_dry_run_alias_bomb_in_matrix_option_and_validate(nova, tmp_path):
    repo = nova("preset: openstack-nova\n")
    f = tmp_path / "matrix.yaml"
    f.write_text("out_of_scope: [debian-11]\n" + bomb())
    res = _cli("dry-run", "--repo", str(repo.path), "--base", "main", "--head", "bump", "--matrix", str(f))
    _one_line_exit_2(res, "matrix.yaml: refused: YAML aliases expand to")
    start = time.perf_counter()
    res = _cli("validate", str(f))
    assert res.returncode == 1 and f"{f}: refused: YAML aliases expand to" in res.stdout
    assert "Traceback" not in res.stderr and time.perf_counter() - start < 60
