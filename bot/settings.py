"""Numeric settings from the environment, with a one-line error instead of a ValueError traceback."""

from __future__ import annotations

from .errors import MinbumpError


def env_float(env, name: str, default: float) -> float:
    value = env.get(name)
    if value is None or value == "":
        return float(default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MinbumpError(f"{name} must be a number, not {value!r}") from None


def env_int(env, name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return int(default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MinbumpError(f"{name} must be a whole number, not {value!r}") from None
