"""Dotted numeric versions as distributions and projects write them.

packaging.version is PEP 440 and rejects or reorders strings such as
"0.12.1.2" or "2.1+dfsg"; distro versions need plain numeric comparison where
"6.2" equals "6.2.0".
"""

from __future__ import annotations

import re
from functools import total_ordering

_LEADING = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")


@total_ordering
class Version:
    """A dotted version; compares with missing trailing parts as zero."""

    __slots__ = ("parts", "text")

    def __init__(self, parts: tuple[int, ...], text: str | None = None) -> None:
        if not parts or any((not isinstance(p, int)) or p < 0 for p in parts):
            raise ValueError(f"not a version: {parts!r}")
        self.parts = tuple(parts)
        self.text = text if text is not None else ".".join(str(p) for p in parts)

    @classmethod
    def parse(cls, value: "str | int | tuple | list | Version") -> "Version":
        """Accept "1.2.3", "v1.2", "2.1+dfsg" (upstream part only), (1, 2, 3)."""
        if isinstance(value, Version):
            return value
        if isinstance(value, (tuple, list)):
            return cls(tuple(int(p) for p in value))
        if isinstance(value, bool):
            raise ValueError(f"not a version: {value!r}")
        if isinstance(value, int):
            return cls((value,))
        if not isinstance(value, str):
            raise ValueError(f"not a version: {value!r}")
        m = _LEADING.match(value)
        if not m:
            raise ValueError(f"not a version: {value!r}")
        return cls(tuple(int(p) for p in m.group(1).split(".")), m.group(1))

    @classmethod
    def from_int(cls, number: int, base: int = 1000, width: int = 3) -> "Version":
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

    def _key(self) -> tuple[int, ...]:
        parts = list(self.parts)
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        return tuple(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: "Version") -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        a, b = self.parts, other.parts
        n = max(len(a), len(b))
        return a + (0,) * (n - len(a)) < b + (0,) * (n - len(b))

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def vstr(v: "Version | None") -> str | None:
    return None if v is None else str(v)
