"""Option converters shared by the commands: thin click wrappers around the core's parsers."""

from __future__ import annotations

from datetime import date

import click

from bot.core.dates import parse_day


def day_option(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    """click callback for a YYYY-MM-DD option: a bad date is a usage error (one line, exit 2)."""
    if value is None:
        return None
    try:
        return parse_day(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
