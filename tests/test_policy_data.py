"""policy/ against the team's sourced reference: every release, date, version, add-on and conflict carried over.

The reference lives outside the repository. Point MINBUMP_REFERENCE at its
distro-matrix.yaml, or keep the usual layout (a `shared/reference/` folder
next to the checkout); without it the reference checks are skipped, never passed.

A value may differ from the reference only when the platform says why: a
`conflicts` entry or a `sources` entry naming that key (what importers add).

The second half checks the data brought to 2026-12-04 through what a
maintainer sees: `matrix what-if` at the 2027.1 release, per-minor support
ends, and `matrix audit` (what the data does not know yet).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from bot.cli import matrix as cli_matrix
from bot.core import matrix_query
from bot.core.data_audit import MISSING, UNKNOWN, KnownRelease, audit
from bot.core.matrix import from_raw
from bot.data.matrix import default_matrix

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policy"
COMPONENTS = ("libvirt", "qemu")


def _load(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _reference_path() -> Path | None:
    env = os.environ.get("MINBUMP_REFERENCE")
    if env:
        return Path(env)
    guess = ROOT.parent / "shared" / "reference" / "distro-matrix.yaml"
    return guess if guess.is_file() else None


@pytest.fixture(scope="module")
def ref() -> dict:
    path = _reference_path()
    if path is None or not path.is_file():
        pytest.skip("reference distro-matrix.yaml not found (set MINBUMP_REFERENCE)")
    return _load(path)


@pytest.fixture(scope="module")
def matrix() -> dict:
    return _load(POLICY / "matrix.yaml")


@pytest.fixture(scope="module")
def facts() -> dict:
    return _load(POLICY / "facts" / "openstack.yaml")


def _explained(p: dict, key: str) -> bool:
    """A differing fact must be recorded: in conflicts, or as a source naming the key."""
    for line in p.get("conflicts") or ():
        if line.startswith(f"{key}:"):
            return True
    for line in p.get("sources") or ():
        head = line.split(":", 1)[0]
        if key in [k.strip() for k in head.split(",")]:
            return True
    return False


def _same(p: dict, key: str, ours, theirs, problems: list[str]) -> None:
    if ours != theirs and not _explained(p, key):
        problems.append(f"{p['id']}: {key}: matrix has {ours!r}, reference has {theirs!r}")


def test_every_reference_release_is_in_the_matrix(ref, matrix):
    ref_ids = [r["id"] for r in ref["releases"]]
    ours = {p["id"] for p in matrix["platforms"]}
    assert len(ref_ids) == 110
    assert [i for i in ref_ids if i not in ours] == []


def test_top_level_reference_data_kept(ref, matrix):
    for key in ("confidence_levels", "support_terms", "source_refs"):
        assert matrix[key] == ref[key], key
    assert matrix["data_as_of"] >= ref["data_as_of"]


def test_release_facts_match_the_reference(ref, matrix):
    by_id = {p["id"]: p for p in matrix["platforms"]}
    problems: list[str] = []
    for r in ref["releases"]:
        p = by_id[r["id"]]
        for ours, theirs in (("distro", "distro"), ("release", "release"), ("codename", "codename"),
                             ("released", "release_date"), ("eol", "eol"),
                             ("full_support_end", "end_of_full_support"), ("rebuild_of", "rebuild_of")):
            _same(p, ours, p.get(ours), r.get(theirs), problems)
        _same(p, "lts", bool(p.get("lts")), bool(r.get("lts")), problems)
        ext, rext = p.get("extended"), r.get("extended_support")
        _same(p, "extended.end", (ext or {}).get("end"), (rext or {}).get("end"), problems)
        _same(p, "extended.name", (ext or {}).get("name"), (rext or {}).get("name"), problems)
        _same(p, "extended.notes", (ext or {}).get("notes"), (rext or {}).get("notes"), problems)
        _same(p, "third_party_extended", p.get("third_party_extended"), r.get("third_party_extended"), problems)
        _same(p, "arches", p.get("arches"), r.get("arches"), problems)
        _same(p, "other_arches", p.get("other_arches"), r.get("other_arches"), problems)
        _same(p, "confidence.dates", p["confidence"]["dates"], r["dates_confidence"], problems)
        _same(p, "confidence.arches", p["confidence"]["arches"], r["arches_confidence"], problems)
        _same(p, "notes", p.get("notes"), r.get("notes"), problems)
        for c in COMPONENTS:
            cell, rc = p["ships"][c], r["packages"][c]
            key = f"ships.{c}"
            _same(p, key, cell["version"], rc.get("latest") or rc.get("ga"), problems)
            ga = rc.get("ga") if rc.get("latest") and rc.get("latest") != rc.get("ga") else None
            if ga is not None:
                _same(p, key, cell.get("ga"), ga, problems)
            _same(p, key, cell.get("package"), rc.get("pkg"), problems)
            _same(p, key, cell["confidence"], rc["confidence"], problems)
            _same(p, key, cell.get("notes"), rc.get("notes"), problems)
        # conflicts and sources are only ever appended to
        assert (p.get("conflicts") or [])[: len(r.get("conflicts") or [])] == (r.get("conflicts") or []), p["id"]
        assert p["sources"][: len(r["sources"])] == r["sources"], p["id"]
    assert problems == []


def test_minor_releases_and_snapshots_match(ref, matrix):
    by_id = {p["id"]: p for p in matrix["platforms"]}
    for r in ref["releases"]:
        p = by_id[r["id"]]
        rminors = r.get("minor_releases") or []
        minors = p.get("minors") or []
        assert len(minors) == len(rminors), p["id"]
        for m, rm in zip(minors, rminors):
            assert m["minor"] == rm["minor"]
            assert m.get("released") == rm.get("ga"), (p["id"], m["minor"])
            assert m.get("stream") == rm.get("stream")
            assert m["confidence"] == rm["confidence"]
            for c in COMPONENTS:
                assert m["ships"][c]["version"] == rm.get(c), (p["id"], m["minor"], c)
            rhev = [a for a in m.get("addons") or () if a["kind"] == "rhel-layered-product"]
            if rm.get("qemu_rhev"):
                assert rhev and rhev[0]["ships"]["qemu"] == rm["qemu_rhev"]
                assert rhev[0]["confidence"] == rm.get("qemu_rhev_confidence", rm["confidence"])
            else:
                assert not rhev
        rsnaps = r.get("snapshots") or []
        snaps = p.get("snapshots") or []
        assert len(snaps) == len(rsnaps), p["id"]
        for s, rs in zip(snaps, rsnaps):
            assert s["as_of"] == rs.get("as_of") and s["source"] == rs["source"]
            assert s.get("approx") == rs.get("approx")
            for c in COMPONENTS:
                assert s["ships"].get(c) == rs.get(c)


def test_addon_repositories_match(ref, matrix):
    by_id = {p["id"]: p for p in matrix["platforms"]}
    total = 0
    for r in ref["releases"]:
        p = by_id[r["id"]]
        ours = {a["name"]: a for a in p.get("addons") or ()}
        for ra in r.get("addon_repos") or ():
            total += 1
            a = ours.get(ra["name"])
            assert a is not None, (p["id"], ra["name"])
            for key in ("kind", "enable", "derived_from", "confidence", "notes"):
                assert a.get(key) == ra.get(key) or _explained(p, f"addons.{ra['name']}"), (p["id"], ra["name"], key)
            for c in COMPONENTS:
                if ra.get(c) is None:
                    assert c not in a["ships"] or _explained(p, f"addons.backports.{c}"), (p["id"], ra["name"], c)
                else:
                    assert a["ships"].get(c) == ra[c] or _explained(p, f"addons.backports.{c}"), (p["id"], c)
    assert total == 44


def test_project_facts_carried_over(ref, facts):
    assert facts["nova_min_versions"] == ref["nova_min_versions"]
    assert facts["libvirt_ci_target_changes"] == ref["libvirt_ci_target_changes"]
    runtimes = {str(k): v for k, v in ref["openstack_tested_runtimes"].items()}
    assert facts["openstack_tested_runtimes"]["releases"] == runtimes
    for key in ("NOVA_MATRIX", "GOV", "LCI"):
        assert facts["source_refs"][key] == ref["source_refs"][key]


def test_facts_name_their_sources(facts):
    assert facts["nova_min_versions"]["source"].startswith("NOVA_MATRIX")
    assert facts["openstack_tested_runtimes"]["source"].startswith("GOV")
    assert facts["libvirt_ci_target_changes"]["source"].startswith("LCI")


def test_matrix_is_self_consistent(matrix):
    ids = [p["id"] for p in matrix["platforms"]]
    assert len(ids) == len(set(ids)), "duplicate platform ids"
    known = set(ids)
    for p in matrix["platforms"]:
        assert p["sources"], p["id"]
        if p.get("rebuild_of"):
            assert p["rebuild_of"] in known, p["id"]
        for a in p.get("addons") or ():
            if a.get("derived_from"):
                assert a["derived_from"] in known, (p["id"], a["name"])
        if p.get("released") and p.get("eol"):
            assert p["released"] < p["eol"], p["id"]


# ------------------------------------------- the data as of 2026-12-04 ---
# What a maintainer asks first: "what does raising the minimum drop at the 2027.1 release (2027-03-24)?"

RELEASE_2027_1 = "2027-03-24"
DATA_DAY = date(2026, 12, 4)


def _run(*args: str):
    group = click.Group()
    cli_matrix.register(group)
    return CliRunner().invoke(group, list(args))


def _sections(table: str) -> dict[str, list[str]]:
    """The what-if table's sections -> the platform labels listed in each."""
    out: dict[str, list[str]] = {}
    current = None
    for line in table.splitlines():
        head = re.match(r"^(\S.*?) \((\d+)\):$", line)
        if head:
            current = head.group(1)
            out[current] = []
        elif current and line.startswith("  ") and not line.strip().startswith(("platform", "---", "(none)")):
            out[current].append(re.split(r"  +", line.strip())[0])
        elif not line.strip():
            continue
    return out


@pytest.mark.parametrize("component, version, ships", [("libvirt", "10.0.0", "8.0.0"), ("qemu", "8.2.2", "6.2")])
def test_what_if_at_2027_1_names_jammy_with_caracal_and_the_rhel_8_family(component, version, ships):
    res = _run("matrix", "what-if", component, version, "--as-of", RELEASE_2027_1)
    assert res.exit_code == 0, res.output
    sections = _sections(res.stdout)
    assert sections["Still supported"] == ["Ubuntu 22.04 (jammy)", "RHEL 8", "AlmaLinux 8", "Rocky Linux 8"]
    jammy = next(x for x in res.stdout.splitlines() if x.strip().startswith("Ubuntu 22.04 (jammy)"))
    assert ships in jammy and f"mitigation: UCA caracal ({version})" in jammy
    rhel8 = next(x for x in res.stdout.splitlines() if x.strip().startswith("RHEL 8 "))
    assert "no mitigation known" in rhel8
    # superseded 9.x minors are listed as ended, with the day their minor ended
    gone = sections["No longer supported"]
    assert "RHEL 9.0" in gone and "AlmaLinux 9.3" in gone and "Rocky Linux 9.0" in gone
    assert re.search(r"RHEL 9\.0 +\S+ +minor ended 2022-11-30", res.stdout)
    # releases whose version the data does not know are in a section of their own, never among the dropped
    unknown = sections.get("Version not known (run `minbump matrix audit`)", [])
    assert not set(unknown) & (set(sections["Still supported"]) | set(gone))
    assert all("unknown" in x for x in res.stdout.split("Version not known", 1)[-1].splitlines()[3:] if x.strip()
               and not x.startswith("legend"))


def test_what_if_json_keeps_the_analysis_answer_and_the_table_judges_minors():
    m = default_matrix()
    data = matrix_query.what_if(m, "libvirt", "10.0.0", date(2027, 3, 24), "standard", None, None)
    groups = matrix_query.what_if_groups(m, data["impacted"], date(2027, 3, 24), "standard")
    assert len(groups["live"]) + len(groups["gone"]) + len(groups["unknown"]) == len(data["impacted"])
    rhel90 = next(i for i in groups["gone"] if i["platform"] == "rhel-9" and i["minor"] == "9.0")
    assert rhel90["superseded"] and rhel90["support_end"] == "2022-11-30"
    # the input is not modified: the JSON answer stays the analysis's (which judges minors the same way)
    json90 = next(i for i in data["impacted"] if i["platform"] == "rhel-9" and i["minor"] == "9.0")
    assert json90["still_supported"] is False and json90["superseded_by"] == "RHEL 9.1" and "superseded" not in json90
    # under the extended rule 9.2's E4S (to 2027-05-31) keeps it supported; 9.0's ended 2026-05-31
    ext = matrix_query.what_if(m, "libvirt", "10.0.0", date(2027, 3, 24), "extended", None, None)
    egroups = matrix_query.what_if_groups(m, ext["impacted"], date(2027, 3, 24), "extended")
    live = {(i["platform"], i["minor"]): i for i in egroups["live"]}
    assert ("rhel-9", "9.2") in live and ("rhel-9", "9.0") not in live and ("almalinux-9", "9.2") not in live
    assert live[("rhel-9", "9.2")]["support_end"] == "2027-05-31"  # its E4S, not RHEL 9's ELS


@pytest.mark.parametrize("pid, minor, day, rule, want", [
    ("rhel-9", "9.0", "2027-03-24", "standard", False),
    ("rhel-9", "9.0", "2026-05-30", "extended", True),     # E4S to 2026-05-31
    ("rhel-9", "9.0", "2026-05-31", "extended", False),
    ("rhel-9", "9.6", "2027-03-24", "extended", True),     # EUS/E4S
    ("rhel-9", "9.6", "2027-03-24", "standard", False),
    ("rhel-9", "9.8", "2027-03-24", "standard", True),     # the newest minor lasts while RHEL 9 does
    ("rhel-9", "9.4", "2024-07-01", "standard", True),     # 9.4 until 2024-10-31 (9.5 shipped 2024-11-12)
    ("rhel-8", "8.10", "2028-01-01", "standard", True),
    ("rhel-8", "8.8", "2028-01-01", "extended", False),    # E4S ended 2027-05-31
    ("almalinux-9", "9.2", "2027-03-24", "extended", False),  # rebuilds: no EUS
    ("almalinux-9", "9.3", "2024-04-29", "standard", True),   # until 9.4 shipped
    ("almalinux-9", "9.3", "2024-04-30", "standard", False),
    ("rocky-9", "9.8", "2027-03-24", "standard", True),
    ("rhel-9", "9.8", "2032-06-01", "standard", False),    # the major itself ended
])
def test_minor_supported(pid, minor, day, rule, want):
    m = default_matrix()
    p = m.get(pid)
    mi = next(x for x in m.minors_of(p) if x.minor == minor)
    assert m.minor_supported(p, mi, date.fromisoformat(day), rule) is want


def test_rhel_8_and_9_minors_record_when_they_end(matrix):
    by_id = {p["id"]: p for p in matrix["platforms"]}
    for pid in ("rhel-8", "rhel-9"):
        minors = by_id[pid]["minors"]
        for m in minors[:-1]:
            assert m.get("support_end") or m["minor"] == "9.8", (pid, m["minor"])
        assert not minors[-1].get("support_end"), "the newest minor lasts as long as its release"
        for m in minors:
            if m.get("extended"):
                assert m["extended"]["name"] in ("EUS", "E4S") and m["extended"]["end"] > m.get("released", date.min)
        assert any(s.startswith("minors.support_end, minors.extended: ") for s in by_id[pid]["sources"])


def test_no_supported_release_has_an_unknown_cell_the_readme_does_not_list():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = readme.split("Data that stays unknown on 2026-12-04", 1)[1].split("\n\n", 2)[1]
    allowed = {(pid, comp.strip()) for pid, comps in re.findall(r"\(`([a-z0-9.-]+)`\): ([a-z, ]+)", listed)
               for comp in comps.split(",")}
    unknown = {(f.platform, f.component) for f in audit(default_matrix(), DATA_DAY) if f.kind == UNKNOWN}
    assert unknown == allowed, "README's list of data that stays unknown is out of date"


def test_new_facts_carry_sources_and_the_nova_disagreements_are_kept(matrix):
    by_id = {p["id"]: p for p in matrix["platforms"]}
    assert matrix["data_as_of"] == DATA_DAY
    for pid in ("fedora-45", "ubuntu-26.10"):
        heads = {s.split(":", 1)[0] for s in by_id[pid]["sources"]}
        assert {"released", "eol", "ships.libvirt", "ships.qemu"} <= heads, pid
    assert by_id["fedora-44"]["ships"]["libvirt"]["version"] == "12.0.0"
    assert by_id["ubuntu-25.10"]["ships"]["libvirt"]["confidence"] == "high"
    bpo = next(a for a in by_id["debian-12"]["addons"] if a["name"] == "bookworm-backports")
    assert bpo["ships"]["libvirt"] == "11.3.0"
    assert any(c.startswith("eol:") and "2026-06-10" in c and "Chosen: 2026-07-11" in c
               for c in by_id["debian-12"]["conflicts"])
    # release-day values next to the later updates
    sles_qemu = by_id["sles-15.0"]["ships"]["qemu"]
    assert sles_qemu["ga"] == "2.11.1" and sles_qemu["version"] == "2.11.2"
    assert by_id["opensuse-15.2"]["ships"]["qemu"]["ga"] == "4.2.0"
    for pid, word in (("debian-13", "NOVA_MATRIX"), ("opensuse-15.3", "NOVA_MATRIX"), ("rhel-7", "NOVA_MATRIX"),
                      ("rhel-8", "NOVA_MATRIX")):
        assert any(word in c for c in by_id[pid].get("conflicts") or ()), pid


def test_hypervisors_where_the_sources_say():
    m = default_matrix()
    assert not m.get("rhel-9").runs_hypervisor("lxc") and not m.get("rocky-10").runs_hypervisor("xen")
    assert m.get("ubuntu-24.04").runs_hypervisor("lxc") and m.get("debian-13").runs_hypervisor("xen")
    assert not m.get("ubuntu-24.04").runs_hypervisor("parallels")
    assert m.get("sles-15.6").runs_hypervisor("xen")  # not recorded: every driver


# ----------------------------------------------------------------- audit ---

def test_audit_lists_unknown_and_low_confidence_cells_of_supported_releases():
    raw = {"data_as_of": "2026-12-04", "platforms": [
        {"id": "x-1", "distro": "x", "release": "1", "released": "2020-01-01", "eol": "2030-01-01",
         "ships": {"libvirt": {"version": None, "confidence": "low"},
                   "qemu": {"version": "8.2.0", "confidence": "low"}}},
        {"id": "x-2", "distro": "x", "release": "2", "released": "2020-01-01", "eol": "2025-01-01",
         "ships": {"libvirt": {"version": None, "confidence": "low"}}},          # ended: not listed
        {"id": "x-3", "distro": "x", "release": "3", "released": "2027-01-01", "eol": "2032-01-01",
         "ships": {"libvirt": {"version": None, "confidence": "low"}}},          # not released yet
        {"id": "x-4", "distro": "x", "release": "4", "released": "2020-01-01", "eol": "2030-01-01",
         "ships": {"libvirt": {"version": "1.0.0", "confidence": "low"}},
         "minors": [{"minor": "4.0", "released": "2020-01-01", "support_end": "2020-06-01",
                     "ships": {"libvirt": {"version": None, "confidence": "low"}}, "confidence": "low"},
                    {"minor": "4.1", "released": "2020-06-01",
                     "ships": {"libvirt": {"version": "9.0.0", "confidence": "high"}}, "confidence": "high"}]},
    ]}
    m = from_raw(raw, "test")
    found = [(f.kind, f.platform, f.component, f.minor) for f in audit(m, DATA_DAY)]
    assert found == [("unknown", "x-1", "libvirt", None), ("low-confidence", "x-1", "qemu", None)]
    known = [KnownRelease("endoflife.date x", "5", ("x-5", "x-5.0"), date(2026, 10, 1), date(2027, 7, 1)),
             KnownRelease("endoflife.date x", "1", ("x-1",)),
             KnownRelease("repology", "x-5", ("x-5",))]
    missing = [f for f in audit(m, DATA_DAY, known=known) if f.kind == MISSING]
    assert [(f.platform, f.support_end) for f in missing] == [("x-5", date(2027, 7, 1))]
    assert "released 2026-10-01, support ends 2027-07-01" in missing[0].detail


def test_audit_command_exits_0_with_findings_and_reads_importer_answers():
    fix = ROOT / "fixtures"
    res = _run("matrix", "audit", "--as-of", "2026-12-04", "--format", "json",
               "--endoflife", str(fix / "endoflife" / "ubuntu.json"),
               "--endoflife", f"rhel={fix / 'endoflife' / 'rhel-v1.json'}",
               "--repology", str(fix / "repology" / "libvirt.json"))
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["as_of"] == "2026-12-04" and data["data_as_of"] == "2026-12-04"
    kinds = {(f["kind"], f["platform"]) for f in data["findings"]}
    assert ("unknown", "sles-16.0") in kinds and ("missing-release", "centos-stream-11") in kinds
    table = _run("matrix", "audit", "--as-of", "2026-12-04").stdout
    assert "Supported releases with a version the data does not know" in table and "SLES 15 SP7" in table


@pytest.mark.parametrize("args, msg", [
    (["--endoflife", "no-such-product.json"], "cannot tell the endoflife.date product"),
    (["--endoflife", "ubuntu=/nonexistent/ubuntu.json"], "cannot read"),
    (["--as-of", "2026-13-01"], "is not a date"),
])
def test_audit_bad_input_is_one_line_exit_2(args, msg):
    out = subprocess.run([sys.executable, "-m", "bot.cli", "matrix", "audit", *args],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2, out
    assert msg in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
