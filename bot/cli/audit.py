"""`minbump audit`: what the check would have said on every past bump of a branch.

The walk and the judging are bot/git/audit.py; the rows, table and timeline
are bot/core/timeline.py; this module reads the options, shows progress on a
terminal and writes the chosen format.
"""

from __future__ import annotations

import sys
from datetime import date

import click

from bot.errors import Interrupted


def _write(text: str, output: str | None) -> None:
    if output:
        from bot.errors import MinbumpError

        try:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise MinbumpError(f"{output}: cannot write: {exc.strerror}") from None
        click.echo(f"minbump: wrote {output}", err=True)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def audit_cmd(repo: str, branch: str, since: str | None, until: str | None, config_path: str | None,
              preset: str | None, fmt: str, output: str | None) -> None:
    """Judge every first-parent commit of BRANCH that changed a watched constant, as `dry-run` would."""
    import json

    from bot.core.timeline import render_markdown
    from bot.git.audit import Audit

    rows: list[dict] = []
    with Audit(repo, branch, since, until, config_path, preset, today=date.today()) as audit:
        walk = audit.walk()
        try:
            if sys.stderr.isatty():  # a count of commits read: their number is known only once git is done
                with click.progressbar(walk, label="minbump audit", file=sys.stderr,
                                       item_show_func=lambda e: e.sha[:10] if e else None) as bar:
                    rows = [r for r in (audit.judge(e) for e in bar) if r is not None]
            else:
                rows = [r for r in (audit.judge(e) for e in walk) if r is not None]
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted after {audit.walked} commits; nothing written") from None
        finally:
            walk.close()  # ends git log if it is still walking
        doc = audit.document(rows)
        if fmt == "json":
            text = json.dumps(doc, indent=2) + "\n"
        elif fmt == "html":
            from bot.cli.audit_html import render_html

            text = render_html(doc, audit.matrix, audit.calendar)
        else:
            text = render_markdown(doc)
    _write(text, output)


def register(cli: click.Group) -> None:
    """Add `audit` to the main command group."""

    @cli.command("audit")
    @click.option("--repo", default=".", show_default=True, help="A local clone, bare or not.")
    @click.option("--branch", default="HEAD", show_default=True, help="The branch (or any ref) whose history to walk.")
    @click.option("--since", help="Only commits after this tag, or on or after this date (YYYY-MM-DD).")
    @click.option("--until", help="Only commits up to this tag, or on or before this date (YYYY-MM-DD).")
    @click.option("--config", "config_path", type=click.Path(dir_okay=False),
                  help="A config file to use for every commit instead of .github/minbump.yml at its parent.")
    @click.option("--preset", help="A shipped preset to use for every commit (e.g. openstack-nova).")
    @click.option("--format", "fmt", type=click.Choice(["markdown", "json", "html"]), default="markdown",
                  show_default=True)
    @click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
    def audit(repo: str, branch: str, since: str | None, until: str | None, config_path: str | None,
              preset: str | None, fmt: str, output: str | None) -> None:
        """What minbump would have said on every past change of a watched minimum.

        Walks the first-parent history of BRANCH, and judges each commit that
        changed a watched constant as `dry-run --base <parent> --head <commit>`
        does. HTML adds a timeline chart per component (needs the `plot` extra:
        pip install 'minbump[plot]'). Exit status: 0 done (whatever the
        verdicts), 2 usage or input error, 130 interrupted.
        """
        if config_path and preset:
            raise click.UsageError("--config and --preset are alternatives; give one")
        audit_cmd(repo, branch, since, until, config_path, preset, fmt, output)
