"""Record classes declared like dataclasses, without `dataclasses` or `typing`.

On a small machine `import dataclasses` costs ~45 ms (it pulls in `inspect`)
and `typing` ~30 ms, while the dry-run's whole budget is a few times the git
work. A `Record` subclass lists its fields as annotations, with defaults as
class attributes; the metaclass turns them into `__slots__` and one shared
`__init__`, with no code generation.
"""

from __future__ import annotations

_MISSING = object()

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar, dataclass_transform

    _T = TypeVar("_T")

    def factory(make: Callable[[], _T]) -> _T:
        """To a type checker the default is what `make` returns."""
        ...
else:
    def dataclass_transform(**_options):
        return lambda cls: cls

    class factory:
        """A default built fresh for each record, like `field(default_factory=...)`."""

        __slots__ = ("make",)

        def __init__(self, make) -> None:
            self.make = make


@dataclass_transform()  # type checkers see each Record subclass as a dataclass
class _RecordMeta(type):
    def __new__(mcls, name, bases, ns):
        own = [f for f in ns.get("__annotations__", {}) if not f.startswith("_")]
        fields: list[str] = []
        defaults: dict = {}
        for base in bases:
            fields += [f for f in getattr(base, "_fields", ()) if f not in fields]
            defaults.update(getattr(base, "_defaults", {}))
        for f in own:
            if f in ns:
                value = ns.pop(f)
                defaults[f] = factory(value) if value is list or value is dict or value is set else value
            if f not in fields:
                fields.append(f)
        ns["__slots__"] = tuple(f for f in own if f not in getattr(bases[0], "_fields", ())) if bases else ()
        ns["_fields"] = tuple(fields)
        ns["_defaults"] = defaults
        return super().__new__(mcls, name, bases, ns)


class Record(metaclass=_RecordMeta):
    """Positional or keyword construction, equality and repr over the fields."""

    __slots__ = ()

    def __init__(self, *args: object, **kwargs: object) -> None:
        fields = self._fields  # type: ignore[attr-defined]
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} fields, got {len(args)}")
        for name, value in zip(fields, args):
            object.__setattr__(self, name, value)
        for name in fields[len(args):]:
            if name in kwargs:
                value = kwargs.pop(name)
            else:
                value = self._defaults.get(name, _MISSING)  # type: ignore[attr-defined]
                if value is _MISSING:
                    raise TypeError(f"{type(self).__name__} needs {name!r}")
                if type(value) is factory:
                    value = value.make()
            object.__setattr__(self, name, value)
        if kwargs:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(kwargs))!r}")
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:  # by value, like a frozen dataclass; fails only for unhashable fields
        return hash((type(self).__name__,) + self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)  # type: ignore[attr-defined]
        return f"{type(self).__name__}({inner})"
