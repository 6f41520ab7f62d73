"""JSON Schemas for policy files and .github/minbump.yml, and errors that point at the line to edit."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bot.cli import matrix as cli_matrix
from bot.errors import MinbumpError
from bot.data.schema import KINDS, Error, infer_kind, line_of, load_schema, policy_files, validate_data, validate_file

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policy"


def _cli() -> click.Group:
    group = click.Group()
    cli_matrix.register(group)
    return group


def test_schemas_are_valid_draft_2020_12():
    from jsonschema import Draft202012Validator

    for kind in KINDS:
        schema = load_schema(kind)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", policy_files(POLICY), ids=lambda p: str(p.relative_to(POLICY)))
def test_every_shipped_policy_file_validates(path):
    assert validate_file(path) == []


def test_shipped_files_cover_every_kind():
    kinds = {infer_kind(p, None) for p in policy_files(POLICY)} | {"matrix"}
    assert {"matrix", "calendar", "preset", "facts"} <= kinds
    assert infer_kind(POLICY / "matrix.yaml", {"platforms": []}) == "matrix"
    assert infer_kind(Path(".github/minbump.yml"), {}) == "config"
    assert infer_kind(Path("x.yaml"), {"watch": ["a"]}) == "config"
    assert infer_kind(Path("x.yaml"), {"name": "c", "releases": []}) == "calendar"
    assert infer_kind(Path("x.yaml"), {"foo": 1}) is None


BAD_CONFIG = """\
preset: openstack-nova
watch:
  - nova/virt/libvirt/*.py
suport: extended
strictness:
  unwarned_drop: error
int_encoding: {base: 1000, width: 0}
matrix:
  - /etc/minbump.yaml
components:
  libvirt: libvirt
constants:
  MIN_X: {component: libvirt, kind: soft}
max_data_age_days: 0
"""


def test_config_errors_name_line_key_path_and_problem(tmp_path):
    f = tmp_path / ".github" / "minbump.yml"
    f.parent.mkdir()
    f.write_text(BAD_CONFIG)
    errors = validate_file(f)
    got = {(e.line, e.key_path) for e in errors}
    assert got == {(4, "suport"), (6, "strictness.unwarned_drop"), (7, "int_encoding.width"),
                   (9, "matrix[0]"), (11, "components.libvirt"), (13, "constants.MIN_X.kind"),
                   (14, "max_data_age_days")}
    by_key = {e.key_path: e for e in errors}
    assert "did you mean 'support'" in by_key["suport"].message
    assert "fail, warn, pass" in by_key["strictness.unwarned_drop"].message
    assert "UPPER_CASE" in by_key["components.libvirt"].message
    assert str(by_key["suport"]).endswith(":4: suport: unknown key 'suport' (did you mean 'support'?)")


def test_a_good_config_passes_and_free_text_is_allowed():
    text = ("preset: openstack-nova\nwatch: nova/virt/libvirt/driver.py\ncalendar: {path: ci/calendar.yaml}\n"
            "support: extended\nmatrix: [ci/matrix.yaml]\nmax_data_age_days: 200\n"
            "tests_with: 'Ubuntu 24.04 gate jobs'\nnotes: anything\n"
            "strictness: {unwarned_drop: fail, warned_drop: warn, unknown: pass, low_confidence: warn, "
            "minor_drop: pass}\n"
            "constants:\n  MIN_LIBVIRT_VERSION: {component: libvirt, kind: hard, arch: x86_64, "
            "encoding: {base: 1000, width: 3}}\n"
            "  NEXT_MIN_QEMU_VERSION: {component: qemu, kind: next, ignore: true}\n")
    import yaml

    assert validate_data(yaml.safe_load(text), "config", text, "minbump.yml") == []


def test_presets_cannot_name_a_preset():
    errors = validate_data({"preset": "x", "watch": ["a"]}, "preset", "preset: x\nwatch: [a]\n", "p.yml")
    assert [(e.line, e.key_path) for e in errors] == [(1, "preset")]


def test_validate_data_without_text_still_names_the_key():
    errors = validate_data({"support": "sometimes"}, "config")
    assert errors == [Error("<data>", None, "support", "'sometimes' is not one of standard, extended")]


def test_matrix_errors_point_into_the_platform(tmp_path):
    f = tmp_path / "override.yaml"
    f.write_text(
        "platforms:\n"
        "- id: virtuozzo-7\n"
        "  distro: virtuozzo\n"
        "  release: '7'\n"
        "  released: 2016-07-26\n"
        "  eol: 2026-12-01\n"
        "  arches: [x86_64]\n"
        "  ships: {libvirt: {version: 4.5.0, confidence: certain}}\n"
        "  confidence: {dates: low}\n"
        "  sources: ['vendor notes']\n"
        "out_of_scope:\n"
        "- {id: fedora-44, why: 'not tested'}\n")
    errors = validate_file(f)
    got = {(e.line, e.key_path) for e in errors}
    assert (8, "platforms[0].ships.libvirt.confidence") in got
    assert (12, "out_of_scope[0].why") in got or (12, "out_of_scope[0]") in got
    assert len(errors) == 2


def test_impossible_date_is_a_line_error_not_a_crash(tmp_path):
    f = tmp_path / "calendar.yaml"
    f.write_text("name: x\nreleases:\n  - {name: A, tag: '1', date: 2026-13-01}\n")
    (err,) = validate_file(f, "calendar")
    assert (err.line, err.key_path) == (3, "releases[0].date")
    assert "2026-13-01" in err.message


def test_unquoted_float_version_is_caught():
    text = "platforms:\n- id: x-1\n  distro: x\n  release: 1\n  released: null\n  eol: null\n  arches: []\n" \
           "  ships: {qemu: {version: 2.10, confidence: high}}\n  confidence: {dates: low}\n  sources: [s]\n"
    import yaml

    errors = validate_data(yaml.safe_load(text), "matrix", text, "m.yaml")
    keys = {e.key_path: e.line for e in errors}
    assert keys == {"platforms[0].release": 4, "platforms[0].ships.qemu.version": 8}


def test_line_of_handles_missing_steps():
    import yaml

    root = yaml.compose("a:\n  b:\n    - x\n    - y\n")
    assert line_of(root, ["a", "b", 1]) == 4
    assert line_of(root, ["a", "zzz"]) == 1  # the nearest key that exists
    assert line_of(None, ["a"]) is None


def test_yaml_syntax_error_is_a_line_error(tmp_path):
    f = tmp_path / "matrix.yaml"
    f.write_text("platforms:\n  - id: [unclosed\n")
    (err,) = validate_file(f)
    assert err.line is not None and "not valid YAML" in err.message


def test_unreadable_file_raises_one_line_error(tmp_path):
    with pytest.raises(MinbumpError, match="cannot read"):
        validate_file(tmp_path / "missing.yaml")


def test_validate_command_exit_codes(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(_cli(), ["validate"])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / ".github" / "minbump.yml"
    bad.parent.mkdir()
    bad.write_text(BAD_CONFIG)
    res = runner.invoke(_cli(), ["validate", str(bad), str(POLICY / "matrix.yaml")])
    assert res.exit_code == 1
    lines = [x for x in res.stdout.splitlines() if x]
    assert len(lines) == 7 and all(":" in x for x in lines)
    assert any(x.endswith("minbump.yml:4: suport: unknown key 'suport' (did you mean 'support'?)") for x in lines)
    missing = runner.invoke(_cli(), ["validate", str(tmp_path / "nope.yml")])
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr


def test_validate_command_kind_override(tmp_path):
    f = tmp_path / "whatever.yaml"
    f.write_text("name: openstack\nreleases:\n  - {name: A, tag: '1', date: 2020-01-01, confidence: sure}\n")
    res = CliRunner().invoke(_cli(), ["validate", "--kind", "calendar", str(f)])
    assert res.exit_code == 1
    assert "whatever.yaml:3: releases[0].confidence:" in res.stdout


def test_config_module_uses_the_schema(tmp_path):
    """The lead's bot.data.config reports schema errors through bot.data.schema.validate_data."""
    from bot.data.config import from_text
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=r"minbump.yml:2: support: 'sometimes' is not one of"):
        from_text(b"watch: ['*.py']\nsupport: sometimes\n", ".github/minbump.yml")


def test_schema_files_are_json():
    """Every file kind has its schema beside the data, and each is a JSON Schema document."""
    files = sorted((POLICY / "schema").glob("*.json"))
    assert {f.name for f in files} >= {f"{kind}.schema.json" for kind in KINDS}
    for f in files:
        doc = json.loads(f.read_text())
        assert isinstance(doc, dict) and doc.get("$schema", "").startswith("https://json-schema.org/"), f.name
