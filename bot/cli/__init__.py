"""`minbump`: the command line. Heavy modules are imported inside commands to keep start-up fast."""

from __future__ import annotations

import sys
from datetime import date

import click

from bot.errors import MinbumpError


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--as-of", "as_of", callback=_date, help="Judge support on this date (default: the target "
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
    from bot.cli.entry import run_dry

    if config_path and preset:
        raise click.UsageError("--config and --preset are alternatives; give one")
    sys.exit(run_dry(repo, base, head, config_path, preset, as_of, matrix_files, fmt, target_release, link_base))


def _register_optional() -> None:
    """Commands owned by other modules; each registers itself on the group."""
    import importlib

    for name in ("bot.cli.matrix", "bot.cli.service"):
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        mod.register(cli)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] != "dry-run":  # dry-run is the hot path: skip the other commands' imports
        _register_optional()
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
    except click.exceptions.Abort:
        click.echo("minbump: aborted", err=True)
        sys.exit(2)
    except MinbumpError as exc:
        click.echo(f"minbump: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
