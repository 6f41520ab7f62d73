"""Property tests: version parsing and constant extraction hold for any input of their shape."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.extract import IntValue, Ref, scan_source
from bot.core.version import Version

parts = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=5)


def pad(a, n):
    return tuple(a) + (0,) * (n - len(a))


@given(parts)
def test_dotted_round_trip(p):
    v = Version.parse(".".join(map(str, p)))
    assert v.parts == tuple(p) and str(v) == ".".join(map(str, p))
    assert Version.parse(tuple(p)) == v


@given(parts, parts)
def test_order_matches_zero_padded_tuples(a, b):
    n = max(len(a), len(b))
    va, vb = Version.parse(tuple(a)), Version.parse(tuple(b))
    assert (va < vb) == (pad(a, n) < pad(b, n))
    assert (va == vb) == (pad(a, n) == pad(b, n))
    if va == vb:
        assert hash(va) == hash(vb)


@given(st.integers(0, 999), st.integers(0, 999), st.integers(0, 999))
def test_int_encoding(ma, mi, mc):
    assert Version.from_int(ma * 1_000_000 + mi * 1000 + mc).parts == (ma, mi, mc)


@given(parts, st.sampled_from(["+dfsg-2ubuntu1", "-1.el7", "~bpo70+1", ""]))
def test_distro_suffixes_are_ignored(p, suffix):
    assert Version.parse(".".join(map(str, p)) + suffix) == Version.parse(tuple(p))


names = st.from_regex(r"MIN_[A-Z]{3,8}(_[A-Z0-9]{2,6}){0,2}_VERSION", fullmatch=True)
noise_line = st.sampled_from([
    "import os", "x = compute(1, 2)", "def f(a):\n    return a\n", "class K:\n    MIN_IN_CLASS = (9, 9)\n",
    "# MIN_COMMENTED = (7, 7, 7)", "'''doc\nMIN_IN_STRING = (8, 8, 8)\n'''", "if True:\n    MIN_NESTED = (6, 6)\n",
    "LOG = logging.getLogger(__name__)", "",
])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(names, st.tuples(parts, st.sampled_from(["tuple", "str", "int"])), min_size=1,
                       max_size=6),
       st.lists(noise_line, max_size=12), st.randoms(use_true_random=False))
def test_extraction_finds_every_top_level_constant(consts, noise, rnd):
    lines = list(noise)
    expected = {}
    for name, (p, style) in consts.items():
        if style == "tuple":
            text, want = "(" + ", ".join(map(str, p)) + ("," if len(p) == 1 else "") + ")", Version(tuple(p))
        elif style == "str":
            text, want = '"' + ".".join(map(str, p)) + '"', Version(tuple(p))
        else:
            text, want = str(p[0]), IntValue(p[0])
        lines.insert(rnd.randint(0, len(lines)), f"{name} = {text}")
        expected[name] = want
    src = "\n".join(lines) + "\n"
    scan = scan_source(src.encode(), "m.py")
    assert not scan.errors
    got = {n: r.value for n, r in scan.constants.items()}
    assert got == expected
    # Line numbers point at the assignment.
    for n, r in scan.constants.items():
        assert src.splitlines()[r.line - 1].startswith(n + " =")


@given(names, names)
def test_references_are_kept_as_names(a, b):
    scan = scan_source(f"{a} = (1, 2)\n{b}_X = {a}\n".encode(), "m.py")
    assert scan.constants[f"{b}_X"].value == Ref(a)
