"""`minbump`: the command line, one click application.

Start-up is part of the dry-run's budget (bench/dryrun.py), so modules here
import only click and the standard library at the top; each command imports
what it needs (git reader, analysis, Flask, the queue) when it runs.
"""

from __future__ import annotations

import gc
import os
import sys
from datetime import date

import click

from bot.cli.params import day_option
from bot.errors import Interrupted, MinbumpError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

# Commands defined in other modules, imported only when named (or listed by --help), so a
# dry-run does not pay for the service's or the matrix tools' imports. Each module's
# `register(group)` adds its commands.
LAZY = {"audit": "bot.cli.audit", "validate": "bot.cli.matrix", "matrix": "bot.cli.matrix",
        "serve": "bot.cli.service", "worker": "bot.cli.service", "jobs": "bot.cli.service",
        "cache": "bot.cli.service"}


class LazyGroup(click.Group):
    """click's documented lazy-loading group: subcommands from `LAZY` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in LAZY:
            import importlib

            importlib.import_module(LAZY[name]).register(self)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="minbump", message="minbump %(version)s")
def cli() -> None:
    """Does raising a minimum version drop a platform its vendor still supports?"""


@cli.command("dry-run")
@click.option("--repo", "repo", default=".", show_default=True, help="A local clone, bare or not.")
@click.option("--base", required=True, help="The revision the change starts from (origin/master, HEAD~1, a tag, "
              "a sha); the change is diffed from its merge base with HEAD.")
@click.option("--head", default="HEAD", show_default=True, help="The revision with the change.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="A config file to use "
              "instead of .github/minbump.yml at base.")
@click.option("--preset", help="A shipped preset to use instead of the repository's config (e.g. openstack-nova).")
@click.option("--as-of", "as_of", callback=day_option, help="Judge support on this date (default: the target "
              "release's date, else the head commit's).")
@click.option("--matrix", "matrix_files", multiple=True, type=click.Path(dir_okay=False),
              help="An extra matrix file applied over the shipped one (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
@click.option("--target-release", "target_release", metavar="NAME|TAG",
              help="The release the change ships in (default: found from the tags' git topology).")
@click.option("--link-base", "link_base", help="Link each file:line in the markdown to URL + path + #Lline "
              "(e.g. https://github.com/o/r/blob/<sha>/).")
def dry_run(repo: str, base: str, head: str, config_path: str | None, preset: str | None,
            as_of: date | None, matrix_files: tuple[str, ...], fmt: str, target_release: str | None,
            link_base: str | None) -> None:
    """Report what BASE..HEAD drops, as the bot would comment, without GitHub.

    Exit status: 0 pass, warn or neutral; 1 fail; 2 usage or input error.
    """
    from bot.git.gather import run_refs

    if config_path and preset:
        raise click.UsageError("--config and --preset are alternatives; give one")
    if link_base is not None and not link_base.startswith(("https://", "http://")):
        raise MinbumpError(f"--link-base {link_base!r} is not an http(s) URL")
    report = run_refs(repo, base, head, config_path=config_path, preset=preset, as_of=as_of,
                      today=date.today(), matrix_files=list(matrix_files), target_release=target_release)
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        from bot.core.report import render_markdown

        sys.stdout.write(render_markdown(report, link_base=link_base))
    sys.stdout.flush()
    sys.exit(1 if report.verdict == "fail" else 0)


def main(argv: list[str] | None = None) -> None:
    """The console script: run the CLI and turn every user-facing failure into one line on stderr."""
    args = sys.argv[1:] if argv is None else list(argv)
    args = args or ["--help"]  # `minbump` alone shows the help (the same on every click version)
    if argv is None and args[0] == "dry-run":
        # This process is one dry-run and ends with it: nothing needs collecting or
        # tearing down. The collector's passes (the matrix and the parsed sources are
        # many small containers) and the interpreter's teardown at exit cost ~15% of a
        # dry-run, so the process skips them (as mypy's `hard_exit` does). Callers that
        # pass `argv` run in their own process and keep both.
        gc.disable()
        try:
            _main(args)
        except SystemExit as exc:
            _hard_exit(exc.code)
        _hard_exit(0)
    _main(args)


def _hard_exit(code: object) -> NoReturn:
    """Flush what was written and end the process now, without the interpreter's teardown."""
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, OSError):
            pass  # a reader that went away (`| head`) is no error
    os._exit(code or 0)


def _main(args: list[str]) -> None:
    try:
        cli.main(args=args, prog_name="minbump", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx else "minbump"
        click.echo(f"minbump: {exc.format_message()} (see '{cmd} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"minbump: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code if exc.exit_code != 1 else 2)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("minbump: interrupted", err=True)
            sys.exit(Interrupted.exit_code)
        click.echo("minbump: aborted", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("minbump: interrupted", err=True)
        sys.exit(Interrupted.exit_code)
    except MinbumpError as exc:
        click.echo(f"minbump: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
