"""Numeric settings from the environment, with a one-line error instead of a ValueError traceback."""

from __future__ import annotations

from bot.errors import MinbumpError


def _number(env, name: str, default, cast, what: str):
    value = env.get(name)
    if value is None or value == "":
        return cast(default)
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise MinbumpError(f"{name} must be {what}, not {value!r}") from None


def env_float(env, name: str, default: float) -> float:
    return _number(env, name, default, float, "a number")


def env_int(env, name: str, default: int) -> int:
    return _number(env, name, default, int, "a whole number")
