"""What counts as dropped (issue 10, section 4) and old code that still reads (section 5).

Each test builds a real git repository with dated commits and tags and runs the
analyzer through run_refs or the `minbump dry-run` console entry.
"""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from bot.cli import main as entry_main
from bot.core.report import render_markdown
from bot.git.gather import run_refs
from tests.support.nova import CONFIG, driver, ocata_bump

DRV = "nova/virt/libvirt/driver.py"


def _still(r) -> list[str]:
    return list(dict.fromkeys(d["label"] for d in r.impacted if d["still_supported"]))


def _table_rows(md: str, title: str) -> list[str]:
    """Rows of the markdown table under a heading starting with `title` (header and rule excluded)."""
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(title))
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            if rows:
                break
            continue
        rows.append(ln)
    return rows[2:]


def assert_one_count(r) -> None:
    """Headline number == rows of the still-supported table == distinct still-supported labels."""
    md = render_markdown(r)
    labels = _still(r)
    m = re.search(r"drops (\d+) still-supported platform", r.summary)
    if not labels:
        assert m is None and "### Still-supported" not in md
        return
    assert m and int(m.group(1)) == len(labels), (r.summary, labels)
    rows = _table_rows(md, "### Still-supported platforms this drops")
    assert len(rows) == len(labels)
    assert [row.split("|")[2].strip() for row in rows] == labels
    assert f"### Still-supported platforms this drops ({len(labels)})" in md


def _dry_json(capsys, *args: str) -> tuple[int, dict]:
    with pytest.raises(SystemExit) as exc:
        entry_main(["dry-run", *args, "--format", "json"])
    return exc.value.code, json.loads(capsys.readouterr().out)


# ------------------------------------------------------- add-on repositories ---

def test_platform_in_use_only_through_an_addon_is_dropped_with_its_addon(repo):
    """Pike-era libvirt 1.2.9 -> 1.3.1 with QEMU at 2.1.0: RHEL 7's own QEMU (1.5.3) was below 2.1.0, but
    RHEL 7.2 with qemu-kvm-rhev (2.3.0) stayed in use; its libvirt 1.2.17 is what this raise drops."""
    qemu = {"min_qemu": "(2, 1, 0)", "next_qemu": "(2, 1, 0)"}
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)", **qemu), ".github/minbump.yml": CONFIG},
                date="2017-08-01T10:00:00+00:00")
    repo.tag("16.0.0", date="2017-08-30T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 3, 1)", "(1, 3, 1)", **qemu)}, date="2017-09-15T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.target_release["name"] == "Queens"
    rhel72 = [d for d in r.impacted if d["platform"] == "rhel-7" and d["minor"] == "7.2"]
    assert len(rhel72) == 1, [d["label"] for d in r.impacted]
    d = rhel72[0]
    assert d["via"].startswith("qemu-kvm-rhev") and d["label"] == f"RHEL 7.2 with {d['via']}"
    assert (d["component"], d["shipped"], d["required"]) == ("libvirt", "1.2.17", "1.3.1")
    assert d["superseded_by"] == "RHEL 7.3" and d["still_supported"] is False
    # RHEL 7.1 (libvirt 1.2.8) was below the old libvirt minimum: out already, not listed again.
    assert not [x for x in r.impacted if x["platform"] == "rhel-7" and x["minor"] in ("7.0", "7.1")]
    # Ubuntu 14.04 with the Cloud Archive: its base libvirt (1.2.2) was out; UCA kilo (1.2.12) kept it in use.
    trusty = [x for x in r.impacted if x["platform"] == "ubuntu-14.04"]
    assert [(x["via"], x["shipped"]) for x in trusty] == [("UCA kilo", "1.2.12")]
    assert trusty[0]["mitigations"][0]["name"] == "UCA mitaka"  # the oldest pocket meeting 1.3.1
    assert "Ubuntu 14.04 (trusty) with UCA kilo (UCA mitaka)" in r.summary
    assert_one_count(r)


# ------------------------------------------------------ a new hard minimum ---

def _introduce_qemu(repo, warned: bool):
    no_min = driver("(1, 2, 1)", "(1, 2, 1)", next_qemu="(2, 1, 0)" if warned else "(1, 0, 0)")
    no_min = no_min.replace("MIN_QEMU_VERSION = (1, 5, 3)\n", "")
    assert "\nMIN_QEMU_VERSION" not in no_min
    repo.commit({DRV: no_min, ".github/minbump.yml": CONFIG}, date="2016-03-20T10:00:00+00:00")
    repo.tag("13.0.0", date="2016-04-07T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)", min_qemu="(2, 1, 0)", next_qemu="(2, 1, 0)")},
                date="2016-06-01T10:00:00+00:00")
    return run_refs(repo.path, "main", "bump")


def test_introduced_constant_is_a_raise_from_no_minimum(repo):
    r = _introduce_qemu(repo, warned=False)
    ch = [c for c in r.changes if c["constant"] == "MIN_QEMU_VERSION"][0]
    assert (ch["old"], ch["new"]) == (None, "2.1.0") and "removed" not in ch
    dep = [d for d in r.deprecation if d["constant"] == "MIN_QEMU_VERSION"][0]
    assert dep["old"] is None and dep["warned"] is False and dep["previous_release"] == "13.0.0"
    plats = {d["platform"] for d in r.impacted if d["still_supported"]}
    assert {"ubuntu-14.04", "rhel-7"} <= plats  # QEMU 2.0 and 1.5.3
    assert r.verdict == "fail" and "without a release of warning" in r.summary
    assert_one_count(r)


def test_introduced_constant_warned_by_the_previous_release(repo):
    r = _introduce_qemu(repo, warned=True)
    dep = [d for d in r.deprecation if d["constant"] == "MIN_QEMU_VERSION"][0]
    assert dep["warned"] is True and dep["next_value"] == "2.1.0"
    assert r.verdict == "warn" and "after a release of warning" in r.summary


# ------------------------------------------------------- hypervisor scopes ---

VIRTUOZZO = """platforms:
- id: virtuozzo-7
  distro: virtuozzo
  release: '7'
  released: 2016-07-01
  eol: 2030-01-01
  arches: [x86_64]
  hypervisors: [parallels, virtuozzo]
  ships: {libvirt: {version: 1.2.10, confidence: medium}, qemu: {version: 2.3.0, confidence: medium}}
  confidence: {dates: medium}
  sources: [test data]
"""


def test_parallels_scope_touches_only_platforms_that_run_it(repo, tmp_path):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-05-01T10:00:00+00:00")
    repo.tag("13.0.0", date="2016-05-01T10:00:00+00:00")  # Mitaka, without a Parallels marker
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)", extra="MIN_LIBVIRT_PARALLELS_VERSION = (1, 2, 12)\n")},
                date="2016-06-01T10:00:00+00:00")
    # The shipped data: no platform runs Parallels, so nothing is judged and nothing fails.
    r = run_refs(repo.path, "main", "bump")
    assert r.impacted == [] and r.verdict == "pass"
    assert r.summary == "MIN_LIBVIRT_PARALLELS_VERSION not judged: no platform in the data runs parallels"
    # With a platform that runs it: that platform only.
    extra = tmp_path / "virtuozzo.yml"
    extra.write_text(VIRTUOZZO)
    r = run_refs(repo.path, "main", "bump", matrix_files=[str(extra)])
    assert [(d["platform"], d["scope"]["hypervisor"], d["shipped"]) for d in r.impacted] == [
        ("virtuozzo-7", "parallels", "1.2.10")]
    assert r.verdict == "fail"
    assert_one_count(r)


# ---------------------------------------------------------------- unknown ---

UNKNOWN = """platforms:
- id: example-1
  distro: example
  release: '1'
  released: 2015-01-01
  eol: 2030-01-01
  arches: [x86_64]
  ships: {libvirt: {version: null, confidence: low}, qemu: {version: 2.5.0, confidence: medium}}
  confidence: {dates: medium}
  sources: [test data]
"""


def test_unknown_version_is_listed_apart_and_never_counted(repo, tmp_path, capsys):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-05-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 2)", "(1, 2, 2)")}, date="2016-06-01T10:00:00+00:00")
    extra = tmp_path / "unknown.yml"
    extra.write_text(UNKNOWN)
    code, d = _dry_json(capsys, "--repo", str(repo.path), "--base", "main", "--head", "bump",
                        "--matrix", str(extra))
    assert [u["platform"] for u in d["unknown"]] == ["example-1"]
    u = d["unknown"][0]
    assert u["shipped"] is None and u["severity"] == "warn" and set(u) >= set(d["impacted"][0] if d["impacted"]
                                                                              else u)
    assert "example-1" not in {i["platform"] for i in d["impacted"]}
    assert not [i for i in d["impacted"] if i["still_supported"]]
    assert d["verdict"] == "warn" and code == 0
    assert "cannot tell for 1 still-supported platform" in d["summary"]
    assert "drops" not in d["summary"]
    # The verdict follows strictness.unknown.
    cfg = tmp_path / "strict.yml"
    cfg.write_text("preset: openstack-nova\nstrictness: {unknown: fail}\n")
    code, d = _dry_json(capsys, "--repo", str(repo.path), "--base", "main", "--head", "bump",
                        "--matrix", str(extra), "--config", str(cfg))
    assert d["verdict"] == "fail" and code == 1
    r = run_refs(repo.path, "main", "bump", matrix_files=[str(extra)])
    md = render_markdown(r)
    assert "<details><summary>Unknown data: 1 still-supported platform" in md
    assert_one_count(r)


# ------------------------------------------------------------- unreadable ---

@pytest.mark.parametrize("expr", ["get_min()", "1+1+1", "(1, 2, x)"])
def test_unreadable_value_is_not_a_removal(repo, expr):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.branch("bump")
    head = driver("(1, 2, 1)", "(1, 2, 1)").replace("MIN_LIBVIRT_VERSION = (1, 2, 1)",
                                                    f"MIN_LIBVIRT_VERSION = {expr}")
    repo.commit({DRV: head}, date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    ch = [c for c in r.changes if c["constant"] == "MIN_LIBVIRT_VERSION"][0]
    line = head.splitlines().index(f"MIN_LIBVIRT_VERSION = {expr}") + 1
    assert ch["new"] is None and ch["unreadable"] is True and "removed" not in ch
    assert (ch["file"], ch["line"], ch["expression"]) == (DRV, line, expr)
    assert r.verdict == "warn"  # strictness.unknown
    assert "raises" not in r.summary and "cannot read MIN_LIBVIRT_VERSION" in r.summary
    assert r.effective == []  # neither lowered nor removed
    md = render_markdown(r, link_base="https://github.com/o/r/blob/" + r.head + "/")
    link = f"https://github.com/o/r/blob/{r.head}/{DRV}#L{line}"
    assert f"`MIN_LIBVIRT_VERSION` = `{expr}` at [`{DRV}:{line}`]({link})" in md


def test_unreadable_per_arch_table_and_strictness(repo, tmp_path):
    extra = "MIN_LIBVIRT_OTHER_ARCH = {fields.Architecture.S390X: (1, 2, 13)}\n"
    cfg = CONFIG + "strictness: {unknown: fail}\n"
    repo.commit({DRV: driver(extra=extra), ".github/minbump.yml": cfg}, date="2016-09-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver(extra="MIN_LIBVIRT_OTHER_ARCH = build_table()\n")}, date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    unread = [c for c in r.changes if c.get("unreadable")]
    assert [(c["constant"], c["expression"]) for c in unread] == [("MIN_LIBVIRT_OTHER_ARCH", "build_table()")]
    assert r.verdict == "fail" and "raises" not in r.summary
    assert r.effective == []  # the s390x floor is not claimed lowered to the global one


def test_unreadable_per_arch_table_leaves_the_global_minimum_judged(repo):
    extra = "MIN_LIBVIRT_OTHER_ARCH = {fields.Architecture.S390X: (1, 2, 13)}\n"
    repo.commit({DRV: driver(extra=extra), ".github/minbump.yml": CONFIG}, date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)", extra="MIN_LIBVIRT_OTHER_ARCH = build_table()\n")},
                date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert [e["scope"] for e in r.effective] == [{"arch": None, "hypervisor": None}]
    assert "ubuntu-14.04" in {d["platform"] for d in r.impacted} and r.verdict == "fail"
    assert r.summary.startswith("drops ") and "cannot read MIN_LIBVIRT_OTHER_ARCH" in r.summary


def test_deleted_constant_is_removed_not_raised(repo):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.branch("bump")
    head = driver("(1, 2, 1)", "(1, 2, 1)").replace("MIN_LIBVIRT_VERSION = (1, 2, 1)\n", "")
    repo.commit({DRV: head}, date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    ch = [c for c in r.changes if c["constant"] == "MIN_LIBVIRT_VERSION"][0]
    assert ch["removed"] is True and "unreadable" not in ch
    assert r.verdict == "pass" and "raises" not in r.summary and "removes MIN_LIBVIRT_VERSION" in r.summary


def test_lowering_says_lowers(repo):
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.verdict == "pass" and not r.impacted
    assert r.summary == "lowers the libvirt minimum (1.2.9 → 1.2.1); drops nothing"
    assert "raises" not in render_markdown(r)


# --------------------------------------------------------- Python 2 files ---

PY2 = '''
def fix_perms(path):
    os.chmod(path, 0755)
    print "fixed", path

DEFAULT_VERSION_MODE = 0644
'''


def test_python2_file_is_read_statement_by_statement(repo):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)", extra=PY2), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    repo.branch("bump")
    head = driver("(1, 2, 9)", "(1, 2, 9)", extra=PY2)
    repo.commit({DRV: head}, date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.errors == []
    assert [(c["constant"], c["old"], c["new"]) for c in r.changes if c["kind"] == "hard"] == [
        ("MIN_LIBVIRT_VERSION", "1.2.1", "1.2.9")]
    assert r.verdict == "fail" and "ubuntu-14.04" in {d["platform"] for d in r.impacted}
    assert any(n.startswith(f"{DRV}:") and "does not parse as Python 3" in n for n in r.notes), r.notes
    mode_line = head.splitlines().index("DEFAULT_VERSION_MODE = 0644") + 1
    assert any(n.startswith(f"{DRV}:{mode_line} DEFAULT_VERSION_MODE") for n in r.notes), r.notes
    # The deprecation check reads the Python 2 release tag too.
    assert r.deprecation[0]["next_value"] == "1.2.1"


def test_python2_watched_constant_that_does_not_read_is_an_error(repo):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)", extra=PY2), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.branch("bump")
    head = driver("(1, 2, 1)", "(1, 2, 1)", extra=PY2 + "MIN_LIBVIRT_XEN_VERSION = 01002009\n")
    repo.commit({DRV: head}, date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    line = head.splitlines().index("MIN_LIBVIRT_XEN_VERSION = 01002009") + 1
    assert [(e["file"], e["line"]) for e in r.errors] == [(DRV, line)]
    assert "MIN_LIBVIRT_XEN_VERSION" in r.errors[0]["message"] and r.verdict == "neutral"


# ---------------------------------------------------------- minor releases ---

RHEL8 = """platforms:
- id: rhel-8
  distro: rhel
  release: '8'
  released: 2019-05-07
  eol: 2029-05-31
  arches: [x86_64]
  ships: {libvirt: {version: 8.0.0, confidence: high}, qemu: {version: 6.2.0, confidence: high}}
  minors:
  - {minor: '8.1', released: 2019-11-05, ships: {libvirt: {version: 4.5.0, confidence: high}}, confidence: high}
  - {minor: '8.2', released: 2020-04-28, support_end: 2020-10-31, extended: {name: EUS, end: 2022-04-30},
     ships: {libvirt: {version: 4.5.0, confidence: high}}, confidence: high}
  - {minor: '8.4', released: 2021-05-18, ships: {libvirt: {version: 6.0.0, confidence: high}}, confidence: high}
  - {minor: '8.6', released: 2022-05-10, ships: {libvirt: {version: 8.0.0, confidence: high}}, confidence: high}
  confidence: {dates: high}
  sources: [test data]
"""


@pytest.mark.parametrize("rule", ["standard", "extended"])
def test_superseded_minor_vs_extended_update_support(repo, tmp_path, rule):
    repo.commit({DRV: driver("(4, 0, 0)", "(4, 0, 0)", "(2, 11, 0)", "(2, 11, 0)"),
                 ".github/minbump.yml": CONFIG}, date="2021-06-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(5, 0, 0)", "(5, 0, 0)", "(2, 11, 0)", "(2, 11, 0)")},
                date="2021-07-01T10:00:00+00:00")
    extra = tmp_path / "rhel8.yml"
    extra.write_text(RHEL8)
    cfg = tmp_path / "minbump.yml"
    cfg.write_text(f"preset: openstack-nova\nsupport: {rule}\n")
    r = run_refs(repo.path, "main", "bump", as_of=date(2022, 1, 1), matrix_files=[str(extra)],
                 config_path=str(cfg))
    rhel = {d["minor"]: d for d in r.impacted if d["platform"] == "rhel-8"}
    assert set(rhel) == {"8.1", "8.2"}  # 8.4 is the release as updated: fine
    # 8.1 (nothing recorded) ended when 8.2 shipped.
    assert rhel["8.1"]["still_supported"] is False and rhel["8.1"]["superseded_by"] == "RHEL 8.2"
    assert rhel["8.1"]["support_end"] == "2020-04-28" and rhel["8.1"]["severity"] == "pass"
    md = render_markdown(r)
    older = md.split("<details><summary>Older minor releases")[1].split("</details>")[0]
    assert "| RHEL 8.1 |" in older
    if rule == "standard":  # 8.2's recorded end has passed; its EUS is a paid extension
        assert rhel["8.2"]["still_supported"] is False and rhel["8.2"]["superseded_by"] == "RHEL 8.4"
        assert rhel["8.2"]["support_end"] == "2020-10-31" and "| RHEL 8.2 |" in older
        assert not {"RHEL 8.1", "RHEL 8.2"} & set(_still(r))
    else:  # counted under the extended rule, until 2022-04-30
        assert rhel["8.2"]["still_supported"] is True and rhel["8.2"]["superseded_by"] is None
        assert rhel["8.2"]["support_end"] == "2022-04-30" and rhel["8.2"]["severity"] == "warn"
        assert rhel["8.2"]["mitigations"][0]["name"] == "RHEL 8.4+"
        assert "RHEL 8.2" in _still(r) and "RHEL 8.2" not in older
    assert_one_count(r)


def test_minor_superseded_by_an_undated_minor(repo):
    """RHEL/CentOS 7.1 ended when 7.2 shipped, though the data does not date 7.2: not supported until 7.7."""
    ocata_bump(repo)
    r = run_refs(repo.path, "main", "bump")
    minors = {(d["platform"], d["minor"]): d for d in r.impacted if d["minor"]}
    for pid, product in (("rhel-7", "RHEL"), ("centos-7", "CentOS")):
        d = minors[(pid, "7.1")]
        assert (d["still_supported"], d["superseded_by"], d["support_end"]) == (False, f"{product} 7.2", None)
        assert d["severity"] == "pass" and f"{product} 7.1" not in _still(r)
    assert "when CentOS 7.2 shipped" in render_markdown(r)
    assert_one_count(r)


@pytest.mark.parametrize("component,old,new", [("libvirt", "6.0.0", "8.0.0"), ("libvirt", None, "10.0.0"),
                                               ("qemu", "4.2.0", "7.2.0"), ("libvirt", "1.2.9", "4.0.0")])
@pytest.mark.parametrize("day", [date(2020, 6, 1), date(2026, 3, 1)])
def test_a_scope_held_to_the_global_numbers_drops_nothing_more(component, old, new, day):
    """Why the analysis skips judging a per-arch/per-hypervisor scope whose old and new minimum are the
    component's own: with the global hits excluded, that judgement can find nothing."""
    from bot.core.impact import dropped
    from bot.core.version import Version
    from bot.data.matrix import default_matrix

    matrix = default_matrix()
    ov, nv = (Version.parse(old) if old else None), Version.parse(new)
    hits = dropped(matrix, component, ov, nv, day=day)
    assert hits  # the shipped data has platforms these raises drop, so the check below means something
    exclude = {h.platform.id if h.minor is None else (h.platform.id, h.minor) for h in hits}
    for arch, hv in [("s390x", None), ("ppc64le", None), ("aarch64", None), (None, "lxc"), (None, "parallels")]:
        assert dropped(matrix, component, ov, nv, day=day, arch=arch, hypervisor=hv, exclude=exclude) == []
