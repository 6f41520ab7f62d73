"""Importers from endoflife.date and repology, on the sample answers in fixtures/."""

from __future__ import annotations

import copy

import shutil
from datetime import date
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from bot.cli import matrix as cli_matrix
from bot.errors import MinbumpError
from bot.data.importers import (dump_policy_yaml, fetch_json, import_endoflife, import_repology, leading_comments,
                           load_json_file, parse_endoflife, parse_repology, read_matrix_yaml, repology_platform)
from bot.core.version import Version

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
MATRIX = ROOT / "policy" / "matrix.yaml"
DAY = date(2026, 12, 1)
SRC_EOL = "endoflife.date API (imported 2026-12-01)"


@pytest.fixture(scope="module")
def raw() -> dict:
    data, _ = read_matrix_yaml(MATRIX)
    return data


def _plat(data: dict, pid: str) -> dict:
    return next(p for p in data["platforms"] if p["id"] == pid)


def _cli() -> click.Group:
    group = click.Group()
    cli_matrix.register(group)
    return group


# ------------------------------------------------------------ endoflife ---

def test_classic_shape_keeps_booleans_apart_from_dates():
    cycles = {c["cycle"]: c for c in parse_endoflife(load_json_file(FIX / "endoflife" / "ubuntu.json"))}
    assert cycles["25.04"]["eol"] is True
    assert cycles["25.10"]["extended"] is False
    assert cycles["24.04"]["eol"] == date(2029, 5, 31)
    assert cycles["22.04"]["lts"] is True and cycles["22.04"]["support"] == date(2024, 9, 30)


def test_v1_shape_maps_from_fields():
    cycles = {c["cycle"]: c for c in parse_endoflife(load_json_file(FIX / "endoflife" / "rhel-v1.json"))}
    assert cycles["9"] == {"cycle": "9", "released": date(2022, 5, 18), "support": date(2027, 5, 31),
                           "eol": date(2032, 5, 31), "extended": date(2036, 5, 31), "lts": False,
                           "codename": "Plow", "latest": "9.7"}


def test_v1_falls_back_to_booleans_when_no_date():
    payload = {"result": {"releases": [{"name": "5", "releaseDate": "2007-03-15", "isEol": True, "eolFrom": None}]}}
    (c,) = parse_endoflife(payload)
    assert c["eol"] is True and c["extended"] is None


@pytest.mark.parametrize("payload, msg", [
    ({"result": {"releases": "x"}}, "no result.releases"),
    ([{"releaseDate": "2020-01-01"}], "needs a 'cycle'"),
    ("nope", "not an endoflife.date answer"),
    ([{"cycle": "1", "eol": "soon"}], "not a date or boolean"),
])
def test_bad_endoflife_answers_are_one_line_errors(payload, msg):
    with pytest.raises(MinbumpError, match=msg):
        parse_endoflife(payload)


def test_endoflife_import_moves_dates_and_records_the_old_value(raw):
    res = import_endoflife(raw, load_json_file(FIX / "endoflife" / "ubuntu.json"), "ubuntu", DAY)
    p = _plat(res.data, "ubuntu-25.10")
    assert p["eol"] == date(2026, 7, 9)
    assert p["sources"][-1] == f"eol: {SRC_EOL}"
    assert p["conflicts"][-1] == f"eol: 2026-07-01 before {SRC_EOL} gave 2026-07-09; chosen: 2026-07-09"
    # everything sourced before is still there
    old = _plat(raw, "ubuntu-25.10")
    assert p["sources"][: len(old["sources"])] == old["sources"]
    assert _plat(raw, "ubuntu-25.10")["eol"] == date(2026, 7, 1), "the input is not modified"
    lines = res.diff_text().splitlines()
    assert "~ ubuntu-25.10: eol 2026-07-01 -> 2026-07-09" in lines
    assert res.data["data_as_of"] == DAY


def test_endoflife_import_adds_new_releases_next_to_their_distro(raw):
    raw = copy.deepcopy(raw)  # the sample's invented 26.10 must be new to the matrix
    raw["platforms"] = [p for p in raw["platforms"] if p["id"] != "ubuntu-26.10"]
    res = import_endoflife(raw, load_json_file(FIX / "endoflife" / "ubuntu.json"), "ubuntu", DAY)
    ids = [p["id"] for p in res.data["platforms"]]
    assert ids.index("ubuntu-26.10") == ids.index("ubuntu-26.04") + 1
    new = _plat(res.data, "ubuntu-26.10")
    assert (new["released"], new["eol"], new["extended"], new["codename"]) == \
        (date(2026, 10, 15), date(2027, 7, 15), None, "sample")
    assert new["sources"] == [f"dates: {SRC_EOL}"]
    assert "+ ubuntu-26.10: new release (released 2026-10-15, eol 2027-07-15)" in res.diff_text()


def test_endoflife_booleans_never_replace_dates(raw):
    res = import_endoflife(raw, load_json_file(FIX / "endoflife" / "ubuntu.json"), "ubuntu", DAY)
    assert _plat(res.data, "ubuntu-25.04")["eol"] == date(2026, 1, 17)
    assert "full_support_end" not in _plat(res.data, "ubuntu-25.04")
    unchanged = {"ubuntu-22.04", "ubuntu-24.04", "ubuntu-26.04", "ubuntu-25.04"}
    assert not [c for c in res.changes if c.platform in unchanged]


def test_endoflife_boolean_that_contradicts_our_date_is_noted(raw):
    payload = [{"cycle": "24.04", "eol": True}]  # says ended; our eol is 2029
    res = import_endoflife(raw, payload, "ubuntu", DAY)
    (ch,) = res.changes
    assert ch.kind == "kept" and ch.key == "eol"
    assert _plat(res.data, "ubuntu-24.04")["eol"] == date(2029, 5, 31)
    assert "kept 2029-05-31" in res.diff_text()


def test_endoflife_v1_extended_date_change(raw):
    res = import_endoflife(raw, load_json_file(FIX / "endoflife" / "rhel-v1.json"), "rhel", DAY)
    assert [(c.platform, c.key, c.kind) for c in res.changes] == [("rhel-7", "extended.end", "changed")]
    p = _plat(res.data, "rhel-7")
    assert p["extended"] == {"name": "ELS", "end": date(2028, 6, 30),
                             "notes": "ELS not available for System z (Structure A), ARM, POWER9"}
    assert "2029-05-31" in p["conflicts"][-1]


def test_endoflife_unknown_product(raw):
    with pytest.raises(MinbumpError, match="unknown endoflife.date product 'windows'"):
        import_endoflife(raw, [], "windows", DAY)


def test_no_change_means_no_new_data_date(raw):
    res = import_endoflife(raw, [{"cycle": "22.04", "releaseDate": "2022-04-21"}], "ubuntu", DAY)
    assert not res.changed and res.diff_text() == "no changes"
    assert res.data["data_as_of"] == raw["data_as_of"]


# ------------------------------------------------------------- repology ---

@pytest.mark.parametrize("repo, want", [
    ("ubuntu_22_04", ("ubuntu-22.04", False)), ("centos_stream_9", ("centos-stream-9", False)),
    ("debian_12", ("debian-12", False)), ("opensuse_leap_15_6", ("opensuse-15.6", False)),
    ("debian_12_backports", ("debian-12", True)), ("fedora_40", ("fedora-40", False)),
    ("debian_unstable", None), ("arch", None), ("epel_9", None), ("fedora_rawhide", None),
])
def test_repology_repo_names(repo, want):
    assert repology_platform(repo) == want


def test_repology_parse_skips_bad_statuses_and_takes_the_newest():
    seen = parse_repology(load_json_file(FIX / "repology" / "libvirt.json"))
    assert seen["ubuntu-24.04"]["base"][0] == Version.parse("10.0.0")  # the "ignored" 2024.01 is dropped
    assert seen["debian-12"] == {"backports": (Version.parse("10.0.0"), "10.0.0-2~bpo12+1")}
    assert "fedora-rawhide" not in seen


def test_repology_import(raw):
    raw = copy.deepcopy(raw)  # an unknown cell and a backports add-on without libvirt: the "added" paths
    _plat(raw, "fedora-44")["ships"]["libvirt"] = {"version": None, "confidence": "low"}
    next(a for a in _plat(raw, "debian-12")["addons"] if a["kind"] == "debian-backports")["ships"].pop("libvirt")
    res = import_repology(raw, load_json_file(FIX / "repology" / "libvirt.json"), "libvirt", DAY)
    kinds = {(c.platform, c.kind) for c in res.changes}
    assert kinds == {("debian-13", "changed"), ("fedora-44", "added"), ("centos-stream-9", "kept"),
                     ("debian-12", "added"), ("centos-stream-11", "skipped")}
    d13 = _plat(res.data, "debian-13")["ships"]["libvirt"]
    assert d13 == {"version": "11.3.2", "ga": "11.3.0", "package": "11.3.2-1+deb13u1", "confidence": "high"}
    assert _plat(res.data, "debian-13")["sources"][-1] == "ships.libvirt: repology project JSON (imported 2026-12-01)"
    cs9 = _plat(res.data, "centos-stream-9")
    assert cs9["ships"]["libvirt"]["version"] == "11.10.0"
    assert cs9["conflicts"][-1].startswith("ships.libvirt: 11.10.0 before repology")
    bpo = next(a for a in _plat(res.data, "debian-12")["addons"] if a["kind"] == "debian-backports")
    assert bpo["ships"] == {"qemu": "10.0.2", "libvirt": "10.0.0"}
    # platforms repology confirms are untouched
    for pid in ("ubuntu-20.04", "ubuntu-22.04", "opensuse-15.6"):
        assert _plat(res.data, pid) == _plat(raw, pid)


def test_repology_bad_answer():
    with pytest.raises(MinbumpError, match="every package needs"):
        parse_repology([{"repo": "debian_12"}])
    with pytest.raises(MinbumpError, match="expected a list"):
        parse_repology({"libvirt": []})


# -------------------------------------------------------- writing / CLI ---

def test_round_trip_keeps_the_file_readable_and_the_data_equal(raw):
    text = MATRIX.read_text()
    out = dump_policy_yaml(raw, leading_comments(text))
    assert out.startswith("# minbump support matrix")
    assert yaml.safe_load(out) == raw
    assert max(len(x) for x in out.splitlines()) < 200  # width 120, bar unbreakable URLs
    assert "- id: ubuntu-22.04\n  distro: ubuntu\n" in out


def test_import_cli_is_a_dry_run_unless_told(tmp_path):
    target = tmp_path / "matrix.yaml"
    shutil.copy(MATRIX, target)
    before = target.read_text()
    args = ["matrix", "import", "--from", "endoflife", str(FIX / "endoflife" / "ubuntu.json"),
            "--product", "ubuntu", "--matrix", str(target), "--today", "2026-12-01"]
    res = CliRunner().invoke(_cli(), args)
    assert res.exit_code == 0, res.output
    assert "~ ubuntu-25.10: eol 2026-07-01 -> 2026-07-09" in res.stdout and "dry run" in res.stdout
    assert target.read_text() == before
    res = CliRunner().invoke(_cli(), args + ["--write"])
    assert res.exit_code == 0 and "wrote" in res.stdout
    after = target.read_text()
    assert after.startswith(leading_comments(before))
    new = yaml.safe_load(after)
    assert _plat(new, "ubuntu-25.10")["eol"] == date(2026, 7, 9)
    # only the touched lines changed: the rest of the file reads the same
    changed = set(after.splitlines()) - set(before.splitlines())
    assert len(changed) < 25
    from bot.data.schema import validate_file

    assert validate_file(target) == []


def test_import_cli_repology_and_usage_errors(tmp_path):
    target = tmp_path / "matrix.yaml"
    shutil.copy(MATRIX, target)
    runner = CliRunner()
    res = runner.invoke(_cli(), ["matrix", "import", "--from", "repology", str(FIX / "repology" / "libvirt.json"),
                                 "--component", "libvirt", "--matrix", str(target), "--today", "2026-12-01", "--write"])
    assert res.exit_code == 0, res.output
    assert _plat(yaml.safe_load(target.read_text()), "fedora-44")["ships"]["libvirt"]["version"] == "12.1.0"
    res = runner.invoke(_cli(), ["matrix", "import", "--from", "repology", str(FIX / "repology" / "libvirt.json")])
    assert res.exit_code == 2 and "--component" in res.output
    res = runner.invoke(_cli(), ["matrix", "import", "--from", "endoflife", "--product", "ubuntu"])
    assert res.exit_code == 2 and "FILE or --url" in res.output


def test_bad_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(MinbumpError, match="not valid JSON"):
        load_json_file(bad)
    with pytest.raises(MinbumpError, match="cannot read"):
        load_json_file(tmp_path / "missing.json")


def test_fetch_offline_is_one_line_error():
    with pytest.raises(MinbumpError, match="cannot fetch .*download it and pass the file"):
        fetch_json("http://127.0.0.1:9/api/ubuntu.json", timeout=2)
    with pytest.raises(MinbumpError, match="only http"):
        fetch_json("file:///etc/passwd")
