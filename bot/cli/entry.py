"""The `minbump` console script: a fast lane for `dry-run`, click for everything else.

click costs ~50 ms to import here, a fifth of the dry-run's whole budget
(bench/dryrun.py). A well-formed `minbump dry-run ...` is parsed by the small
table below and run directly; anything else (help, a typo, a bad date, a
missing option) goes to the click CLI in `bot.cli`, which owns every message.
tests/test_entry.py keeps this table and the click options identical.
"""

from __future__ import annotations

import sys
from datetime import date

# flag -> (destination, repeatable)
DRY_RUN_OPTIONS = {
    "--repo": ("repo", False),
    "--base": ("base", False),
    "--head": ("head", False),
    "--config": ("config_path", False),
    "--preset": ("preset", False),
    "--as-of": ("as_of", False),
    "--matrix": ("matrix_files", True),
    "--format": ("fmt", False),
    "--target-release": ("target_release", False),
    "--link-base": ("link_base", False),
}
CLICK_ONLY = {"target_release"}  # rare options: the fast lane leaves them to click
FORMATS = ("markdown", "json")


def parse_dry_run(args: list[str]) -> dict | None:
    """The dry-run's options, or None when click should handle (and explain) the arguments."""
    opts: dict = {"repo": ".", "config_path": None, "preset": None, "as_of": None,
                  "matrix_files": [], "fmt": "markdown", "link_base": None}
    seen: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        if "=" in arg and arg.startswith("--"):
            flag, value = arg.split("=", 1)
            i += 1
        else:
            flag = arg
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
            i += 2
        spec = DRY_RUN_OPTIONS.get(flag)
        if spec is None or (value.startswith("-") and flag != "--as-of"):
            return None
        dest, repeat = spec
        if dest in CLICK_ONLY:
            return None
        if repeat:
            opts[dest].append(value)
        elif dest in seen:
            return None  # given twice: let click decide
        else:
            seen.add(dest)
            opts[dest] = value
    if "base" not in opts or "head" not in opts or opts["fmt"] not in FORMATS:
        return None
    if opts["config_path"] and opts["preset"]:
        return None
    if opts["as_of"] is not None:
        try:
            opts["as_of"] = date.fromisoformat(opts["as_of"])
        except ValueError:
            return None
    return opts


def run_dry(repo: str, base: str, head: str, config_path: str | None, preset: str | None,
            as_of: date | None, matrix_files, fmt: str, target_release: str | None = None,
            link_base: str | None = None) -> int:
    """Run the dry-run and print it; the exit status (0 pass/warn/neutral, 1 fail)."""
    from bot.git.gather import run_refs

    if link_base is not None and not link_base.startswith(("https://", "http://")):
        from bot.errors import MinbumpError

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
    return 1 if report.verdict == "fail" else 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["dry-run"]:
        opts = parse_dry_run(args[1:])
        if opts is not None:
            from bot.errors import MinbumpError

            try:
                code = run_dry(**opts)
            except MinbumpError as exc:
                sys.stderr.write(f"minbump: {exc}\n")
                code = exc.exit_code
            except BrokenPipeError:
                code = 0
            sys.exit(code)
    from bot.cli import main as click_main

    click_main(args)


if __name__ == "__main__":
    main()
