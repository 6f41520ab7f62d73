"""policy/ against the team's sourced reference: every release, date, version, add-on and conflict carried over.

The reference lives outside the repository. Point MINBUMP_REFERENCE at its
distro-matrix.yaml, or keep the usual layout (a `shared/reference/` folder
next to the checkout); without it the reference checks are skipped, never passed.

A value may differ from the reference only when the platform says why: a
`conflicts` entry or a `sources` entry naming that key (what importers add).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

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
