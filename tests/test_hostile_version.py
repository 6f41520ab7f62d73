"""Version parsing refuses what is not a version with ValueError; ordering is packaging's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version as Pep440

from bot.core.version import Version, normalise


@pytest.mark.parametrize("value", [[None], [[]], [1.5], (2, 1.0), [True], [1, None], [-1], [], (),
                                   ["1", "x"], [b"1"], [{}], None, 1.5, "", "abc", [" 1"], ["١"],
                                   [2 ** 64], (1, 16 ** 5000), "1." + "9" * 5000, [16 ** 5000]])
def test_parse_refuses_non_versions_with_value_error(value):
    with pytest.raises(ValueError):
        Version.parse(value)


def test_refusal_message_of_a_huge_part_is_short():
    with pytest.raises(ValueError, match=r"^not a version: \(a number too large to show\)$"):
        Version.parse((16 ** 5000,))
    with pytest.raises(ValueError, match=r"^not a version: \(1, 18446744073709551616\)$"):
        Version.parse((1, 2 ** 64))


def test_parse_keeps_its_accepted_shapes():
    assert Version.parse([1, 2, 3]).parts == (1, 2, 3)
    assert Version.parse(("6", "2")).parts == (6, 2)
    assert Version.parse(9).parts == (9,)
    assert Version.parse("v1.2").parts == (1, 2)
    assert Version.parse(" 0.12.1.2 ").parts == (0, 12, 1, 2)
    assert Version.parse("2.1+dfsg-2ubuntu1").parts == (2, 1)
    assert str(Version.parse("2.1+dfsg-2ubuntu1")) == "2.1"


def test_distro_normaliser_drops_epoch_and_packaging_suffix():
    assert normalise("1:2.5+dfsg-5ubuntu10.51+esm2") == "2.5"
    assert normalise("7.0.0-3ubuntu1~cloud0") == "7.0.0"
    assert normalise("4.5.0-10.el7_3.4") == "4.5.0"
    assert normalise("not a version") is None
    assert Version.parse("1:8.2.2+ds-0ubuntu1") == Version.parse("8.2.2")


def test_ordering_is_packagings():
    assert Version.parse("6.2") == Version.parse("6.2.0")
    assert hash(Version.parse("6.2")) == hash(Version.parse("6.2.0.0"))
    assert Version.parse("0.12.1.2") > Version.parse("0.12.1")
    assert Version.parse("10.0") > Version.parse("9.10")
    assert Version.parse("2.1+dfsg") == Version.parse("2.1")
    assert Version.parse("6.2").pep440() == Pep440("6.2.0")


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=6), st.lists(st.integers(0, 10**6), min_size=1, max_size=6))
def test_order_agrees_with_packaging(a, b):
    va, vb = Version.parse(a), Version.parse(b)
    pa, pb = Pep440(".".join(map(str, a))), Pep440(".".join(map(str, b)))
    assert (va < vb) == (pa < pb) and (va == vb) == (pa == pb)
