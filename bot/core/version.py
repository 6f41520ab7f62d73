"""Dotted numeric versions as distributions and projects write them, ordered by `packaging`.

The project reads the shapes PEP 440 does not know first: tuples such as
(1, 2, 3), int-encoded versions (libvirt's 9011 = 0.9.11, see `from_int`) and
distro strings, which a small normaliser cuts to their upstream release
("1:8.2.2+ds-0ubuntu1" -> "8.2.2": the Debian epoch and the packaging suffix
say nothing about the upstream API). The release numbers are then handed to
`packaging.version.Version`, which does the ordering ("6.2" == "6.2.0").
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from packaging.version import Version as _Pep440

# optional Debian/RPM epoch "1:", optional "v", then the dotted release numbers
_LEADING = re.compile(r"^\s*(?:\d+:(?=\d))?v?(\d+(?:\.\d+)*)")


def normalise(text: str) -> str | None:
    """The upstream release of a distro version string ("2.1+dfsg-2" -> "2.1"), or None."""
    m = _LEADING.match(text)
    return m.group(1) if m else None


def _show(value: object) -> str:
    """A short repr for an error message; never fails (a 5,000-digit int has no decimal repr)."""
    try:
        text = repr(value)
    except ValueError:
        return "(a number too large to show)"
    return text if len(text) <= 60 else text[:57] + "..."


def _part(p: object) -> int:
    """One release number: an int (not a bool, not a float) or a string of digits."""
    if isinstance(p, int) and not isinstance(p, bool):
        return p
    if isinstance(p, str) and p.isascii() and p.isdigit() and len(p) <= 20:
        return int(p)
    raise ValueError(f"not a version part: {_show(p)}")


class Version:
    """A dotted version; compares with missing trailing parts as zero. Parts are ints of at most 64 bits."""

    __slots__ = ("parts", "text", "_key")

    def __init__(self, parts: tuple[int, ...], text: str | None = None) -> None:
        if not parts or any(not isinstance(p, int) or isinstance(p, bool) or p < 0 or p.bit_length() > 64
                            for p in parts):
            raise ValueError(f"not a version: {_show(parts)}")
        self.parts = tuple(parts)
        self.text = text if text is not None else ".".join(str(p) for p in parts)
        self._key: _Pep440 | None = None

    @classmethod
    def parse(cls, value: str | int | tuple | list | Version) -> Version:
        """Accept "1.2.3", "v1.2", "2.1+dfsg" (upstream part only), (1, 2, 3); ValueError otherwise."""
        if isinstance(value, Version):
            return value
        if isinstance(value, (tuple, list)):
            return cls(tuple(_part(p) for p in value))
        if isinstance(value, bool):
            raise ValueError(f"not a version: {_show(value)}")
        if isinstance(value, int):
            return cls((value,))
        if not isinstance(value, str):
            raise ValueError(f"not a version: {_show(value)}")
        hit = _PARSED.get(value)
        if hit is not None and type(hit) is cls:
            return hit
        release = normalise(value)
        if release is None:
            raise ValueError(f"not a version: {value[:60]!r}")
        made = cls(tuple(_part(p) for p in release.split(".")), release)
        if len(_PARSED) < 4096 and len(value) <= 64:
            _PARSED[value] = made  # the matrix repeats its few hundred versions: one object (and ordering key) each
        return made

    @classmethod
    def from_int(cls, number: int, base: int = 1000, width: int = 3) -> Version:
        """Decode an int-encoded version, e.g. libvirt's 9011 -> 0.9.11 (base 1000)."""
        if number < 0:
            raise ValueError(f"negative version number: {number}")
        parts = []
        for _ in range(width):
            parts.append(number % base)
            number //= base
        if number:
            raise ValueError(f"version number too large for {width} parts of base {base}")
        return cls(tuple(reversed(parts)))

    def pep440(self) -> _Pep440:
        """The `packaging` version that orders this one (built on first comparison)."""
        key = self._key
        if key is None:
            # imported on first use: with the `typing` it pulls in, ~3.5 ms of a dry-run that compares nothing
            from packaging.version import Version as Pep440

            key = self._key = Pep440(".".join(map(str, self.parts)))
        return key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.parts == other.parts or self.pep440() == other.pep440()

    # All four orderings spelled out: the judgement compares thousands of pairs per report.
    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.pep440() < other.pep440()

    def __le__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.pep440() <= other.pep440()

    def __gt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.pep440() > other.pep440()

    def __ge__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.pep440() >= other.pep440()

    def __hash__(self) -> int:
        return hash(self.pep440())

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


_PARSED: dict[str, Version] = {}


def vstr(v: Version | None) -> str | None:
    return None if v is None else str(v)
