"""Hostile watched files, configs and matrix files: one line and exit 2, or a report that names the file.

Every test feeds exactly the input that crashed or froze before, through `minbump dry-run`
on a real git repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from bot.cli import main
from bot.data import limits as limits_mod
from tests.support.nova import driver

DRV = "nova/virt/libvirt/driver.py"

# Runs the real entry point and writes its peak RSS in kB to the file named first. VmHWM belongs to
# this process's own memory map; getrusage's ru_maxrss would carry over the forking pytest's peak.
_MEASURED = ("import atexit, sys\n"
             "out = sys.argv.pop(1)\n"
             "def peak():\n"
             "    kb = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0]\n"
             "    open(out, 'w').write(kb)\n"
             "atexit.register(peak)\n"
             "from bot.cli.entry import main\n"
             "main(sys.argv[1:])\n")
needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory is read from /proc")


@pytest.fixture(autouse=True)
def _fresh_limits():
    limits_mod.reset()
    yield
    limits_mod.reset()


def dry_run(repo, *extra: str, env: dict | None = None, rss_file=None) -> subprocess.CompletedProcess:
    args = ["dry-run", "--repo", str(repo.path), "--base", "main", "--head", "bump", *extra]
    cmd = [sys.executable, "-c", _MEASURED, str(rss_file), *args] if rss_file else [sys.executable, "-m", "bot", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def one_line_exit_2(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minbump: "), res.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def pr(repo):
    """A base with the config and driver.py, and a `bump` branch whose head has `head_files`."""
    def make(head_files: dict[str, str], config: str = "preset: openstack-nova\n",
             base_files: dict[str, str] | None = None):
        repo.commit({DRV: driver("(1, 2, 1)"), ".github/minbump.yml": config, **(base_files or {})},
                    date="2016-09-01T10:00:00+00:00")
        repo.branch("bump")
        repo.commit(head_files, date="2016-11-20T10:00:00+00:00")
        return repo
    return make


def _line_of(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


# ------------------------------------------------------------ item 5 ---

@pytest.mark.parametrize("name,expr", [
    ("331 terms", "+".join(["1"] * 331)),
    ("100k unary minus", "-" * 100_000 + "1"),
])
def test_deep_constant_expression_is_one_line_exit_2(pr, name, expr):
    text = driver("(1, 2, 1)", extra=f"MIN_QEMU_S390_VERSION = {expr}\n")
    repo = pr({DRV: text})
    res = dry_run(repo)
    one_line_exit_2(res, f"{DRV}:{_line_of(text, 'MIN_QEMU_S390_VERSION')}: cannot read: "
                         "an expression is nested too deeply")


def test_deep_expression_anywhere_in_a_changed_watched_file_is_one_line_exit_2(pr):
    code = "\n\ndef _weights():\n    return " + "+".join(["1"] * 3000) + "\n"
    text = driver("(1, 2, 9)") + code
    repo = pr({DRV: text})
    one_line_exit_2(dry_run(repo), f"{DRV}:{_line_of(text, 'def _weights')}: cannot read:")


def test_integer_too_large_for_a_decimal_string_is_reported_not_a_crash(pr):
    """`0x` + 5,000 digits parses, but has no decimal form: str() of it raised ValueError."""
    huge = "0x" + "f" * 5000
    repo = pr({DRV: driver(f"({huge}, 1)", extra=f"MIN_QEMU_S390_VERSION = {huge}\n")})
    res = dry_run(repo, "--format", "json")
    assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stderr[-2000:]
    change = [c for c in json.loads(res.stdout)["changes"] if c["constant"] == "MIN_LIBVIRT_VERSION"][0]
    assert change["new"] is None and "(an integer too large to be a version)" in change["note"]


# ------------------------------------------------------------ item 4 ---

@needs_proc
def test_big_tuple_heavy_watched_file_is_not_read(pr, tmp_path):
    """3.9 MB of tuples took 5.7 s and 1.4 GB; now the file is reported "not read: too large"."""
    big = driver("(1, 2, 9)") + "DATA = [\n" + "".join(f"    ({i}, {i}, {i}, {i}),\n" for i in range(112_000)) + "]\n"
    assert 3_800_000 < len(big) < 4_194_304
    repo = pr({DRV: big})
    rss = tmp_path / "rss"
    start = time.perf_counter()
    res = dry_run(repo, "--format", "json", rss_file=rss)
    elapsed = time.perf_counter() - start
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    errors = [e for e in report["errors"] if e["file"] == DRV and e["ref"] == "head"]
    assert errors and errors[0]["message"].startswith(
        f"not read: too large ({len(big)} bytes; the limit is 2097152 bytes, setting MINBUMP_MAX_SOURCE_BYTES)")
    assert report["verdict"] == "neutral"
    assert elapsed < 30 and int(rss.read_text()) < 100 * 1024  # kB; 4 MiB allowed took 1.4 GB


def test_tens_of_thousands_of_constants_are_not_read(pr):
    """45,000 version constants in a 1.8 MB file took 6.6 s and 345 MB (and a 13 MB report)."""
    def many(major: int) -> str:
        return driver("(1, 2, 1)") + "".join(f"MIN_LIBVIRT_X{i}_VERSION = ({major}, {i % 100}, 0)\n"
                                             for i in range(45_000))
    repo = pr({DRV: many(9)}, base_files={DRV: many(1)})
    start = time.perf_counter()
    res = dry_run(repo, "--format", "json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    msgs = [e["message"] for e in report["errors"] if e["file"] == DRV and e["ref"] == "head"]
    assert msgs == ["not read: too many version-like constants (45004; the limit is 2000)"]
    assert report["verdict"] == "neutral" and report["changes"] == []
    assert time.perf_counter() - start < 30


def test_source_limit_setting_applies(pr):
    repo = pr({DRV: driver("(1, 2, 9)")})
    res = dry_run(repo, "--format", "json", env={"MINBUMP_MAX_SOURCE_BYTES": "1000"})
    assert res.returncode == 0, res.stderr
    msgs = [e["message"] for e in json.loads(res.stdout)["errors"] if e["file"] == DRV]
    assert msgs and msgs[0].startswith("not read: too large (") and "the limit is 1000 bytes" in msgs[0]
    one_line_exit_2(dry_run(repo, env={"MINBUMP_MAX_SOURCE_BYTES": "-5"}),
                    "MINBUMP_MAX_SOURCE_BYTES='-5': must not be negative")


@needs_proc
def test_two_million_watch_patterns_are_refused_fast(pr, tmp_path):
    config = "watch:\n" + "- nova/virt/libvirt/*.py\n" * 2_000_000  # 50 MB
    repo = pr({DRV: driver("(1, 2, 9)")}, config=config)
    rss = tmp_path / "rss"
    start = time.perf_counter()
    one_line_exit_2(dry_run(repo, rss_file=rss), ".github/minbump.yml@", "not read: too large (50000007 bytes",
                    "setting MINBUMP_MAX_CONFIG_BYTES")
    assert time.perf_counter() - start < 30  # took 45 s; a bound generous for a busy machine
    assert int(rss.read_text()) < 40 * 1024  # kB: the 50 MB file is never read into memory


def test_watch_pattern_count_limit(pr):
    config = "watch:\n" + "".join(f"- nova/virt/libvirt/m{i}*.py\n" for i in range(201))
    repo = pr({DRV: driver("(1, 2, 9)")}, config=config)
    one_line_exit_2(dry_run(repo), "watch: not read: too large (201 patterns; the limit is 200, "
                                   "setting MINBUMP_MAX_WATCH_PATTERNS)")
    res = dry_run(repo, "--format", "json", env={"MINBUMP_MAX_WATCH_PATTERNS": "2000"})
    assert res.returncode in (0, 1) and json.loads(res.stdout)["verdict"], res.stderr


# ------------------------------------------------------------ item 1 ---

def test_backtracking_watch_glob_with_a_long_pr_path(pr):
    """A base config with a catastrophic glob and a PR file with a long name froze `serve`."""
    config = ("preset: openstack-nova\nwatch: ['nova/virt/libvirt/*.py', 'nova/*a*a*a*a*a*a*a*a*a*a*b', "
              "'nova/*a*a*a*a*a*a*a*a*a*a*b/*.py']\n")
    repo = pr({DRV: driver("(1, 2, 9)"), "nova/" + "a" * 40: "x = 1\n", "nova/" + "a" * 39 + "/x.py": "x = 1\n"},
              config=config)
    start = time.perf_counter()
    res = dry_run(repo, "--format", "json")
    assert time.perf_counter() - start < 30 and res.returncode in (0, 1), res.stderr
    changes = json.loads(res.stdout)["changes"]
    assert [c["new"] for c in changes if c["constant"] == "MIN_LIBVIRT_VERSION"] == ["1.2.9"]


# ------------------------------------------------------------ item 6 ---

BAD_MATRICES = {
    "platforms: [1]\n": "platforms[0]: expected object, got a number 1",
    "platforms: [{}]\n": "platforms[0]: missing required key 'id'",
    "'abc'\n": "not a support matrix",
    "platforms:\n- id: [x]\n": "platforms[0]: missing required key",
    "out_of_scope: 5\n": "out_of_scope: expected array, got a number 5",
    "out_of_scope: [{no_id: 1}]\n": "out_of_scope[0]: expected string, got a mapping",
    ("platforms:\n- {id: foo-1, release: '1', released: 2020-01-01, eol: 2030-01-01, arches: [x86_64],\n"
     "   ships: {libvirt: {version: 1.0.0, confidence: high}}, confidence: {dates: high}, sources: [x]}\n"):
        "platforms[0]: missing required key 'distro'",
    "platforms: abc\n": "platforms: expected array",
    "[1, 2]\n": "not a support matrix",
    "": "not a support matrix",
    "description: x\n": "missing required key 'platforms'",
    "out_of_scope: [ubuntu-14.4]\n": "out_of_scope: 'ubuntu-14.4' is not a platform of the matrix "
                                     "(did you mean 'ubuntu-14.04'?)",
}


@pytest.fixture
def bump(repo):
    repo.commit({DRV: driver("(1, 2, 1)"), ".github/minbump.yml": "preset: openstack-nova\n"},
                date="2016-09-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
    return repo


@pytest.mark.parametrize("content,needle", list(BAD_MATRICES.items()))
def test_malformed_matrix_option_is_one_line_exit_2(bump, tmp_path, capsys, content, needle):
    f = tmp_path / "override.yaml"
    f.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["dry-run", "--repo", str(bump.path), "--base", "main", "--head", "bump", "--matrix", str(f)])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"minbump: {f}") and needle in lines[0], err


@pytest.mark.parametrize("content", ["platforms: [1]\n", "out_of_scope: [ubuntu-14.4]\n"])
def test_malformed_matrix_in_repository_config_is_one_line_exit_2(pr, content):
    """The config's `matrix:` files, read from the base branch as the bot reads them."""
    repo = pr({DRV: driver("(1, 2, 9)")}, config="preset: openstack-nova\nmatrix: [ci/m.yaml]\n",
              base_files={"ci/m.yaml": content})
    one_line_exit_2(dry_run(repo), "ci/m.yaml@", BAD_MATRICES[content])
