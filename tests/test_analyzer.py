"""The analyzer end to end on real git repositories (dated commits, tags), through run_refs."""

from __future__ import annotations

import json
from datetime import date

import pytest

from bot.git.gather import NotConfigured, run_refs
from bot.errors import ConfigError, MinbumpError
from tests.support.nova import CONFIG, driver, ocata_bump

DRV = "nova/virt/libvirt/driver.py"


def _ids(report, supported=True):
    return {(d["platform"], d["minor"]) for d in report.impacted if d["still_supported"] == supported}


def test_warned_raise_mitaka(repo):
    """Nova Mitaka: 0.9.11 -> 0.10.2 after Liberty shipped NEXT_MIN 0.10.2 with a warning."""
    old_qemu = {"min_qemu": "(0, 12, 1)", "next_qemu": "(0, 12, 1)"}
    repo.commit({DRV: driver("(0, 9, 11)", "(0, 10, 2)", **old_qemu), ".github/minbump.yml": CONFIG},
                date="2015-09-20T10:00:00+00:00")
    repo.tag("12.0.0", date="2015-10-15T10:00:00+00:00")
    repo.commit({"README.rst": "nova\n"}, date="2015-11-02T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(0, 10, 2)", "(1, 2, 1)", **old_qemu)}, date="2016-01-12T09:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert {k: r.target_release[k] for k in ("name", "tag", "date")} == {"name": "Mitaka", "tag": "13.0.0",
                                                                      "date": "2016-04-07"}
    assert r.target_release["how"] == "topology"
    assert r.as_of == date(2016, 4, 7)
    dep = [d for d in r.deprecation if d["constant"] == "MIN_LIBVIRT_VERSION"][0]
    assert dep["warned"] is True and dep["previous_release"] == "12.0.0"
    assert dep["next_value"] == "0.10.2" and "init_host" in dep["evidence"]
    assert ("debian-7", None) in _ids(r)
    wheezy = [d for d in r.impacted if d["platform"] == "debian-7"][0]
    assert wheezy["shipped"] == "0.9.12.3" and wheezy["required"] == "0.10.2"
    assert any(m["name"] == "wheezy-backports" for m in wheezy["mitigations"])
    # Ubuntu 12.04's own libvirt (0.9.8) was already below 0.9.11: it stayed in use through the Cloud
    # Archive, and UCA folsom (0.9.13) is what this raise drops; grizzly (1.0.2) is the way out.
    precise = [d for d in r.impacted if d["platform"] == "ubuntu-12.04"]
    assert [(d["via"], d["label"], d["shipped"]) for d in precise] == [
        ("UCA folsom", "Ubuntu 12.04 (precise) with UCA folsom", "0.9.13")]
    assert precise[0]["mitigations"][0]["name"] == "UCA grizzly"
    assert r.verdict == "warn"


def test_unwarned_raise_fails(repo):
    """Ocata-era raise to 1.2.9 where Newton only warned below 1.2.1: drops Ubuntu 14.04 unwarned."""
    ocata_bump(repo)
    r = run_refs(repo.path, "main", "bump")
    assert r.target_release["tag"] == "15.0.0"
    assert r.verdict == "fail"
    trusty = [d for d in r.impacted if d["platform"] == "ubuntu-14.04"][0]
    assert trusty["still_supported"] and trusty["shipped"] == "1.2.2" and trusty["severity"] == "fail"
    assert any(m["kind"] == "ubuntu-cloud-archive" for m in trusty["mitigations"])
    dep = r.deprecation[0]
    assert dep["warned"] is False and "below the new minimum" in dep["evidence"]
    # RHEL 7.1 ships 1.2.8: reported as a minor with the upgrade as mitigation.
    rhel71 = [d for d in r.impacted if d["platform"] == "rhel-7" and d["minor"] == "7.1"][0]
    assert rhel71["mitigations"][0] == {"kind": "minor-release", "name": "RHEL 7.2+", "version": "1.2.17",
                                        "confidence": "medium"}
    # SLES 12 GA ended standard support in 2016-06: dropped, but not still supported.
    sles = [d for d in r.impacted if d["platform"] == "sles-12.0"][0]
    assert sles["still_supported"] is False
    assert any(m["kind"] == "service-pack" for m in sles["mitigations"])


def test_platform_already_dropped_by_another_component_is_not_reported(repo):
    """Newton added MIN_QEMU_VERSION 1.5.3; Ubuntu 12.04 (QEMU 1.0) was already out through libvirt."""
    no_qemu = driver("(1, 2, 1)", "(1, 2, 1)").replace("MIN_QEMU_VERSION = (1, 5, 3)\n", "")
    no_qemu = no_qemu.replace("NEXT_MIN_QEMU_VERSION = (1, 5, 3)\n", "")
    repo.commit({DRV: no_qemu, ".github/minbump.yml": CONFIG}, date="2016-04-20T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)")}, date="2016-04-25T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.effective == [{"component": "qemu", "scope": {"arch": None, "hypervisor": None},
                            "old": None, "new": "1.5.3"}]
    plats = {d["platform"] for d in r.impacted}
    assert "ubuntu-12.04" not in plats  # libvirt 0.9.8 < 1.2.1 already
    assert "debian-7" not in plats      # libvirt 0.9.12 < 1.2.1 already


def test_marker_only_on_unreleased_base(repo):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 9)")}, date="2016-10-20T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.verdict == "fail"
    assert "only on the unreleased base branch" in r.deprecation[0]["evidence"]


def test_next_min_on_head_never_counts(repo):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 9)", "(2, 0, 0)")}, date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.deprecation[0]["warned"] is False and r.verdict == "fail"


def test_marker_not_used_by_warning_code(repo):
    repo.commit({DRV: driver("(0, 9, 11)", "(0, 10, 2)", warn=False), ".github/minbump.yml": CONFIG},
                date="2015-09-20T10:00:00+00:00")
    repo.tag("12.0.0", date="2015-10-15T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(0, 10, 2)", "(0, 10, 2)", warn=False)}, date="2016-01-12T09:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.deprecation[0]["warned"] is False
    assert "not by code that logs a warning" in r.deprecation[0]["evidence"]


def test_missing_release_tag_is_said(repo):
    repo.commit({DRV: driver("(0, 9, 11)", "(0, 10, 2)"), ".github/minbump.yml": CONFIG},
                date="2015-09-20T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(0, 10, 2)", "(0, 10, 2)")}, date="2016-01-12T09:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.deprecation[0]["warned"] is None  # unknown, never "not warned"
    assert "12.0.0" in r.deprecation[0]["evidence"] and "not in the repository" in r.deprecation[0]["evidence"]


ARCH_EXTRA = """MIN_LIBVIRT_KVM_S390_VERSION = {s390}
MIN_QEMU_S390_VERSION = (2, 3, 0)
MIN_LIBVIRT_OTHER_ARCH = {{
    fields.Architecture.S390X: MIN_LIBVIRT_KVM_S390_VERSION,
    fields.Architecture.PPC64LE: (1, 2, 9),
}}
"""


def test_per_arch_raise_only_hits_that_arch(repo):
    repo.commit({DRV: driver("(3, 0, 0)", "(4, 0, 0)", "(2, 8, 0)", "(2, 11, 0)",
                             extra=ARCH_EXTRA.format(s390="(1, 2, 13)")),
                 ".github/minbump.yml": CONFIG}, date="2019-01-10T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(3, 0, 0)", "(4, 0, 0)", "(2, 8, 0)", "(2, 11, 0)",
                             extra=ARCH_EXTRA.format(s390="(5, 0, 0)"))}, date="2019-02-01T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump", as_of=date(2019, 4, 10))
    keys = {(c["constant"], c["scope"]["arch"]) for c in r.changes}
    assert ("MIN_LIBVIRT_KVM_S390_VERSION", "s390x") in keys
    assert ("MIN_LIBVIRT_OTHER_ARCH", "s390x") in keys
    assert r.effective == [{"component": "libvirt", "scope": {"arch": "s390x", "hypervisor": None},
                            "old": "3.0.0", "new": "5.0.0"}]
    assert r.impacted, "a raise to 5.0.0 on s390x drops something"
    from bot.data.matrix import default_matrix

    m = default_matrix()
    for d in r.impacted:
        assert d["scope"]["arch"] == "s390x"
        assert m.get(d["platform"]).has_arch("s390x"), d["platform"]
    assert "ubuntu-18.04" not in {d["platform"] for d in r.impacted} or \
        m.get("ubuntu-18.04").has_arch("s390x")


def test_new_hypervisor_minimum(repo):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-05-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)", extra="MIN_LIBVIRT_PARALLELS_VERSION = (1, 2, 12)\n")},
                date="2016-06-01T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    ch = [c for c in r.changes if c["constant"] == "MIN_LIBVIRT_PARALLELS_VERSION"][0]
    assert ch["old"] is None and ch["new"] == "1.2.12" and ch["scope"]["hypervisor"] == "parallels"
    assert r.effective[0]["scope"] == {"arch": None, "hypervisor": "parallels"}
    assert r.effective[0]["old"] == "1.2.1"
    # No platform in the shipped data runs Parallels: not judged, nothing fails.
    assert r.impacted == [] and r.unknown == [] and r.deprecation == []
    assert "not judged: no platform in the data runs parallels" in r.summary
    assert "raises" not in r.summary and r.verdict == "pass"


def test_feature_only_bump_never_fails(repo):
    repo.commit({DRV: driver(extra="MIN_LIBVIRT_BLOCKJOB_RELATIVE_VERSION = (1, 2, 7)\n"),
                 ".github/minbump.yml": CONFIG}, date="2016-05-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver(extra="MIN_LIBVIRT_BLOCKJOB_RELATIVE_VERSION = (3, 0, 0)\n")},
                date="2016-06-01T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert [c["kind"] for c in r.changes] == ["feature"]
    assert r.verdict == "pass" and not r.impacted and not r.effective


def test_next_min_announcement(repo):
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)", "(2, 1, 0)", "(2, 1, 0)"),
                 ".github/minbump.yml": CONFIG}, date="2017-03-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 3, 1)", "(2, 1, 0)", "(2, 5, 0)")},
                date="2017-03-10T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.verdict == "pass" and not r.impacted
    libvirt = [n for n in r.next_drops if n["constant"] == "NEXT_MIN_LIBVIRT_VERSION"][0]
    assert libvirt["release"]["name"] == "Queens"  # Pike is the target; the marker bites one later
    plats = {d["platform"] for d in libvirt["impacted"] if d["still_supported"]}
    assert "debian-8" in plats  # jessie ships 1.2.9


def test_rename_connection_to_driver(repo):
    old_path = "nova/virt/libvirt/connection.py"
    repo.commit({old_path: driver("(0, 9, 6)", "(0, 9, 6)"), ".github/minbump.yml": CONFIG},
                date="2013-09-01T10:00:00+00:00")
    repo.branch("bump")
    repo.mv(old_path, DRV)
    repo.commit({DRV: driver("(0, 9, 11)", "(0, 9, 11)")}, date="2013-11-25T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    ch = [c for c in r.changes if c["constant"] == "MIN_LIBVIRT_VERSION"][0]
    assert ch["old"] == "0.9.6" and ch["new"] == "0.9.11"
    assert ch["file"] == DRV and ch["moved_from"] == old_path


def test_constant_moves_between_files(repo):
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)"), ".github/minbump.yml": CONFIG},
                date="2017-03-01T10:00:00+00:00")
    repo.branch("bump")
    moved = driver("(1, 2, 9)", "(1, 2, 9)").replace("\nMIN_QEMU_VERSION = (1, 5, 3)\n", "\n")
    repo.commit({DRV: moved, "nova/virt/libvirt/versions.py": "MIN_QEMU_VERSION = (1, 5, 3)\n"},
                date="2017-03-10T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.changes == [] and r.verdict == "neutral"
    assert any("moved from" in n for n in r.notes)


def test_int_encoded_versions(repo):
    cfg = "preset: openstack-nova\n"
    repo.commit({DRV: "MIN_LIBVIRT_VERSION = 9006\nNEXT_MIN_LIBVIRT_VERSION = 9006\n",
                 ".github/minbump.yml": cfg}, date="2013-09-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: "MIN_LIBVIRT_VERSION = 9011\nNEXT_MIN_LIBVIRT_VERSION = 9011\n"},
                date="2013-11-25T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    ch = [c for c in r.changes if c["constant"] == "MIN_LIBVIRT_VERSION"][0]
    assert (ch["old"], ch["new"]) == ("0.9.6", "0.9.11")


def test_obsolete_feature_minimums_listed(repo):
    extra = "MIN_LIBVIRT_VTPM = (5, 6, 0)\nMIN_LIBVIRT_VIOMMU = (8, 3, 0)\n"
    repo.commit({DRV: driver("(5, 0, 0)", "(6, 0, 0)", "(4, 0, 0)", "(4, 2, 0)", extra=extra),
                 ".github/minbump.yml": CONFIG}, date="2020-05-20T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(6, 0, 0)", "(7, 0, 0)", "(4, 2, 0)", "(5, 2, 0)", extra=extra)},
                date="2020-09-28T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    obs = {o["constant"] for o in r.obsolete_feature_minimums}
    assert obs == {"MIN_LIBVIRT_VTPM"}


def test_config_comes_from_base_not_head(repo):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")  # Newton's tag: its warning is known
    repo.branch("bump")
    loosened = CONFIG + "strictness:\n  unwarned_drop: pass\n"
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)"), ".github/minbump.yml": loosened},
                date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.verdict == "fail"
    assert any("base branch's version" in n for n in r.notes)


def test_extended_support_rule_and_as_of(repo, tmp_path):
    repo.commit({DRV: driver("(4, 0, 0)", "(5, 0, 0)", "(2, 11, 0)", "(4, 0, 0)"),
                 ".github/minbump.yml": CONFIG + "support: extended\n"}, date="2020-01-10T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(5, 0, 0)", "(6, 0, 0)", "(4, 0, 0)", "(4, 2, 0)")},
                date="2020-08-19T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump", as_of=date(2023, 1, 1))
    assert r.as_of == date(2023, 1, 1) and "extended support" in r.support_rule
    bionic = [d for d in r.impacted if d["platform"] == "ubuntu-18.04" and d["component"] == "libvirt"][0]
    assert bionic["still_supported"] is True  # ESM until 2028


def test_neutral_when_nothing_watched_changes(repo):
    repo.commit({DRV: driver(), ".github/minbump.yml": CONFIG}, date="2016-05-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({"nova/compute/manager.py": "x = 1\n"}, date="2016-06-01T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.verdict == "neutral" and not r.watched_changed and r.changes == []


def test_json_contract_keys(repo):
    ocata_bump(repo)
    d = json.loads(json.dumps(run_refs(repo.path, "main", "bump").to_dict()))
    for key in ("verdict", "base", "head", "as_of", "support_rule", "target_release", "changes", "effective",
                "impacted", "unknown", "deprecation", "obsolete_feature_minimums", "errors"):
        assert key in d
    assert len(d["base"]) == 40 and len(d["head"]) == 40
    assert set(d["changes"][0]) >= {"constant", "file", "line", "component", "kind", "scope", "old", "new"}
    assert set(d["effective"][0]) >= {"component", "scope", "old", "new"}
    assert set(d["impacted"][0]) >= {"platform", "distro", "release", "minor", "component", "scope", "shipped",
                                     "required", "eol", "still_supported", "mitigations", "via", "superseded_by"}
    assert set(d["deprecation"][0]) >= {"constant", "component", "scope", "old", "new", "warned",
                                        "previous_release", "next_constant", "next_value", "evidence"}


# ------------------------------------------------------------ bad input ---

def test_head_file_that_does_not_parse_outside_the_constants_is_judged(repo):
    """A syntax error away from the constants' statements is a note with its line; the raise is judged."""
    repo.commit({DRV: driver(), ".github/minbump.yml": CONFIG}, date="2016-05-01T10:00:00+00:00")
    repo.tag("13.0.0", date="2016-05-01T10:00:00+00:00")  # Mitaka: its NEXT_MIN is below the raise
    repo.branch("bump")
    broken = driver("(1, 2, 9)").replace("    def init_host(self, host):", "    def init_host(self, host)")
    repo.commit({DRV: broken}, date="2016-06-01T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.errors == [] and r.verdict == "fail"
    lineno = broken.splitlines().index("    def init_host(self, host)") + 1
    assert any(n.startswith(f"{DRV}:{lineno} does not parse") for n in r.notes), r.notes


def test_broken_constant_statement(repo):
    repo.commit({DRV: driver(), ".github/minbump.yml": CONFIG}, date="2016-05-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: "MIN_LIBVIRT_VERSION = (1, 2,\n"}, date="2016-06-01T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.verdict == "neutral" and r.errors[0]["line"] == 1


def test_binary_and_huge_watched_files(repo):
    repo.commit({DRV: driver(), ".github/minbump.yml": CONFIG}, date="2016-05-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({"nova/virt/libvirt/blob.py": b"\0\1\2" * 100,
                 "nova/virt/libvirt/huge.py": "x = 1\n" * 800_000}, date="2016-06-01T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    msgs = {e["file"]: e["message"] for e in r.errors}
    assert "binary" in msgs["nova/virt/libvirt/blob.py"]
    assert "limit" in msgs["nova/virt/libvirt/huge.py"]
    assert r.verdict == "neutral"


def test_unknown_ref(repo):
    repo.commit({DRV: driver(), ".github/minbump.yml": CONFIG})
    with pytest.raises(MinbumpError, match="unknown ref 'nope'"):
        run_refs(repo.path, "main", "nope")
    with pytest.raises(MinbumpError, match="not a valid ref"):
        run_refs(repo.path, "main", "--output=/tmp/x")


def test_not_a_repository(tmp_path):
    with pytest.raises(MinbumpError, match="not a git repository"):
        run_refs(tmp_path, "main", "main")


def test_no_config_at_base(repo):
    repo.commit({DRV: driver()})
    with pytest.raises(NotConfigured, match="--preset"):
        run_refs(repo.path, "main", "main")


def test_invalid_config_names_key_and_line(repo):
    repo.commit({DRV: driver(), ".github/minbump.yml": "preset: openstack-nova\nsupport: forever\n"})
    with pytest.raises(ConfigError) as exc:
        run_refs(repo.path, "main", "main")
    assert "support" in str(exc.value) and ":2" in str(exc.value)


def test_bare_repository_and_read_only(repo, tmp_path):
    ocata_bump(repo)
    bare = repo.bare(tmp_path / "bare.git")
    import subprocess

    def state():
        return subprocess.run(["find", str(bare), "-newer", str(bare / "HEAD"), "-print"],
                              capture_output=True, text=True).stdout
    before = sorted(p.name for p in bare.rglob("*"))
    r = run_refs(bare, "main", "bump")
    assert r.verdict == "fail"
    assert sorted(p.name for p in bare.rglob("*")) == before  # nothing written


def test_config_ref_reads_policy_from_another_commit(repo):
    """The bot diffs from the merge base but takes the config from the base branch's tip."""
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    fork_point = repo.head()
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")  # Newton's tag: its warning is known
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
    repo.checkout("main")
    repo.commit({".github/minbump.yml": CONFIG + "strictness: {unwarned_drop: warn}\n"},
                date="2016-11-21T10:00:00+00:00")
    assert run_refs(repo.path, fork_point, "bump").verdict == "fail"
    r = run_refs(repo.path, fork_point, "bump", config_ref="main")
    assert r.verdict == "warn" and r.config_origin.startswith(".github/minbump.yml@")


def test_constant_named_only_in_config_is_watched(repo):
    cfg = CONFIG + "constants:\n  LIBVIRT_FLOOR: {component: libvirt, kind: hard}\n"
    repo.commit({DRV: "LIBVIRT_FLOOR = (1, 2, 1)\n", ".github/minbump.yml": cfg}, date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")  # Newton's tag: its warning is known
    repo.branch("bump")
    repo.commit({DRV: "LIBVIRT_FLOOR = (1, 2, 9)\n"}, date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert [(c["constant"], c["old"], c["new"]) for c in r.changes] == [("LIBVIRT_FLOOR", "1.2.1", "1.2.9")]
    assert r.verdict == "fail"
