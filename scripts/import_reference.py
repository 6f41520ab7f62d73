#!/usr/bin/env python3
"""Turn the team's sourced reference table into minbump's own matrix data.

Run once per reference update:
    python scripts/import_reference.py PATH/TO/distro-matrix.yaml > policy/matrix.yaml

Every fact keeps its `sources` and `confidence`; the reference's layout is
normalised so that components are generic (`ships: {libvirt: ..., qemu: ...}`).
"""

from __future__ import annotations

import sys
from datetime import date

import yaml

COMPONENTS = ("libvirt", "qemu")


def _pkg(cell: dict | None) -> dict:
    cell = cell or {}
    out: dict = {"version": cell.get("latest") or cell.get("ga")}
    if cell.get("ga") is not None and cell.get("latest") and cell["latest"] != cell["ga"]:
        out["ga"] = cell["ga"]
    if cell.get("pkg"):
        out["package"] = cell["pkg"]
    out["confidence"] = cell.get("confidence", "low")
    return out


def _minor(m: dict) -> dict:
    out: dict = {"minor": m["minor"]}
    if m.get("ga"):
        out["released"] = m["ga"]
    if m.get("stream"):
        out["stream"] = m["stream"]
    conf = m.get("confidence", "low")
    out["ships"] = {c: {"version": m.get(c), "confidence": conf} for c in COMPONENTS if c in m}
    if m.get("qemu_rhev"):
        out["addons"] = [{
            "name": "qemu-kvm-rhev (RHV / RHOSP channels)", "kind": "rhel-layered-product",
            "ships": {"qemu": m["qemu_rhev"]},
            "confidence": m.get("qemu_rhev_confidence", conf),
        }]
    out["confidence"] = conf
    return out


def _addon(a: dict) -> dict:
    out: dict = {"name": a["name"], "kind": a["kind"]}
    if a.get("enable"):
        out["enable"] = a["enable"]
    out["ships"] = {c: a[c] for c in COMPONENTS if a.get(c)}
    for key in ("derived_from", "confidence", "notes"):
        if a.get(key):
            out[key] = a[key]
    return out


def _snapshot(s: dict) -> dict:
    out: dict = {"as_of": s.get("as_of")}
    if s.get("approx"):
        out["approx"] = s["approx"]
    out["ships"] = {c: s[c] for c in COMPONENTS if s.get(c)}
    out["source"] = s["source"]
    out["confidence"] = s.get("confidence", "high" if s.get("as_of") else "medium")
    return out


def convert_release(r: dict) -> dict:
    p: dict = {"id": r["id"], "distro": r["distro"], "release": r["release"],
               "codename": r.get("codename")}
    if r.get("lts"):
        p["lts"] = True
    if r.get("rebuild_of"):
        p["rebuild_of"] = r["rebuild_of"]
    p["released"] = r.get("release_date")
    if r.get("end_of_full_support"):
        p["full_support_end"] = r["end_of_full_support"]
    p["eol"] = r.get("eol")
    p["extended"] = r.get("extended_support")
    if r.get("third_party_extended"):
        p["third_party_extended"] = r["third_party_extended"]
    p["arches"] = r.get("arches", [])
    if r.get("other_arches"):
        p["other_arches"] = r["other_arches"]
    p["ships"] = {c: _pkg((r.get("packages") or {}).get(c)) for c in COMPONENTS}
    if r.get("minor_releases"):
        p["minors"] = [_minor(m) for m in r["minor_releases"]]
    if r.get("snapshots"):
        p["snapshots"] = [_snapshot(s) for s in r["snapshots"]]
    if r.get("addon_repos"):
        p["addons"] = [_addon(a) for a in r["addon_repos"]]
    p["confidence"] = {"dates": r.get("dates_confidence", "low"),
                       "arches": r.get("arches_confidence", "low")}
    if r.get("conflicts"):
        p["conflicts"] = r["conflicts"]
    if r.get("notes"):
        p["notes"] = r["notes"]
    p["sources"] = r.get("sources", [])
    return p


def convert(ref: dict) -> dict:
    return {
        "schema_version": 1,
        "data_as_of": ref["data_as_of"],
        "components": list(COMPONENTS),
        "confidence_levels": ref["confidence_levels"],
        "support_terms": ref["support_terms"],
        "source_refs": ref["source_refs"],
        "platforms": [convert_release(r) for r in ref["releases"]],
    }


class _Dumper(yaml.SafeDumper):
    """Leaf mappings and short scalar lists on one line, so a row reads like a table row."""


def _repr_dict(dumper: yaml.SafeDumper, data: dict):
    leaf = all(not isinstance(v, (dict, list)) or (isinstance(v, dict) and all(
        not isinstance(x, (dict, list)) for x in v.values())) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(),
                                    flow_style=leaf and len(data) <= 8 and "id" not in data)


def _repr_list(dumper: yaml.SafeDumper, data: list):
    flat = all(not isinstance(v, (dict, list)) for v in data) and all(
        not isinstance(v, str) or len(v) < 20 for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(dict, _repr_dict)
_Dumper.add_representer(list, _repr_list)


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as fh:
        ref = yaml.safe_load(fh)
    out = convert(ref)
    sys.stdout.write(
        "# minbump support matrix: which libvirt / QEMU each distribution release ships,\n"
        "# its support dates and add-on repositories. Generated from the team's sourced\n"
        "# reference table by scripts/import_reference.py, then maintained here; every\n"
        "# fact keeps its `sources` and `confidence`. Schema: policy/schema/matrix.schema.json\n"
    )
    yaml.dump(out, sys.stdout, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
