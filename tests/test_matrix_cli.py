"""`minbump matrix show / what-if`, project overrides and data freshness."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bot.cli import matrix as cli_matrix
from bot.errors import MinbumpError
from bot.core.matrix import Matrix, apply_override, freshness_warning, from_raw
from bot.data.matrix import default_matrix, load_raw, with_overrides

ROOT = Path(__file__).resolve().parent.parent

VIRTUOZZO = """\
platforms:
- id: virtuozzo-7
  distro: virtuozzo
  release: '7'
  codename: null
  released: 2016-07-26
  eol: 2027-12-31
  extended: null
  arches: [x86_64]
  hypervisors: [virtuozzo, parallels]
  ships: {libvirt: {version: 4.5.0, confidence: medium}, qemu: {version: 2.12.0, confidence: medium}}
  confidence: {dates: low, arches: medium}
  sources: ['dates and versions: operator notes of this project']
out_of_scope:
- {id: ubuntu-20.04, reason: 'this project never ran on focal'}
- debian-11
"""


def _cli() -> click.Group:
    group = click.Group()
    cli_matrix.register(group)
    return group


def _run(*args: str):
    res = CliRunner().invoke(_cli(), list(args))
    return res


@pytest.fixture
def override(tmp_path) -> Path:
    f = tmp_path / "ci" / "virtuozzo.yaml"
    f.parent.mkdir()
    f.write_text(VIRTUOZZO)
    return f


# ------------------------------------------------------------- what-if ---

def test_what_if_8_0_0_on_epoxy_day_names_debian_11():
    res = _run("matrix", "what-if", "libvirt", "8.0.0", "--as-of", "2025-04-02", "--format", "json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) == {"as_of", "support_rule", "impacted"}
    assert data["as_of"] == "2025-04-02" and data["support_rule"] == "standard"
    deb = [i for i in data["impacted"] if i["platform"] == "debian-11"]
    assert len(deb) == 1 and deb[0]["shipped"] == "7.0.0" and deb[0]["required"] == "8.0.0"
    assert deb[0]["mitigations"][0]["name"] == "bullseye-backports"
    table = _run("matrix", "what-if", "libvirt", "8.0.0", "--as-of", "2025-04-02").stdout
    assert re.search(r"Debian 11 \(bullseye\) +7\.0\.0 +support ended 2024-08-14 +mitigation: bullseye-backports",
                     table)


def test_what_if_0_10_2_on_mitaka_day_names_precise_and_wheezy_with_mitigations():
    res = _run("matrix", "what-if", "libvirt", "0.10.2", "--as-of", "2016-04-07", "--format", "json")
    by_id = {i["platform"]: i for i in json.loads(res.stdout)["impacted"] if i["minor"] is None}
    precise, wheezy = by_id["ubuntu-12.04"], by_id["debian-7"]
    assert precise["still_supported"] and wheezy["still_supported"]
    assert precise["shipped"] == "0.9.8" and wheezy["shipped"] == "0.9.12.3"
    assert {m["kind"] for m in precise["mitigations"]} == {"ubuntu-cloud-archive"}
    assert "UCA icehouse" in [m["name"] for m in precise["mitigations"]]
    assert [m["name"] for m in wheezy["mitigations"]] == ["wheezy-backports"]
    table = _run("matrix", "what-if", "libvirt", "0.10.2", "--as-of", "2016-04-07").stdout
    supported, _, ended = table.partition("No longer supported")
    assert "Ubuntu 12.04 (precise)" in supported and "UCA icehouse (1.2.2)" in supported
    assert "Debian 7 (wheezy)" in supported and "wheezy-backports (1.2.9)" in supported
    assert "Ubuntu 12.10 (quantal)" in ended


def test_what_if_matches_impact_dropped():
    from bot.core.impact import dropped
    from bot.core.version import Version

    from bot.core.matrix_query import what_if

    data = what_if(default_matrix(), "qemu", "6.2.0", date(2025, 4, 2), "extended", "s390x", None)
    want = [i.to_dict() for i in dropped(default_matrix(), "qemu", None, Version.parse("6.2.0"),
                                         day=date(2025, 4, 2), rule="extended", arch="s390x")]
    assert data["impacted"] == want and want


def test_what_if_rule_extended_keeps_esm_releases_supported():
    std = json.loads(_run("matrix", "what-if", "libvirt", "6.0.0", "--as-of", "2024-01-01", "--format", "json").stdout)
    ext = json.loads(_run("matrix", "what-if", "libvirt", "6.0.0", "--as-of", "2024-01-01", "--rule", "extended",
                          "--format", "json").stdout)
    s = {i["platform"]: i["still_supported"] for i in std["impacted"] if i["platform"] == "ubuntu-18.04"}
    e = {i["platform"]: i["still_supported"] for i in ext["impacted"] if i["platform"] == "ubuntu-18.04"}
    assert s == {"ubuntu-18.04": False} and e == {"ubuntu-18.04": True}
    assert ext["support_rule"] == "extended"


@pytest.mark.parametrize("args, msg", [
    (["libvirt", "eight"], "'eight' is not a version"),
    (["glibc", "2.34"], "unknown component 'glibc'"),
    (["libvirt", "8.0.0", "--as-of", "2025-13-01"], "is not a date"),
])
def test_what_if_bad_input_is_one_line(args, msg):
    res = _run("matrix", "what-if", *args)
    assert res.exit_code != 0
    text = res.output + (str(res.exception) if res.exception else "")
    assert msg in text
    assert not isinstance(res.exception, (KeyError, TypeError, AttributeError))


def test_cli_entry_point_wires_the_commands():
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "bot.cli", "matrix", "what-if", "libvirt", "banana"],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 2
    assert out.stderr.strip() == "minbump: 'banana' is not a version (e.g. 8.0.0)"


# ---------------------------------------------------------------- show ---

def test_show_lists_supported_platforms_with_eol_and_marks_low_confidence():
    res = _run("matrix", "show", "--as-of", "2025-04-02")
    assert res.exit_code == 0
    out = res.stdout
    assert "data as of 2026-12-04" in out.splitlines()[0]
    assert "Ubuntu 22.04 (jammy)" in out and "2027-04-01" in out
    assert "Ubuntu 12.04" not in out
    fedora41 = next(x for x in out.splitlines() if x.startswith("Fedora 41"))
    assert "10.6.0?" in fedora41 and "9.1?" in fedora41
    assert cli_matrix.LEGEND in out


def test_show_json_has_confidence_and_minor():
    data = json.loads(_run("matrix", "show", "--as-of", "2025-04-02", "--format", "json").stdout)
    assert data["as_of"] == "2025-04-02" and data["data_as_of"] == "2026-12-04"
    rows = {r["platform"]: r for r in data["platforms"]}
    assert rows["rhel-9"]["ships"]["libvirt"] == {"version": "10.5.0", "confidence": "high", "minor": "9.5"}
    assert rows["fedora-41"]["ships"]["libvirt"]["confidence"] == "low"
    assert all(r["supported"] for r in rows.values())


def test_show_csv_component_arch_and_all():
    res = _run("matrix", "show", "--as-of", "2016-04-07", "--component", "libvirt", "--arch", "s390x",
               "--format", "csv", "--all")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert list(rows[0].keys())[-1] == "libvirt" and "qemu" not in rows[0]
    statuses = {r["status"] for r in rows}
    assert {"supported", "ended", "not yet released"} <= statuses
    assert all(r["platform"] not in ("ubuntu-12.04",) for r in rows)  # precise has no s390x
    assert cli_matrix.LEGEND in res.stderr


def test_show_rule_extended_counts_esm():
    std = json.loads(_run("matrix", "show", "--as-of", "2024-01-01", "--format", "json").stdout)
    ext = json.loads(_run("matrix", "show", "--as-of", "2024-01-01", "--format", "json",
                          "--rule", "extended").stdout)
    assert "ubuntu-18.04" not in {r["platform"] for r in std["platforms"]}
    assert "ubuntu-18.04" in {r["platform"] for r in ext["platforms"]}


# ------------------------------------------------------------ overrides ---

def test_apply_override_adds_replaces_and_scopes_out(override):
    from bot.data.yamlcache import parse_yaml

    base = default_matrix()
    m = apply_override(base, parse_yaml(override.read_text(), "x"), str(override))
    assert m.get("virtuozzo-7").origin == str(override)
    assert m.origins == ["policy/matrix.yaml", str(override)]
    assert m.out_of_scope == {"ubuntu-20.04": "this project never ran on focal",
                              "debian-11": f"marked out of scope by {override}"}
    assert "ubuntu-20.04" not in {p.id for p in m.in_scope()}
    assert base.get("virtuozzo-7") is None and not base.out_of_scope, "the shipped matrix is not changed"
    replaced = apply_override(m, {"platforms": [dict(m.get("debian-12").raw, eol="2030-01-01")]}, "again.yaml")
    assert replaced.get("debian-12").eol == date(2030, 1, 1) and replaced.get("debian-12").origin == "again.yaml"
    assert [p.id for p in replaced.platforms] == [p.id for p in m.platforms]


def test_override_only_out_of_scope_file_loads(tmp_path):
    f = tmp_path / "scope.yaml"
    f.write_text("out_of_scope: [fedora-44]\n")
    m = with_overrides([f])
    assert "fedora-44" in m.out_of_scope and len(m.platforms) == len(default_matrix().platforms)


def test_what_if_with_override_reports_data_origin(override):
    res = _run("matrix", "what-if", "libvirt", "5.0.0", "--as-of", "2025-04-02", "--hypervisor", "virtuozzo",
               "--matrix", str(override), "--format", "json")
    assert res.exit_code == 0, res.output
    by_id = {i["platform"]: i for i in json.loads(res.stdout)["impacted"]}
    assert by_id["virtuozzo-7"]["data_origin"] == str(override)
    assert by_id["virtuozzo-7"]["still_supported"] and by_id["virtuozzo-7"]["shipped"] == "4.5.0"
    plain = json.loads(_run("matrix", "what-if", "libvirt", "8.0.0", "--as-of", "2025-04-02", "--format", "json",
                            "--matrix", str(override)).stdout)
    assert not {"ubuntu-20.04", "debian-11"} & {i["platform"] for i in plain["impacted"]}
    table = _run("matrix", "what-if", "libvirt", "5.0.0", "--as-of", "2025-04-02", "--matrix", str(override)).stdout
    assert f"[from {override}]" in table
    assert "ubuntu-20.04: this project never ran on focal" in table.partition("Left out by the project (2):")[2]


def test_show_with_override_and_all_marks_out_of_scope(override):
    data = json.loads(_run("matrix", "show", "--as-of", "2025-04-02", "--all", "--format", "json",
                           "--matrix", str(override)).stdout)
    rows = {r["platform"]: r for r in data["platforms"]}
    assert rows["ubuntu-20.04"]["status"] == "out of scope"
    assert rows["ubuntu-20.04"]["out_of_scope"] == "this project never ran on focal"
    assert rows["virtuozzo-7"]["data_origin"] == str(override)
    assert data["data_origins"] == ["policy/matrix.yaml", str(override)]


def test_config_matrix_key_and_max_age(tmp_path, override, monkeypatch):
    monkeypatch.setattr(cli_matrix, "_today", lambda: date(2027, 1, 10))
    repo = tmp_path
    (repo / ".github").mkdir()
    cfg = repo / ".github" / "minbump.yml"
    cfg.write_text("watch: ['*.py']\nmatrix: [ci/virtuozzo.yaml]\nmax_data_age_days: 30\n")
    res = _run("matrix", "show", "--as-of", "2025-04-02", "--format", "json", "--config", str(cfg))
    assert res.exit_code == 0, res.output
    assert "virtuozzo-7" in {r["platform"] for r in json.loads(res.stdout)["platforms"]}
    assert "warning: the support matrix data is" in res.stderr  # 2026-12-04 is > 30 days before "today"


def test_bad_override_is_refused_with_its_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("platforms:\n- id: x-1\n  distro: x\n")
    res = _run("matrix", "show", "--matrix", str(f))
    assert res.exit_code != 0
    assert isinstance(res.exception, MinbumpError)
    assert "bad.yaml:2: platforms[0]: missing required key" in str(res.exception)
    res = _run("matrix", "show", "--matrix", str(tmp_path / "missing.yaml"))
    assert "no such matrix file" in str(res.exception)


# ------------------------------------------------------------ freshness ---

def test_freshness_warning():
    m = Matrix([], data_as_of=date(2026, 8, 22))
    assert freshness_warning(m, date(2027, 8, 22), 365) is None
    msg = freshness_warning(m, date(2027, 8, 23), 365)
    assert msg is not None and "366 days old" in msg and "2026-08-22" in msg
    assert freshness_warning(m, date(2026, 9, 30), 30) is not None
    assert "unknown" in freshness_warning(Matrix([]), date(2026, 1, 1), 365)


def test_show_prints_freshness_warning_on_stderr(monkeypatch):
    monkeypatch.setattr(cli_matrix, "_today", lambda: date(2028, 1, 1))
    res = _run("matrix", "show", "--format", "json")
    assert "warning: the support matrix data is 393 days old" in res.stderr
    assert json.loads(res.stdout)["as_of"] == "2028-01-01"
    res = _run("matrix", "show", "--max-age-days", "1000")
    assert "warning" not in res.stderr


# ----------------------------------------------------------------- speed ---

def test_loading_the_matrix_from_the_warm_cache_is_fast():
    path = ROOT / "policy" / "matrix.yaml"
    load_raw(path)  # fills the cache
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        m = from_raw(load_raw(path), "policy/matrix.yaml")
        best = min(best, time.perf_counter() - t0)
    assert len(m.platforms) >= 110
    assert best < 0.05, f"warm matrix load took {best * 1000:.1f} ms"
