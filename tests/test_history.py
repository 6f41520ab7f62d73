"""Replay OpenStack Nova's real minimum-version history through the analyzer.

policy/facts/openstack.yaml records Nova's MIN_* and NEXT_MIN_* per release.
Each release's tag carries that release's values; each raise is committed a
week after the previous release. Nova followed the one-cycle rule for
libvirt every time, so minbump must find the warning every time. The second
replay cuts each release on a stable branch three weeks early, as OpenStack
does, and lands each raise on master after the cut: the target release must
come from git, not from the commit's date.
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


# OpenStack cuts RC1 and the stable/<series> branch at week R-3 of each cycle (openstack/releases schedules)
RC1_WEEKS = 3


@pytest.fixture(scope="module")
def history_with_branches(tmp_path_factory):
    """Nova's history as it was cut: RC1 and stable/<series> three weeks before each release, the final
    tag on the stable branch, and each libvirt raise landing on master a week before the release,
    after the cut (as Nova b980df0 did on 2017-02-11 and 95724bb on 2020-09-28)."""
    from tests.support.gitrepo import GitRepo

    facts = yaml.safe_load((policy_dir() / "facts" / "openstack.yaml").read_text())
    cal = {r.name.split(" ")[-1].lower(): r for r in shipped("openstack").releases}
    rows = [(row, cal[row["openstack"].split(" ")[-1].lower()]) for row in facts["nova_min_versions"]["table"]]
    repo = GitRepo(tmp_path_factory.mktemp("nova-branches"))
    repo.commit({DRV: _source(rows[0][0]), ".github/minbump.yml": CONFIG},
                date=f"{rows[0][1].date - timedelta(days=60)}T10:00:00+00:00")
    cases = []
    for (row, rel), (nxt, nrel) in zip(rows, rows[1:] + [(None, None)]):
        cut = rel.date - timedelta(weeks=RC1_WEEKS)
        repo.commit({"README.rst": f"{rel.name} RC1\n"}, date=f"{cut}T10:00:00+00:00")
        repo.tag(f"{rel.tag}.0rc1" if rel.tag.count(".") > 1 else f"{rel.tag}.rc1", date=f"{cut}T11:00:00+00:00")
        repo.branch(f"stable/{rel.tag}")
        repo.commit({"RELEASENOTES": f"{rel.name}\n"}, date=f"{rel.date - timedelta(days=1)}T10:00:00+00:00")
        repo.tag(rel.tag, date=f"{rel.date}T10:00:00+00:00")
        repo.checkout("main")
        if nxt is None:
            break
        day = rel.date - timedelta(days=7)
        if nxt["min_libvirt"] != row["min_libvirt"]:
            base = repo.head()
            repo.branch(f"bump-{nrel.tag}")
            repo.commit({DRV: _source({**row, "min_libvirt": nxt["min_libvirt"]})}, date=f"{day}T10:00:00+00:00")
            cases.append((base, f"bump-{nrel.tag}", rel, nrel, rows, row, nxt))
            repo.checkout("main")
        repo.commit({DRV: _source(nxt)}, date=f"{day}T12:00:00+00:00")
    return repo, cases


def test_raises_after_the_rc1_cut_ship_in_the_next_release(history_with_branches):
    """Judged by the calendar date, each of these raises would be compared with the release before the
    one that was being cut, whose NEXT_MIN was lower, and fail; from git, each ships in the following
    release and the release being cut carried the warning."""
    repo, cases = history_with_branches
    assert len(cases) >= 9
    misjudged = []
    for base, head, cut, ships, rows, _row, nxt in cases:
        r = run_refs(repo.path, base, head)
        assert (r.target_release["tag"], r.target_release["how"]) == (ships.tag, "topology"), ships.name
        assert r.previous_release["tag"] == cut.tag
        dep = [d for d in r.deprecation if d["component"] == "libvirt"][0]
        assert dep["warned"] is True, (ships.name, dep["evidence"])
        assert r.verdict != "fail", (ships.name, r.summary)
        # What the date rule said: the release being cut is the target, the one before it had to warn.
        old = run_refs(repo.path, base, head, target_release=cut.tag)
        before = [p for p, rel in rows if rel.tag == old.previous_release["tag"]]
        old_dep = [d for d in old.deprecation if d["component"] == "libvirt"][0]
        expect = bool(before) and tuple(map(int, before[0]["next_min_libvirt"].split("."))) >= \
            tuple(map(int, nxt["min_libvirt"].split(".")))
        assert old_dep["warned"] is expect, ships.name
        if not old_dep["warned"]:
            misjudged.append(ships.name)
    # The raises Nova really landed after an RC1 cut (5a359a3 2015-10-07, b980df0 2017-02-11,
    # 95724bb 2020-09-28) are among those the date rule failed although they were warned.
    assert {"Mitaka", "Pike", "Wallaby"} <= set(misjudged), misjudged
