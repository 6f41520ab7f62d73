"""The one date converter: policy files, importers and the command line all read days through it.

YAML hands back a `date`, a `datetime` or text (the YAML cache returns ISO
text), importers get JSON strings with or without a time, users type
YYYY-MM-DD; every reader used to have its own copy of this.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any


def parse_day(value: Any) -> date:
    """A calendar day from a `date`, a `datetime` or ISO text (`2016-04-07`, `2016-04-07T10:00:00Z`).

    Raises ValueError for anything else, with the value in the message.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
        if len(text) > 10:
            try:
                return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
            except ValueError:
                pass
    raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")


def optional_day(value: Any) -> date | None:
    """`parse_day`, or None for a missing or unreadable value (booleans mean 'known, no date')."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return parse_day(value)
    except ValueError:
        return None
