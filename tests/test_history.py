"""Replay OpenStack Nova's real minimum-version history through the analyzer.

policy/facts/openstack.yaml records Nova's MIN_* and NEXT_MIN_* per release.
Each release's tag carries that release's values; each raise is committed a
week after the previous release. Nova followed the one-cycle rule for
libvirt every time, so minbump must find the warning every time.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from bot.data.calendar import shipped
from bot.git.gather import run_refs
from bot.data.paths import policy_dir
from tests.support.nova import CONFIG, driver

DRV = "nova/virt/libvirt/driver.py"


def _tuple(v):
    return "(" + ", ".join(v.split(".")) + ")" if v else None


def _source(row):
    text = driver(_tuple(row["min_libvirt"]), _tuple(row["next_min_libvirt"]),
                  _tuple(row["min_qemu"]) or "(0, 0, 0)", _tuple(row["next_min_qemu"]) or "(0, 0, 0)")
    if not row["min_qemu"]:  # before Newton Nova had no QEMU minimum at all
        text = text.replace("\nMIN_QEMU_VERSION = (0, 0, 0)\n", "\n").replace("NEXT_MIN_QEMU_VERSION = (0, 0, 0)\n", "")
    return text


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    from tests.support.gitrepo import GitRepo

    facts = yaml.safe_load((policy_dir() / "facts" / "openstack.yaml").read_text())
    table = facts["nova_min_versions"]["table"]
    cal = {r.name.split(" ")[-1].lower(): r for r in shipped("openstack").releases}
    repo = GitRepo(tmp_path_factory.mktemp("nova-history"))
    rows = []
    for row in table:
        rel = cal[row["openstack"].split(" ")[-1].lower()]
        rows.append((row, rel))
    repo.commit({DRV: _source(rows[0][0]), ".github/minbump.yml": CONFIG},
                date=f"{rows[0][1].date - timedelta(days=30)}T10:00:00+00:00")
    repo.tag(rows[0][1].tag, date=f"{rows[0][1].date}T10:00:00+00:00")
    cases = []
    for (prev, prel), (row, rel) in zip(rows, rows[1:]):
        day = prel.date + timedelta(days=7)
        if row["min_libvirt"] != prev["min_libvirt"]:
            branch = f"bump-{rel.tag}"
            repo.branch(branch, prel.tag)
            repo.commit({DRV: _source({**prev, "min_libvirt": row["min_libvirt"]})},
                        date=f"{day}T10:00:00+00:00")
            cases.append((prel.tag, branch, rel, prev, row))
        repo.checkout("main")
        repo.commit({DRV: _source(row)}, date=f"{day + timedelta(days=1)}T10:00:00+00:00")
        repo.tag(rel.tag, date=f"{rel.date}T10:00:00+00:00")
    return repo, cases


def test_every_libvirt_raise_in_nova_history_was_warned(history):
    repo, cases = history
    assert len(cases) >= 9
    seen = []
    for base, head, rel, prev, row in cases:
        r = run_refs(repo.path, base, head)
        assert r.target_release["tag"] == rel.tag
        dep = [d for d in r.deprecation if d["component"] == "libvirt"][0]
        assert dep["warned"], (rel.name, dep["evidence"])
        assert r.verdict != "fail", (rel.name, r.summary)
        seen.append((rel.name, prev["min_libvirt"], row["min_libvirt"], r.verdict,
                     sorted({d["platform"] for d in r.impacted if d["still_supported"]})))
    # Pike (1.2.1 -> 1.2.9) dropped Ubuntu 14.04 while Canonical still supported it: a warned drop.
    pike = [s for s in seen if s[0] == "Pike"][0]
    assert "ubuntu-14.04" in pike[4] and pike[3] == "warn"
