"""Pull requests that change the policy itself, on real git repositories (issue 13).

The judgement keeps the base branch's policy; the head's config, matrix
files, calendar and support tables are reviewed and reported under
`policy_changes`.
"""

from __future__ import annotations

import json

import pytest

from bot.cli import main
from bot.core import tables
from bot.git.gather import run_refs
from tests.support.nova import driver

DRV = "nova/virt/libvirt/driver.py"
CFG = ".github/minbump.yml"
MATRIX = ".github/minbump-matrix.yml"
TABLE = "doc/source/reference/libvirt-distro-support-matrix.rst"
BASE_CFG = f"preset: openstack-nova\nmatrix: [{MATRIX}]\n"
BASE_MATRIX = "out_of_scope: []\n"


def release_table(rows: list[tuple[str, str, str, str]]) -> str:
    """A Nova-shaped release table: one row per release, columns named for the constants."""
    out = [".. list-table:: OpenStack Nova libvirt/QEMU Support Matrix", "",
           "    * - OpenStack Release", "      - Nova Release", "      - ``MIN_LIBVIRT_VERSION``",
           "      - ``NEXT_MIN_LIBVIRT_VERSION``"]
    for name, tag, lv, nlv in rows:
        out += [f"    * - {name}", f"      - {tag}", f"      - {lv}" if lv else "      -",
                f"      - {nlv}" if nlv else "      -"]
    return "\n".join(out) + "\n"


DISTRO_TABLE = """
.. list-table:: Distro libvirt/QEMU Support Table

    * - OS Distro
      - GA date
      - Libvirt
      - QEMU/KVM
    * - **Debian**
      -
      -
      -
    * - 13.x (Trixie) ("stable")
      - 2025-08-09
      - 10.7.0
      - 10.0.2
    * - **RHEL**
      -
      -
      -
    * - 8.2
      - 2020-04-28
      - 6.0.0-17.2
      - 4.2.0-19
    * - 8.6
      - 2022-05-10
      - 8.0.0-5.el8
      - 6.2.0-11
    * - **CentOS Stream**
      -
      -
      -
    * - 9
      - As of 2025-02-27.
      - 10.10.0
      - 9.1.0
    * - **SLES**
      -
      -
      -
    * - 15 (SP2)
      - 2020
      - 6.0.0
      - 4.2.1
    * - **Ubuntu**
      -
      -
      -
    * - 24.04 (Noble Numbat)
      - 2024-04-25
      - 10.0.0
      - 8.1.0
    * - **Plan 9**
      -
      -
      -
    * - 4th edition
      - 2002
      - 1.0.0
      - 1.0.0
"""


def _doc(lv: str = "10.0.0") -> str:
    return ("Support matrix\n==============\n\n"
            + release_table([("2025.2 Flamingo", "32.0.0", "8.0.0", "10.0.0"),
                             ("2026.1 Gazpacho", "33.0.0", lv, "11.0.0")])
            + DISTRO_TABLE)


@pytest.fixture
def nova(repo):
    """A Nova-like repository at Flamingo: a config, a project matrix file, the documented tables."""
    repo.commit({DRV: driver("(8, 0, 0)", "(10, 0, 0)", "(6, 2, 0)", "(8, 2, 2)"), CFG: BASE_CFG,
                 MATRIX: BASE_MATRIX, TABLE: _doc("8.0.0"), "README.rst": "nova\n"},
                date="2025-09-01T10:00:00+00:00")
    repo.tag("32.0.0", date="2025-10-01T10:00:00+00:00")
    repo.commit({"README.rst": "nova, after Flamingo\n"}, date="2025-10-10T10:00:00+00:00")
    repo.branch("pr")
    return repo


def _pr(repo, files: dict, when: str = "2025-11-20T10:00:00+00:00"):
    repo.commit(files, date=when)
    return run_refs(repo.path, "main", "pr")


def _base(repo, files: dict) -> None:
    """The base branch gets `files` (a config of its own); `pr` starts again from there."""
    repo.checkout("main")
    repo.commit(files, date="2025-10-11T10:00:00+00:00")
    repo.git("branch", "-f", "pr", "main")
    repo.checkout("pr")


def _kinds(report, kind: str) -> list[dict]:
    return [e for e in report.policy_changes if e["kind"] == kind]


def test_invalid_head_config_fails_with_every_error_and_line(nova):
    r = _pr(nova, {CFG: "preset: openstack-nova\nsupport: bogus\nwatch: 42\n"})
    bad = _kinds(r, "invalid")
    assert r.verdict == "fail"
    assert {(e["file"], e["line"]) for e in bad} == {(CFG, 2), (CFG, 3)}
    assert all(e["severity"] == "fail" for e in bad)
    assert "bogus" in " ".join(e["after"] for e in bad)
    assert "do not load" in r.summary
    # The judgement itself still ran with the base's valid config.
    assert r.to_dict()["data"]["config"].startswith(f"{CFG}@")


def test_unknown_preset_at_head_is_invalid_with_its_line(nova):
    r = _pr(nova, {CFG: f"matrix: [{MATRIX}]\npreset: openstack-nvoa\n"})
    bad = _kinds(r, "invalid")
    assert r.verdict == "fail"
    assert [(e["subject"], e["line"]) for e in bad] == [("preset", 2)] and "openstack-nvoa" in bad[0]["after"]


def test_head_yaml_syntax_error_has_its_line(nova):
    r = _pr(nova, {CFG: "preset: openstack-nova\nstrictness: {unwarned_drop: warn\n"})
    bad = _kinds(r, "invalid")
    assert r.verdict == "fail" and bad and bad[0]["subject"] == "YAML" and bad[0]["line"] is not None


def test_loosened_strictness_warns_and_is_listed(nova):
    r = _pr(nova, {CFG: BASE_CFG + "strictness:\n  unwarned_drop: warn\n"})
    loose = _kinds(r, "loosened")
    assert r.verdict == "warn"
    assert [(e["subject"], e["before"], e["after"], e["line"]) for e in loose] == \
        [("strictness.unwarned_drop", "fail", "warn", 4)]
    assert "needs a maintainer's review" in r.summary
    assert r.watched_changed  # a policy-only change is relevant: the bot comments


def test_policy_loosened_level_comes_from_the_base(nova):
    """The base's strictness.policy_loosened decides the verdict; the head cannot lower it for itself."""
    _base(nova, {CFG: BASE_CFG + "strictness: {policy_loosened: fail}\n"})
    r = _pr(nova, {CFG: BASE_CFG + "strictness: {policy_loosened: pass, unwarned_drop: pass}\n"})
    assert r.verdict == "fail"
    assert {e["subject"] for e in _kinds(r, "loosened")} == {"strictness.policy_loosened",
                                                             "strictness.unwarned_drop"}


def test_ignore_added_for_a_watched_constant_is_listed(nova):
    r = _pr(nova, {CFG: BASE_CFG + "constants:\n  MIN_LIBVIRT_VERSION: {ignore: true}\n"})
    loose = _kinds(r, "loosened")
    assert r.verdict == "warn"
    assert [(e["subject"], e["before"], e["after"], e["line"]) for e in loose] == \
        [("constants.MIN_LIBVIRT_VERSION", "hard", "ignore", 4)]


def test_watch_narrowed_away_from_the_constants_is_listed(nova):
    r = _pr(nova, {CFG: BASE_CFG + "watch: ['nova/virt/libvirt/host.py']\n"})
    loose = _kinds(r, "loosened")
    assert [e["subject"] for e in loose] == ["watch"]
    assert DRV in loose[0]["detail"] and "MIN_LIBVIRT_VERSION" in loose[0]["detail"]


def test_out_of_scope_for_a_still_supported_platform(nova):
    r = _pr(nova, {MATRIX: "out_of_scope:\n  - {id: ubuntu-22.04, reason: we test on 24.04 only}\n"
                           "  - {id: ubuntu-14.04, reason: old}\n"})
    leaving = {e["subject"]: e for e in _kinds(r, "leaves-support")}
    jammy = leaving["ubuntu-22.04"]
    assert r.verdict == "warn"
    assert jammy["still_supported"] is True and jammy["support_end"] == "2027-04-01"
    assert jammy["file"] == MATRIX and jammy["line"] == 2 and jammy["severity"] == "warn"
    assert jammy["before"] == "in scope" and "24.04 only" in jammy["after"]
    trusty = leaving["ubuntu-14.04"]  # already past its end of support: a note, not a warning
    assert trusty["still_supported"] is False and trusty["severity"] == "note" and trusty["line"] == 3


def test_project_matrix_claiming_a_wrong_version(nova):
    r = _pr(nova, {MATRIX: "platforms:\n"
                           "  - id: debian-12\n    distro: debian\n    release: '12'\n"
                           "    released: 2023-06-10\n    eol: 2026-06-10\n    arches: [x86_64]\n"
                           "    ships:\n      libvirt: {version: 10.0.0, confidence: high}\n"
                           "      qemu: {version: 7.2.0, confidence: high}\n"
                           "    confidence: {dates: high}\n    sources: [our CI]\n"})
    wrong = _kinds(r, "contradicts-data")
    assert [(e["subject"], e["before"], e["after"], e["line"], e["severity"]) for e in wrong] == \
        [("debian-12 eol", "2026-07-11", "2026-06-10", 6, "warn"),  # an earlier end hides drops
         ("debian-12 libvirt", "9.0.0", "10.0.0", 9, "warn")]  # so does a higher version
    assert all("debian.md" in e["source"] for e in wrong)
    assert r.verdict == "warn"


def test_release_table_row_disagreeing_with_the_constants_is_a_note(nova):
    r = _pr(nova, {DRV: driver("(8, 0, 0)", "(10, 0, 0)", "(6, 2, 0)", "(8, 2, 2)", extra="# touched\n"),
                   TABLE: _doc("9.0.0")})
    rows = [e for e in _kinds(r, "support-table") if e["subject"].startswith("MIN_LIBVIRT_VERSION")]
    assert [(e["before"], e["after"], e["severity"]) for e in rows] == [("9.0.0", "8.0.0", "note")]
    assert rows[0]["subject"] == "MIN_LIBVIRT_VERSION for 2026.1 Gazpacho"
    assert "the table says MIN_LIBVIRT_VERSION 9.0.0 for 2026.1 Gazpacho, the code says 8.0.0" in rows[0]["detail"]
    line = _doc("9.0.0").splitlines().index("    * - 2026.1 Gazpacho") + 1
    assert rows[0]["line"] == line
    assert r.verdict == "neutral"  # notes never change the verdict
    assert not any("minbump.yml" in n for n in r.notes)  # a table is not the config the check reads


def test_raising_a_constant_checks_the_release_table(nova):
    r = _pr(nova, {DRV: driver("(10, 0, 0)", "(11, 0, 0)", "(8, 2, 2)", "(8, 2, 2)")})
    rows = {e["subject"]: e for e in _kinds(r, "support-table")}
    assert rows["MIN_LIBVIRT_VERSION for 2026.1 Gazpacho"]["before"] == "8.0.0"
    assert rows["MIN_LIBVIRT_VERSION for 2026.1 Gazpacho"]["after"] == "10.0.0"
    assert "NEXT_MIN_LIBVIRT_VERSION for 2026.1 Gazpacho" not in rows  # 11.0.0 in both


def test_missing_release_row_is_a_note(nova):
    doc = release_table([("2025.2 Flamingo", "32.0.0", "8.0.0", "10.0.0")]) + DISTRO_TABLE
    r = _pr(nova, {TABLE: doc})
    missing = [e for e in _kinds(r, "support-table") if e["subject"].startswith("row for")]
    assert missing and missing[0]["severity"] == "note" and "2026.1 Gazpacho" in missing[0]["detail"]


def test_distribution_rows_against_the_data(nova):
    r = _pr(nova, {TABLE: _doc("8.0.0") + "\n"})
    notes = {e["subject"]: e for e in _kinds(r, "support-table")}
    trixie = notes["Debian 13 (trixie) libvirt"]
    assert (trixie["before"], trixie["after"], trixie["severity"]) == ("11.3.0", "10.7.0", "note")
    assert trixie["source"]
    # A package suffix is not a difference: RHEL 8.6 ships 8.0.0 and 6.2.0; 8.2's 6.0.0 is the
    # Advanced Virtualization stream (an add-on), not the base repository's 4.5.0.
    assert not any(s.startswith("RHEL 8") for s in notes)
    assert "Debian 13 (trixie) qemu" not in notes  # 10.0.2 is the data's GA version
    # Every row but Plan 9's matches a platform: "15 (SP2)" is SLES 15 SP2, "9" CentOS Stream 9 (a dated snapshot).
    noble = notes["Ubuntu 24.04 (noble) qemu"]
    assert (noble["before"], noble["after"]) == ("8.2.2", "8.1.0")
    assert {s for s in notes if "SLES" in s or "CentOS" in s} == set()
    unmatched = notes["rows not matched to a platform"]
    line = _doc().splitlines().index("    * - 4th edition") + 1
    assert unmatched["after"] == f"Plan 9 4th edition (line {line})"
    assert r.verdict == "neutral"


def test_unrelated_change_has_no_policy_changes(nova):
    r = _pr(nova, {"README.rst": "nova, docs only\n"})
    assert r.policy_changes == [] and r.verdict == "neutral" and not r.watched_changed
    assert r.to_dict()["policy_changes"] == []


def test_dry_run_prints_the_section_and_json(nova, capsys):
    nova.commit({CFG: BASE_CFG + "strictness:\n  unwarned_drop: warn\n"}, date="2025-11-20T10:00:00+00:00")
    with pytest.raises(SystemExit) as exc:
        main(["dry-run", "--repo", str(nova.path), "--base", "main", "--head", "pr"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert "### Policy changes" in out and "Loosened: needs a maintainer's review" in out
    assert "| ⚠️ | `strictness.unwarned_drop` | fail | warn | `.github/minbump.yml:4` |" in out
    with pytest.raises(SystemExit):
        main(["dry-run", "--repo", str(nova.path), "--base", "main", "--head", "pr", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "warn" and data["policy_changes"][0]["subject"] == "strictness.unwarned_drop"


def test_invalid_head_config_exits_1_in_dry_run(nova, capsys):
    nova.commit({CFG: "preset: openstack-nova\nsupport: bogus\n"}, date="2025-11-20T10:00:00+00:00")
    with pytest.raises(SystemExit) as exc:
        main(["dry-run", "--repo", str(nova.path), "--base", "main", "--head", "pr"])
    out = capsys.readouterr().out
    assert exc.value.code == 1 and "Invalid at head" in out and "`.github/minbump.yml:2`" in out


def test_links_point_at_the_head_line():
    from bot.core.policy_changes import render

    entry = {"file": CFG, "line": 4, "kind": "loosened", "subject": "strictness.unwarned_drop", "before": "fail",
             "after": "warn", "severity": "warn", "detail": "strictness lowered from fail to warn"}
    text = "\n".join(render([entry], "https://github.example/o/r/blob/abc123/"))
    assert "[`.github/minbump.yml:4`](https://github.example/o/r/blob/abc123/.github/minbump.yml#L4)" in text


# ------------------------------------------------------------ table parser ---

def test_parses_grid_simple_and_markdown_tables():
    grid = "+------+--------+\n| A    | B      |\n+======+========+\n| x    | y      |\n| x2   |        |\n" \
           "+------+--------+\n| z    | w      |\n+------+--------+\n"
    (g,) = tables.parse(grid, "a.rst")
    assert g.header == ["A", "B"] and [r.cells for r in g.rows] == [["x x2", "y"], ["z", "w"]]
    assert [r.line for r in g.rows] == [4, 7]
    simple = "=======  =======\nDistro   Libvirt\n=======  =======\nDebian   9.0.0\nUbuntu   10.0.0\n=======  =======\n"
    (s,) = tables.parse(simple, "a.rst")
    assert s.header == ["Distro", "Libvirt"] and [r.cells for r in s.rows] == [["Debian", "9.0.0"],
                                                                                ["Ubuntu", "10.0.0"]]
    md = "# T\n\n| Release | `MIN_LIBVIRT_VERSION` |\n|---|:---:|\n| 2026.1 | 10.0.0 |\n| a \\| b | 1 |\n"
    (m,) = tables.parse(md, "doc.md")
    assert [tables.clean(h) for h in m.header] == ["Release", "MIN_LIBVIRT_VERSION"]
    assert [r.cells for r in m.rows] == [["2026.1", "10.0.0"], ["a | b", "1"]] and m.rows[0].line == 5


def test_list_table_with_ragged_rows_is_an_error():
    text = ".. list-table:: T\n\n    * - a\n      - b\n    * - c\n"
    with pytest.raises(tables.TableError, match="line 5"):
        tables.parse(text, "a.rst")


# ------------------------------------------------------ the bot's comment ---

def test_bot_comments_on_a_policy_only_pull_request(tmp_path, fake_github, monkeypatch):
    """A PR that only loosens the config gets a comment whose section links to the line at head."""
    from tests.support.fakegithub import Harness, fast_env, nova_repo
    from tests.support.nova import CONFIG

    for name in ("REDIS_URL", "APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "GITHUB_TOKEN", "WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    repo, pr = "octo/nova", 21
    work, _base, head = nova_repo(tmp_path / "nova",
                                  head_files={CFG: CONFIG + "strictness:\n  unwarned_drop: pass\n"})
    fake_github.add_repo(repo, work)
    fake_github.sync(repo)
    fake_github.add_pull(repo, pr, head, "main", "bump")
    env = fast_env(fake_github, tmp_path / "data", GITHUB_TOKEN=fake_github.add_token("minbump-bot"))
    svc = Harness(fake_github, tmp_path / "data", env)
    assert svc.deliver("pull_request.opened", repo, pr, head).status_code == 202
    assert svc.work() == 1
    bodies = [c["body"] for c in fake_github.pr_comments(repo, pr) if c["user"]["login"] == "minbump-bot"]
    assert len(bodies) == 1
    body = bodies[0]
    assert "minbump: warn" in body and "### Policy changes" in body
    link = f"{fake_github.url}/{repo}/blob/{head}/.github/minbump.yml#L3"
    assert f"[`.github/minbump.yml:3`]({link})" in body
    assert [s["state"] for s in fake_github.commit_statuses(repo, head)] == ["success"]


# ------------------------------------------------------ minbump validate ---

def test_validate_checks_support_tables_exist_and_parse(tmp_path, capsys):
    cfg = tmp_path / ".github" / "minbump.yml"
    cfg.parent.mkdir()
    (tmp_path / "doc").mkdir()
    (tmp_path / "doc" / "ok.rst").write_text(_doc())
    (tmp_path / "doc" / "ragged.rst").write_text(".. list-table:: T\n\n    * - a\n      - b\n    * - c\n")
    cfg.write_text("preset: openstack-nova\nsupport_tables:\n  - {path: doc/ok.rst}\n  - doc/missing.rst\n"
                   "  - {path: doc/ragged.rst}\n")
    with pytest.raises(SystemExit) as exc:
        main(["validate", str(cfg)])
    out = capsys.readouterr().out
    assert exc.value.code == 1
    assert "minbump.yml:4: support_tables[1]: doc/missing.rst does not exist" in out
    assert "minbump.yml:5: support_tables[2]: doc/ragged.rst: line 5: this row has 1 cells" in out
    assert "ok.rst" not in out
    cfg.write_text("preset: openstack-nova\nsupport_tables: [{path: doc/ok.rst}]\n")
    try:
        main(["validate", str(cfg)])
        code = 0
    except SystemExit as done:
        code = done.code or 0
    assert code == 0 and "1 file(s) valid" in capsys.readouterr().err


def test_support_rule_narrowed_lists_the_platforms_leaving(nova):
    """extended -> standard stops counting ESM/ELS/LTSS: loosened, and each platform that leaves is listed."""
    _base(nova, {CFG: BASE_CFG + "support: extended\n"})
    r = _pr(nova, {CFG: BASE_CFG + "support: standard\n"})
    loose = _kinds(r, "loosened")
    assert [(e["subject"], e["before"], e["after"], e["line"]) for e in loose] == \
        [("support", "extended", "standard", 3)]
    leaving = {e["subject"]: e for e in _kinds(r, "leaves-support")}
    focal = leaving["ubuntu-20.04"]  # standard support ended 2025-05-31; ESM runs to 2030
    assert focal["severity"] == "note" and focal["still_supported"] is True
    assert focal["support_end"] > "2026-04-01"
    assert "ubuntu-24.04" not in leaving and r.verdict == "warn"


def test_support_rule_widened_is_shown_but_not_loosened(nova):
    """standard -> extended protects more platforms (ESM/ELS/LTSS count): a note for the reviewer, not a loosening."""
    r = _pr(nova, {CFG: BASE_CFG + "support: extended\n"})
    assert _kinds(r, "loosened") == []
    assert [(e["subject"], e["before"], e["after"], e["severity"]) for e in _kinds(r, "changed")] == \
        [("support", "standard", "extended", "note")]
    assert r.verdict == "neutral"


def test_invalid_head_calendar_file_fails_with_its_line(nova):
    from bot.data.paths import policy_file

    calendar = open(policy_file("calendars", "openstack.yaml"), encoding="utf-8").read()
    _base(nova, {CFG: BASE_CFG + "calendar: {path: .github/calendar.yml}\n", ".github/calendar.yml": calendar})
    broken = calendar.replace("date: 2026-04-01", "date: 2026-13-01")
    r = _pr(nova, {".github/calendar.yml": broken})
    bad = _kinds(r, "invalid")
    line = broken.splitlines().index([x for x in broken.splitlines() if "2026-13-01" in x][0]) + 1
    assert r.verdict == "fail" and [(e["file"], e["line"]) for e in bad] == [(".github/calendar.yml", line)]


def test_a_change_cannot_loosen_its_own_check(nova):
    """Raising a minimum unwarned while lowering unwarned_drop: still judged fail with the base's policy."""
    r = _pr(nova, {DRV: driver("(11, 0, 0)", "(11, 0, 0)", "(8, 2, 2)", "(8, 2, 2)"),
                   CFG: BASE_CFG + "strictness:\n  unwarned_drop: pass\n"})
    assert r.verdict == "fail" and any(d["severity"] == "fail" for d in r.impacted)
    assert [e["subject"] for e in _kinds(r, "loosened")] == ["strictness.unwarned_drop"]
    assert r.summary.endswith("loosens the project's policy (1 change); needs a maintainer's review")
