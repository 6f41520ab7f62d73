"""Which release a change ships in, from git; a missing tag is unknown; dry-run diffs from the merge base.

Every case is a real git repository with dated commits, branches and tags,
shaped like Nova's: release candidates on stable branches cut weeks before
the release, milestones on master, shallow tag-less clones as CI makes them.
"""

from __future__ import annotations

import json
import subprocess
from datetime import date

import pytest

from bot.cli import main
from bot.core.calendar import Calendar, Release, release_tags, tag_kind
from bot.git.gather import run_refs
from tests.support.gitrepo import GitRepo
from tests.support.nova import CONFIG, driver

DRV = "nova/virt/libvirt/driver.py"


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture(scope="module")
def nova(tmp_path_factory):
    """Newton and Ocata as Nova cut them: each release's tags on its stable branch, the bump on master.

    Ocata's branch is cut on 2017-02-01 and its RC1 tagged there; on
    2017-02-11 master raises MIN_LIBVIRT_VERSION to 1.2.9 (Nova b980df0).
    That change ships in Pike, and Ocata (15.0.0, released 2017-02-22)
    carried NEXT_MIN_LIBVIRT_VERSION = 1.2.9 with its warning.
    """
    repo = GitRepo(tmp_path_factory.mktemp("nova-ocata") / "repo")
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.branch("stable/newton")
    repo.commit({"RELEASENOTES": "newton\n"}, date="2016-09-20T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    repo.checkout("main")
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 9)")}, date="2016-09-27T10:00:00+00:00")  # NEXT_MIN 1.2.9
    repo.commit({"README.rst": "ocata\n"}, date="2017-02-01T10:00:00+00:00")
    repo.branch("stable/ocata")
    repo.commit({"RELEASENOTES": "ocata rc1\n"}, date="2017-02-02T10:00:00+00:00")
    repo.tag("15.0.0.0rc1", date="2017-02-02T12:00:00+00:00")
    repo.commit({"RELEASENOTES": "ocata\n"}, date="2017-02-15T10:00:00+00:00")
    repo.tag("15.0.0", date="2017-02-22T10:00:00+00:00")
    repo.checkout("main")
    repo.commit({"README.rst": "pike\n"}, date="2017-02-08T10:00:00+00:00")
    repo.branch("bump")
    bump = repo.commit({DRV: driver("(1, 2, 9)", "(1, 3, 1)")}, date="2017-02-11T10:00:00+00:00")
    repo.checkout("main")
    return repo, bump


def test_commit_after_the_rc_cut_ships_in_the_next_release(nova):
    """The Nova 2017-02-11 case: judged as Pike against Ocata, whose tag warned; not Ocata against Newton."""
    repo, _ = nova
    r = run_refs(repo.path, "main", "bump")
    t = r.target_release
    assert (t["name"], t["tag"], t["date"], t["how"]) == ("Pike", "16.0.0", "2017-08-30", "topology")
    assert "tag 15.0.0" in t["evidence"] and "forked off the base's history on 2017-02-01" in t["evidence"]
    assert r.previous_release["tag"] == "15.0.0" and r.as_of == date(2017, 8, 30)
    dep = [d for d in r.deprecation if d["constant"] == "MIN_LIBVIRT_VERSION"][0]
    assert dep["previous_release"] == "15.0.0" and dep["warned"] is True, dep["evidence"]
    # Ubuntu 14.04 (libvirt 1.2.2) is still supported in August 2017: a warned drop, not a failure.
    trusty = [d for d in r.impacted if d["platform"] == "ubuntu-14.04"][0]
    assert trusty["still_supported"] and trusty["warned"] is True and trusty["severity"] == "warn"
    assert r.verdict == "warn"
    # The bot diffs from the merge base and judges the topology from the base branch's tip: same answer.
    bot = run_refs(repo.path, repo.git("merge-base", "main", "bump"), "bump", config_ref="main")
    assert bot.target_release == t and bot.deprecation == r.deprecation


def test_target_release_option_overrides_and_says_so(nova, capsys):
    """Judged as if it shipped in Ocata, Newton's tag is the one that had to warn, and it warned about 1.2.1 only."""
    repo, _ = nova
    code, out, _ = run_cli(["dry-run", "--repo", str(repo.path), "--base", "main", "--head", "bump",
                            "--target-release", "ocata", "--format", "json"], capsys)
    data = json.loads(out)
    assert data["target_release"]["tag"] == "15.0.0" and data["target_release"]["how"] == "option"
    assert data["previous_release"]["tag"] == "14.0.0"
    assert data["deprecation"][0]["warned"] is False and data["verdict"] == "fail" and code == 1
    for given in ("Pike", "16.0.0", "16.0.0.0rc1"):
        assert run_refs(repo.path, "main", "bump", target_release=given).target_release["tag"] == "16.0.0"
    code, out, err = run_cli(["dry-run", "--repo", str(repo.path), "--base", "main", "--head", "bump",
                              "--target-release", "nosuch"], capsys)
    assert code == 2 and err.startswith("minbump: --target-release 'nosuch': no such release in calendar openstack")
    assert len(err.strip().splitlines()) == 1 and out == ""


def test_a_tag_that_contains_the_head_names_the_release(nova, tmp_path):
    """Replaying history: once a Pike tag holds the commit, that is where it shipped, whatever the base."""
    src, bump = nova
    repo = GitRepo(tmp_path / "replay")
    repo.git("fetch", "-q", "--update-head-ok", str(src.path), "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
    repo.git("reset", "-q", "--hard", "bump")
    repo.commit({"README.rst": "pike b1\n"}, date="2017-04-13T10:00:00+00:00")
    repo.tag("16.0.0.0b1", date="2017-04-13T10:00:00+00:00")  # a milestone, on master itself
    r = run_refs(repo.path, "14.0.0", bump)
    assert r.target_release["tag"] == "16.0.0" and r.target_release["how"] == "contains"
    assert "16.0.0.0b1" in r.target_release["evidence"]
    # A milestone on master says nothing about a branch being cut: a new change on master still ships in Pike.
    repo.branch("later")
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 3, 1)", min_qemu="(2, 1, 0)")}, date="2017-04-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "later")
    assert r.target_release["tag"] == "16.0.0" and r.target_release["how"] == "topology"


def test_base_on_an_older_stable_branch_targets_the_next_release(nova, tmp_path):
    """From Newton's tag (on stable/newton), Ocata's branch forked before Newton shipped: Ocata is not behind."""
    src, _ = nova
    repo = GitRepo(tmp_path / "newton")
    repo.git("fetch", "-q", "--update-head-ok", str(src.path), "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
    repo.git("reset", "-q", "--hard", "main")
    repo.git("checkout", "-q", "-b", "newton-bump", "14.0.0")
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)")}, date="2016-10-20T10:00:00+00:00")
    r = run_refs(repo.path, "14.0.0", "newton-bump")
    assert r.target_release["tag"] == "15.0.0" and r.target_release["how"] == "topology"
    assert r.previous_release["tag"] == "14.0.0"


def test_shallow_tagless_clone_is_unknown_not_unwarned(nova, tmp_path, capsys, monkeypatch):
    """actions/checkout's default: depth 1, no tags. The warning cannot be checked, so it is not a failure."""
    src, _ = nova
    dest = tmp_path / "ci"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--no-tags", "--no-single-branch", "--branch", "bump",
                    f"file://{src.path}", str(dest)], check=True, capture_output=True)
    assert subprocess.run(["git", "-C", str(dest), "tag"], capture_output=True, text=True).stdout == ""
    monkeypatch.chdir(dest)  # --repo defaults to the current directory, --head to HEAD
    code, out, err = run_cli(["dry-run", "--base", "origin/main", "--format", "json"], capsys)
    assert err == ""
    data = json.loads(out)
    assert data["target_release"]["how"] == "date"  # no tags: git cannot tell
    dep = [d for d in data["deprecation"] if d["constant"] == "MIN_LIBVIRT_VERSION"][0]
    assert dep["warned"] is None and dep["previous_release"] == "14.0.0"
    assert data["verdict"] == "warn" and code == 0
    assert all(d["warned"] is None and d["severity"] != "fail" for d in data["impacted"])
    notes = " ".join(data["notes"])
    assert "14.0.0" in notes and "git fetch --tags" in notes and "fetch-depth: 0" in notes
    assert "shallow" in notes and "head commit's date" in notes
    assert data["base"] == src.rev("main") and len(data["merge_base"]) == 40
    code, out, _ = run_cli(["dry-run", "--base", "origin/main"], capsys)
    assert "❔" in out and "14.0.0" in out and code == 0


def test_strictness_unknown_caps_a_missing_tag(nova, tmp_path, capsys):
    src, _ = nova
    dest = tmp_path / "ci"
    subprocess.run(["git", "clone", "-q", "--no-tags", f"file://{src.path}", str(dest)], check=True,
                   capture_output=True)
    strict = tmp_path / "strict.yml"
    strict.write_text(CONFIG + "strictness: {unknown: fail}\n")
    lax = tmp_path / "lax.yml"
    lax.write_text(CONFIG + "strictness: {unknown: pass, low_confidence: pass, minor_drop: pass}\n")
    r = run_refs(dest, "origin/main", "origin/bump", config_path=str(strict))
    assert r.deprecation[0]["warned"] is None and r.verdict == "fail"
    r = run_refs(dest, "origin/main", "origin/bump", config_path=str(lax))
    assert r.deprecation[0]["warned"] is None and r.verdict == "pass"
    # A full (not shallow) clone still says which tag is missing, and not that it is shallow.
    assert not any("shallow" in n for n in r.notes) and any("14.0.0" in n for n in r.notes)


def test_no_tags_at_all_falls_back_to_the_date_and_says_so(repo):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    assert r.target_release["tag"] == "15.0.0" and r.target_release["how"] == "date"
    assert any("head commit's date" in n and "no tag" in n for n in r.notes)
    assert r.deprecation[0]["warned"] is None and r.verdict == "warn"


def test_base_that_moved_after_the_branch_point(repo):
    """A branch made before master raised QEMU is not credited with lowering it back."""
    fork = repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                       date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    repo.branch("feature")
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 1)")}, date="2016-11-20T10:00:00+00:00")
    repo.checkout("main")
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)", min_qemu="(2, 1, 0)")}, date="2016-11-25T10:00:00+00:00")
    r = run_refs(repo.path, "main", "feature")
    assert [(c["constant"], c["old"], c["new"]) for c in r.changes] == [("MIN_LIBVIRT_VERSION", "1.2.1", "1.2.9")]
    assert r.to_dict()["merge_base"] == fork and r.to_dict()["base"] == repo.rev("main")
    # A branch that changes no watched file is neutral, although master's QEMU differs from it.
    repo.branch("docs", fork)
    repo.commit({"README.rst": "docs\n"}, date="2016-11-26T10:00:00+00:00")
    r = run_refs(repo.path, "main", "docs")
    assert r.changes == [] and r.verdict == "neutral"


def test_any_revision_form_works(repo, capsys, monkeypatch):
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    base = repo.head()
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)")}, date="2016-11-20T10:00:00+00:00")
    head = repo.head()
    repo.git("branch", "newton", base)
    repo.git("branch", "--set-upstream-to=newton", "main")
    monkeypatch.chdir(repo.path)
    seen = set()
    for rev in ("HEAD~1", "main^", "14.0.0", base[:9], base, "@{upstream}", "main@{u}"):
        code, out, err = run_cli(["dry-run", "--base", rev, "--format", "json"], capsys)
        data = json.loads(out)
        assert (code, err, data["base"], data["head"], data["merge_base"]) == (1, "", base, head, base), rev
        seen.add(json.dumps(data["changes"]))
    assert len(seen) == 1
    for bad in ("--output=/tmp/x", "-x"):
        code, out, err = run_cli(["dry-run", f"--base={bad}"], capsys)
        assert code == 2 and err == f"minbump: not a valid ref: {bad!r}\n" and out == ""
    code, _, err = run_cli(["dry-run", "--base", "newton@{upstream}"], capsys)  # newton has no upstream
    assert code == 2 and err.startswith("minbump: unknown ref 'newton@{upstream}'") and len(err.splitlines()) == 1
    assert "no upstream" in err


def test_tag_list_without_a_calendar(repo):
    """Without a calendar the releases are the tags; a release branch's tags are behind master."""
    cfg = 'watch: ["nova/virt/libvirt/*.py"]\n'
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": cfg}, date="2020-01-10T10:00:00+00:00")
    repo.tag("v1.0.0", date="2020-01-10T10:00:00+00:00")
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 9)")}, date="2020-03-01T10:00:00+00:00")
    repo.branch("release-2")
    repo.commit({"NEWS": "2.0\n"}, date="2020-05-20T10:00:00+00:00")
    repo.tag("v2.0.0-rc1", date="2020-05-20T10:00:00+00:00")
    repo.commit({"NEWS": "2.0 final\n"}, date="2020-06-10T10:00:00+00:00")
    repo.tag("v2.0.0", date="2020-06-10T10:00:00+00:00")
    repo.checkout("main")
    repo.commit({"NEWS": "3.0 dev\n"}, date="2020-05-25T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 2, 9)")}, date="2020-06-01T10:00:00+00:00")
    r = run_refs(repo.path, "main", "bump")
    # By date, v1.0.0 (no warning) would be the previous release; v2.0.0 is, and it warned.
    assert r.target_release is None and r.previous_release["tag"] == "v2.0.0"
    assert r.deprecation[0]["previous_release"] == "v2.0.0" and r.deprecation[0]["warned"] is True


@pytest.mark.parametrize("final,tag,kind", [
    ("15.0.0", "15.0.0", "final"), ("15.0.0", "15.0.0.0rc1", "rc"), ("15.0.0", "15.0.0.0b2", "milestone"),
    ("v9.0.0", "v9.0.0-rc1", "rc"), ("2014.1", "2014.1.rc1", "rc"), ("3.12.0", "3.12.0a4", "milestone"),
    ("15.0.0", "15.0.01", None), ("15.0.0", "15.0.0.1", None), ("1.0", "1.0.0", None),
])
def test_tag_kind(final, tag, kind):
    assert tag_kind(final, tag) == kind


def test_release_tags_prefers_the_longest_final():
    cal = Calendar("x", [Release("one", "1.0", date(2020, 1, 1)), Release("one-oh", "1.0.0", date(2020, 6, 1))])
    tags = release_tags(cal, ["1.0", "1.0.0", "1.0.0rc1", "1.0rc1", "2.0"])
    assert tags == {"1.0": [("1.0", "final"), ("1.0rc1", "rc")], "1.0.0": [("1.0.0", "final"), ("1.0.0rc1", "rc")]}
