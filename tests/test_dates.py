"""The one date converter every reader of days goes through (policy files, importers, options)."""

from __future__ import annotations

from datetime import date, datetime, UTC

import pytest

from bot.core.dates import optional_day, parse_day


@pytest.mark.parametrize("value, want", [
    ("2016-04-07", date(2016, 4, 7)),
    (" 2016-04-07 ", date(2016, 4, 7)),
    ("2016-04-07T10:00:00+00:00", date(2016, 4, 7)),
    ("2016-04-07T23:30:00Z", date(2016, 4, 7)),
    ("2016-04-07 10:00:00", date(2016, 4, 7)),
    (date(2016, 4, 7), date(2016, 4, 7)),
    (datetime(2016, 4, 7, 23, 59, tzinfo=UTC), date(2016, 4, 7)),
])
def test_parse_day_reads_what_yaml_json_and_users_give(value, want):
    got = parse_day(value)
    assert got == want and type(got) is date


@pytest.mark.parametrize("value", ["2016-13-01", "2016-04-07garbage", "yesterday", "", None, 20160407, True])
def test_parse_day_refuses_anything_else_naming_it(value):
    with pytest.raises(ValueError, match="is not a date"):
        parse_day(value)


@pytest.mark.parametrize("value, want", [(None, None), (True, None), (False, None), ("soon", None),
                                         ("2024-06-30", date(2024, 6, 30))])
def test_optional_day_is_none_for_missing_or_unknown(value, want):
    assert optional_day(value) == want


def test_every_reader_uses_it():
    """calendar, matrix and the importers no longer carry their own copy."""
    import inspect

    import bot.core.calendar as cal
    import bot.core.matrix as mx
    import bot.data.importers as imp

    assert cal._day is parse_day and mx._day is optional_day
    assert "parse_day(" in inspect.getsource(imp._as_date)
    for mod in (cal, mx, imp):
        assert "fromisoformat" not in inspect.getsource(mod)
