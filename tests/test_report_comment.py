"""The comment reads at a glance (issue 10, section 6): headline, one row per platform, collapsed detail,
file:line links at the head commit, one footer. Real git repositories; the bot path through the fake GitHub."""

from __future__ import annotations

import re

import pytest

from bot.cli import main as entry_main
from bot.core.report import render_markdown
from bot.git.gather import run_refs
from bot.core.publish import MARKER, comment_body
from tests.support.fakegithub import Harness, fast_env, nova_repo
from tests.support.nova import CONFIG, driver
from tests.test_impact_rules import _table_rows, assert_one_count

DRV = "nova/virt/libvirt/driver.py"
FEATURE = "MIN_LIBVIRT_BLOCKJOB_RELATIVE_VERSION = (1, 2, 7)\n"


@pytest.fixture
def ocata(repo):
    """Ocata-era bump of both minimums, with an announced next libvirt minimum and a feature gate."""
    repo.commit({DRV: driver("(1, 2, 1)", "(1, 2, 1)", extra=FEATURE), ".github/minbump.yml": CONFIG},
                date="2016-09-01T10:00:00+00:00")
    repo.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    repo.branch("bump")
    repo.commit({DRV: driver("(1, 2, 9)", "(1, 3, 1)", "(2, 1, 0)", "(2, 1, 0)", extra=FEATURE)},
                date="2016-11-20T10:00:00+00:00")
    return repo


def test_one_row_per_platform_with_a_column_per_component(ocata):
    r = run_refs(ocata.path, "main", "bump")
    md = render_markdown(r)
    rows = _table_rows(md, "### Still-supported platforms this drops")
    header = md.splitlines()[md.splitlines().index(rows[0]) - 2]
    assert header == "| | platform | libvirt | QEMU | support ends | way out |"
    trusty = [row for row in rows if "Ubuntu 14.04 (trusty) |" in row]
    assert len(trusty) == 1  # libvirt and QEMU on one row
    assert "| 1.2.2 → 1.2.9 | 2.0.0 → 2.1.0 |" in trusty[0]
    assert "UCA kilo" in trusty[0]  # the first pocket that brings both
    rhel = [row for row in rows if "| RHEL 7 |" in row]
    assert len(rhel) == 1 and "| — | 1.5.3 → 2.1.0 |" in rhel[0]
    assert_one_count(r)


def test_headline_names_up_to_three_platforms_and_their_way_out(ocata):
    r = run_refs(ocata.path, "main", "bump")
    assert r.verdict == "fail"
    assert r.summary.startswith("drops 4 still-supported platforms, including ")
    assert "Ubuntu 14.04 (trusty) (UCA kilo+)" in r.summary
    assert "Ubuntu 12.04 (precise) with UCA icehouse (no way out)" in r.summary
    assert r.summary.endswith("without a release of warning")
    md = render_markdown(r)
    assert md.splitlines()[0] == f"## ❌ minbump: fail — {r.summary}"


def test_detail_is_collapsed(ocata):
    md = render_markdown(run_refs(ocata.path, "main", "bump"))
    for title in ("Minimums changed (4)", "Announced: <code>NEXT_MIN_LIBVIRT_VERSION</code> = 1.3.1",
                  "Feature checks now always true (1)", "Older minor releases, superseded by a newer minor",
                  "Also dropped, already past end of support"):
        assert f"<details><summary>{title}" in md, title
    assert "### Minimums changed" not in md and "### Announced" not in md
    assert md.count("<details>") == md.count("</details>")


def test_file_line_links_and_plain_text(ocata, capsys):
    r = run_refs(ocata.path, "main", "bump")
    plain = render_markdown(r)
    line = [c["line"] for c in r.changes if c["constant"] == "MIN_LIBVIRT_VERSION"][0]
    assert "](http" not in plain and f"`{DRV}:{line}`" in plain
    base = f"https://github.com/octo/nova/blob/{r.head}/"
    linked = render_markdown(r, link_base=base)
    refs = re.findall(r"`(nova/[\w/.]+):(\d+)`", plain)
    assert refs
    for path, line in refs:
        assert f"[`{path}:{line}`]({base}{path}#L{line})" in linked
    # The dry-run: plain unless --link-base.
    with pytest.raises(SystemExit):
        entry_main(["dry-run", "--repo", str(ocata.path), "--base", "main", "--head", "bump",
                    "--link-base", base])
    assert f"[`{DRV}:{line}`]({base}{DRV}#L{line})" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        entry_main(["dry-run", "--repo", str(ocata.path), "--base", "main", "--head", "bump",
                    "--link-base", "not-a-url"])
    assert exc.value.code == 2 and "--link-base" in capsys.readouterr().err


def test_one_footer(ocata):
    r = run_refs(ocata.path, "main", "bump")
    assert render_markdown(r).count("<sub>") == 1
    body = comment_body(render_markdown(r, footer=False), r.verdict, r.head, True, None)
    assert body.count("<sub>") == 1 and f"checked head {r.head}" in body


def test_bot_comment_links_lines_at_the_head_commit(tmp_path, fake_github, monkeypatch):
    for name in ("REDIS_URL", "APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "GITHUB_TOKEN", "WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    work, _base, head = nova_repo(tmp_path / "nova")
    fake_github.add_repo("octo/nova", work)
    fake_github.add_pull("octo/nova", 17, head, "main", "bump")
    env = fast_env(fake_github, tmp_path / "data", GITHUB_TOKEN=fake_github.add_token("minbump-bot"))
    svc = Harness(fake_github, tmp_path / "data", env)
    assert svc.deliver("pull_request.opened", "octo/nova", 17, head).status_code == 202
    assert svc.work() == 1
    ours = [c for c in fake_github.pr_comments("octo/nova", 17) if MARKER in c["body"]]
    assert len(ours) == 1
    body = ours[0]["body"]
    links = re.findall(r"\]\((\S+?)#L(\d+)\)", body)
    assert links and all(f"/octo/nova/blob/{head}/" in url for url, _ in links)
    assert body.count("<sub>") == 1
