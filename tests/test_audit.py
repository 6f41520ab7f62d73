"""`minbump audit` on a built history: which commits become rows, their verdicts, and that each row is the dry-run.

The history (first parent, oldest first):
  c0  2016-02-01  Python 2-era connection.py, config                  (root: no parent, no row)
      tag 13.0.0 Mitaka 2016-04-07
  c1  2016-05-01  unrelated file                                       (no row)
  c2  2016-05-10  announce NEXT_MIN_LIBVIRT 1.2.9 (still Python 2)      row: next only
  c3  2016-06-01  docs-only edit of connection.py                      (touches a watched file, no row)
      tag 14.0.0 Newton 2016-10-06
  c4  2016-10-20  rename connection.py -> driver.py, same values        (no row: a move is not a change)
  c5  2016-11-20  raise MIN_LIBVIRT 1.2.1 -> 1.2.9, warned in 14.0.0    row: warned drop
  c6  2016-12-01  raise MIN_QEMU 1.5.3 -> 2.1.0, never announced        row: fail, not warned
  c7  2017-01-10  merge of a side branch that raised s390x only         row: per-arch raise
  c8  2017-01-20  break the config at .github/minbump.yml              (no watched change: no row)
  c9  2017-01-25  raise NEXT_MIN_QEMU: parent's config is broken         row: error
  c10 2017-02-01  repair the config                                     (no row)
  c11 2017-03-01  a raise with a syntax error in driver.py             row: cannot be judged (parse error)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.git.audit import Audit
from tests.support.gitrepo import GitRepo
from tests.support.nova import CONFIG, driver

ROOT = Path(__file__).resolve().parent.parent
DRV = "nova/virt/libvirt/driver.py"
OLD = "nova/virt/libvirt/connection.py"
PY2_TAIL = '''

def _legacy():
    try:
        import libvirt
    except ImportError, e:
        print "libvirt is missing: %s" % e
'''
ARCH = """MIN_LIBVIRT_KVM_S390_VERSION = {s390}
MIN_LIBVIRT_OTHER_ARCH = {{
    fields.Architecture.S390X: MIN_LIBVIRT_KVM_S390_VERSION,
}}
"""


def _drv(lib="(1, 2, 1)", nlib="(1, 2, 1)", qemu="(1, 5, 3)", nqemu="(1, 5, 3)", s390="(1, 2, 1)", py2=False,
         doc=""):
    text = driver(lib, nlib, qemu, nqemu, extra=ARCH.format(s390=s390))
    return text.replace('"""A libvirt connection.', f'"""A libvirt connection.{doc}') + (PY2_TAIL if py2 else "")


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    repo = GitRepo(tmp_path_factory.mktemp("audit") / "nova")
    shas = {}
    shas["c0"] = repo.commit({OLD: _drv(py2=True), ".github/minbump.yml": CONFIG}, "Initial libvirt driver",
                             "2016-02-01T10:00:00+00:00")
    repo.tag("13.0.0", date="2016-04-07T10:00:00+00:00")
    shas["c1"] = repo.commit({"README": "hello\n"}, "Docs", "2016-05-01T10:00:00+00:00")
    shas["c2"] = repo.commit({OLD: _drv(nlib="(1, 2, 9)", py2=True)}, "Announce libvirt 1.2.9",
                             "2016-05-10T10:00:00+00:00")
    shas["c3"] = repo.commit({OLD: _drv(nlib="(1, 2, 9)", py2=True, doc=" Now documented.")}, "Docstring",
                             "2016-06-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    repo.mv(OLD, DRV)
    shas["c4"] = repo.commit(None, "Rename connection.py to driver.py", "2016-10-20T10:00:00+00:00")
    shas["c5"] = repo.commit({DRV: _drv("(1, 2, 9)", "(1, 2, 9)", py2=True, doc=" Now documented.")},
                             "Raise libvirt to 1.2.9", "2016-11-20T10:00:00+00:00")
    shas["c6"] = repo.commit({DRV: _drv("(1, 2, 9)", "(1, 2, 9)", "(2, 1, 0)", py2=True, doc=" Now documented.")},
                             "Raise QEMU to 2.1.0", "2016-12-01T10:00:00+00:00")
    repo.branch("s390")
    repo.commit({DRV: _drv("(1, 2, 9)", "(1, 2, 9)", "(2, 1, 0)", s390="(1, 2, 13)", py2=True,
                           doc=" Now documented.")}, "s390x needs 1.2.13", "2016-12-20T10:00:00+00:00")
    repo.checkout("main")
    repo.git("merge", "--no-ff", "-q", "-m", "Merge s390 work", "s390", date="2017-01-10T10:00:00+00:00")
    shas["c7"] = repo.head()
    shas["c8"] = repo.commit({".github/minbump.yml": "preset: [unclosed\n"}, "Break the config",
                             "2017-01-20T10:00:00+00:00")
    shas["c9"] = repo.commit({DRV: _drv("(1, 2, 9)", "(1, 2, 9)", "(2, 1, 0)", "(2, 5, 0)", s390="(1, 2, 13)",
                                        py2=True, doc=" Now documented.")}, "Announce QEMU 2.5.0",
                             "2017-01-25T10:00:00+00:00")
    shas["c10"] = repo.commit({".github/minbump.yml": CONFIG}, "Repair the config", "2017-02-01T10:00:00+00:00")
    broken = _drv("(1, 3, 1)", "(1, 3, 1)", "(2, 1, 0)", "(2, 5, 0)", s390="(1, 2, 13)", py2=True,
                  doc=" Now documented.").replace("MIN_QEMU_VERSION = (2, 1, 0)", "MIN_QEMU_VERSION = (2, 1, 0")
    shas["c11"] = repo.commit({DRV: broken}, "Raise libvirt to 1.3.1, badly", "2017-03-01T10:00:00+00:00")
    return repo, shas


@pytest.fixture(scope="module")
def doc(history):
    repo, _ = history
    from datetime import date

    with Audit(repo.path, "main", today=date.today()) as a:
        return a.run()


def _main(args) -> int:
    """The console script in-process: its exit status (0 when it returns)."""
    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def _row(doc, sha):
    return next(r for r in doc["rows"] if r["sha"] == sha)


def test_rows_are_the_commits_that_changed_a_watched_constant(doc, history):
    _, shas = history
    assert [r["sha"] for r in doc["rows"]] == [shas[k] for k in ("c2", "c5", "c6", "c7", "c9", "c11")]
    assert doc["commits_scanned"] == 9  # every first-parent commit touching a watched file except c1, c8, c10
    assert [r["subject"] for r in doc["rows"]][:2] == ["Announce libvirt 1.2.9", "Raise libvirt to 1.2.9"]
    assert _row(doc, shas["c5"])["date"] == "2016-11-20"


def test_verdicts_warnings_and_drops(doc, history):
    from bot.core.timeline import summarize

    _, shas = history
    announce = summarize(_row(doc, shas["c2"]))
    assert announce["changes"] == "NEXT_MIN_LIBVIRT_VERSION 1.2.1 -> 1.2.9" and announce["warned"] == "n.a."
    warned = summarize(_row(doc, shas["c5"]))
    assert warned["release"] == "Ocata (15.0.0)" and warned["verdict"] == "warn" and warned["warned"] == "yes"
    assert warned["dropped"] >= 1 and "Ubuntu 14.04 (trusty)" in warned["dropped_names"]
    unwarned = summarize(_row(doc, shas["c6"]))
    assert unwarned["verdict"] == "fail" and unwarned["warned"] == "no"
    arch = _row(doc, shas["c7"])
    assert {(c["constant"], c["scope"]["arch"]) for c in arch["changes"]} == {
        ("MIN_LIBVIRT_KVM_S390_VERSION", "s390x"), ("MIN_LIBVIRT_OTHER_ARCH", "s390x")}
    assert [e["scope"]["arch"] for e in arch["effective"]] == ["s390x"]
    assert all(d["scope"]["arch"] == "s390x" for d in arch["impacted"])


def test_a_commit_that_cannot_be_judged_is_a_row_with_its_error(doc, history):
    from bot.core.timeline import summarize

    _, shas = history
    bad_config = _row(doc, shas["c9"])
    assert bad_config["verdict"] == "error" and ".github/minbump.yml" in bad_config["error"]
    unparsable = summarize(_row(doc, shas["c11"]))
    assert unparsable["verdict"] == "neutral" and "driver.py" in unparsable["error"]


def test_the_rename_followed_and_the_python2_file_read(doc, history):
    _, shas = history
    assert shas["c4"] not in [r["sha"] for r in doc["rows"]]  # moved with the same values
    c2 = _row(doc, shas["c2"])
    assert c2["changes"][0]["file"] == OLD and not c2["errors"]


def test_timeline_per_component(doc, history):
    _, shas = history
    libvirt = doc["timeline"]["libvirt"]
    assert [(e["constant"], e["value"]) for e in libvirt][:2] == [("NEXT_MIN_LIBVIRT_VERSION", "1.2.9"),
                                                                 ("MIN_LIBVIRT_VERSION", "1.2.9")]
    assert libvirt[0] == {"date": "2016-05-10", "sha": shas["c2"], "constant": "NEXT_MIN_LIBVIRT_VERSION",
                          "kind": "next", "scope": {"arch": None, "hypervisor": None}, "value": "1.2.9"}
    assert [e["value"] for e in doc["timeline"]["qemu"] if e["kind"] == "hard"] == ["2.1.0"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_each_json_row_is_byte_for_byte_the_dry_run(history):
    repo, shas = history
    out = _cli("audit", "--repo", str(repo.path), "--branch", "main", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) >= {"repo", "branch", "config", "data", "rows", "timeline"}
    judged = 0
    for row in doc["rows"]:
        parent = repo.git("rev-parse", f"{row['sha']}^1")
        dry = _cli("dry-run", "--repo", str(repo.path), "--base", parent, "--head", row["sha"], "--format", "json")
        if row.get("error"):
            assert dry.returncode == 2 and dry.stderr.strip() == f"minbump: {row['error']}"
            continue
        report = {k: v for k, v in row.items() if k not in ("sha", "subject", "date")}
        assert json.dumps(report, indent=2) + "\n" == dry.stdout, row["subject"]
        judged += 1
    assert judged == 5


def test_markdown_since_until_and_output_file(history, tmp_path, capsys):
    repo, shas = history
    assert _main(["audit", "--repo", str(repo.path), "--since", "14.0.0", "--until", "2016-12-01"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("| 2016")]
    assert [ln.split(" | ")[1] for ln in lines] == [f"`{shas['c5'][:10]}`", f"`{shas['c6'][:10]}`"]
    assert "| fail |" in lines[1] and "| no |" in lines[1]
    target = tmp_path / "audit.md"
    assert _main(["audit", "--repo", str(repo.path), "--output", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and target.read_text().count("\n| 201") == 6


@pytest.mark.parametrize("args, needle", [
    (["--since", "yesterday-ish"], "--since: 'yesterday-ish' is neither a date"),
    (["--branch", "nope"], "unknown ref 'nope'"),
])
def test_bad_input_is_one_line(history, args, needle):
    repo, _ = history
    out = _cli("audit", "--repo", str(repo.path), *args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("minbump: ") and needle in out.stderr


def test_a_repository_without_config_needs_one_given(repo):
    repo.commit({DRV: _drv()}, "Driver", "2016-02-01T10:00:00+00:00")
    repo.commit({DRV: _drv("(1, 2, 9)")}, "Raise", "2016-11-20T10:00:00+00:00")
    out = _cli("audit", "--repo", str(repo.path))
    assert out.returncode == 2 and out.stderr == (f"minbump: no .github/minbump.yml at HEAD ({repo.head()[:12]}); "
                                                  "pass --config FILE or --preset NAME\n")
    given = _cli("audit", "--repo", str(repo.path), "--preset", "openstack-nova", "--format", "json")
    assert given.returncode == 0 and [r["subject"] for r in json.loads(given.stdout)["rows"]] == ["Raise"]
    # Adopted later: the history before the config is judged with the tip's, and the row says so.
    repo.commit({".github/minbump.yml": CONFIG}, "Adopt minbump", "2017-01-01T10:00:00+00:00")
    later = _cli("audit", "--repo", str(repo.path), "--format", "json")
    (row,) = json.loads(later.stdout)["rows"]
    assert later.returncode == 0 and row["subject"] == "Raise" and row["verdict"] in ("pass", "warn", "fail")
    assert [c["new"] for c in row["changes"]] == ["1.2.9"]
    assert row["config_ref"].startswith("HEAD (") and row["config_ref"].endswith("no config at the parent")


def test_html_has_the_table_and_one_svg_chart_per_component(history, tmp_path):
    pytest.importorskip("matplotlib")
    import xml.etree.ElementTree as ET

    repo, shas = history
    target = tmp_path / "audit.html"
    out = _cli("audit", "--repo", str(repo.path), "--format", "html", "--output", str(target))
    assert out.returncode == 0, out.stderr
    page = target.read_text()
    assert page.count("<tr>") == 1 + 6 and shas["c6"][:10] in page
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page) and "<link" not in page  # nothing fetched
    svgs = [page[i:page.index("</svg>", i) + 6] for i in range(len(page)) if page.startswith("<svg", i)]
    assert len(svgs) == 2  # libvirt and qemu
    for svg in svgs:
        ET.fromstring(svg)  # well-formed


def test_html_without_matplotlib_says_how_to_get_the_chart(history, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the plot extra were not installed
    repo, _ = history
    target = tmp_path / "audit.html"
    assert _main(["audit", "--repo", str(repo.path), "--format", "html", "--output", str(target)]) == 0
    page = target.read_text()
    assert "pip install &#x27;minbump[plot]&#x27;" in page and "<svg" not in page and page.count("<tr>") == 7


def test_ctrl_c_ends_with_130_and_one_line(history, monkeypatch, capsys):
    repo, _ = history
    calls = []

    def judge(self, entry):
        calls.append(entry)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return None

    monkeypatch.setattr(Audit, "judge", judge)
    assert _main(["audit", "--repo", str(repo.path)]) == 130
    err = capsys.readouterr()
    assert err.out == ""
    assert err.err == "minbump: interrupted after 3 commits; nothing written\n"


def test_progress_bar_only_on_a_terminal(history, tmp_path):
    import pty

    repo, _ = history
    quiet = _cli("audit", "--repo", str(repo.path), "--format", "json")
    assert quiet.returncode == 0 and quiet.stderr == ""
    leader, follower = pty.openpty()  # a real terminal for stderr, read while the process runs
    out_file = tmp_path / "audit.json"
    with open(out_file, "wb") as out, \
            subprocess.Popen([sys.executable, "-m", "bot", "audit", "--repo", str(repo.path), "--format", "json"],
                             stdout=out, stderr=follower, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}) as p:
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        os.close(leader)
    assert p.returncode == 0 and json.loads(out_file.read_text())["rows"]
    assert b"minbump audit" in b"".join(chunks)
