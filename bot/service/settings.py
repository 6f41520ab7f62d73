"""The web side's settings, read from the environment once, at start.

Why one frozen object: the webhook path must not consult ``os.environ`` per
request, and a bad value must stop the process at start with one line
(``minbump: NAME must be ...``, exit 2), not fail the first delivery.

The queue, job and GitHub modules still read their own knobs from
:attr:`Settings.env` (the same snapshot) with :func:`env_int` / :func:`env_float`,
the one number reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from collections.abc import Callable, Mapping

from bot.errors import MinbumpError

N = TypeVar("N", int, float)

MAX_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
BODY_MEMORY = 64 * 1024 * 1024  # bodies one web process reads at once (GitHub's are tens of KB)
READ_TIMEOUT = 30.0  # seconds a client may take to send a request (``minbump serve``)
WORKER_POLL = 0.5  # the embedded worker's queue poll when no submit wakes it


def _number(env: Mapping[str, Any], name: str, default: N, cast: Callable[[Any], N], what: str,
            minimum: N | None = None) -> N:
    value = env.get(name)
    if value is None or value == "":
        return cast(default)
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise MinbumpError(f"{name} must be {what}, not {value!r}") from None
    if minimum is not None and not number >= minimum:  # also refuses NaN
        raise MinbumpError(f"{name} must be at least {minimum}, not {value!r}")
    return number


def env_float(env: Mapping[str, Any], name: str, default: float, minimum: float | None = None) -> float:
    """``env[name]`` as a number (``default`` when unset); one-line MinbumpError when it is not one."""
    return _number(env, name, default, float, "a number", minimum)


def env_int(env: Mapping[str, Any], name: str, default: int, minimum: int | None = None) -> int:
    """``env[name]`` as a whole number (``default`` when unset); one-line MinbumpError otherwise."""
    return _number(env, name, default, int, "a whole number", minimum)


@dataclass(frozen=True)
class Settings:
    """What the web process needs (docs/DEPLOY.md describes each variable)."""

    webhook_secret: str = field(repr=False)  # WEBHOOK_SECRET (required)
    app_id: int | None = None  # APP_ID: App mode; whose check suites are ours
    max_body: int = MAX_BODY  # MINBUMP_MAX_BODY: larger deliveries get 413 before they are read
    body_memory: int = BODY_MEMORY  # MINBUMP_BODY_MEMORY: past it, more bodies at once get 503 unread
    read_timeout: float = READ_TIMEOUT  # MINBUMP_READ_TIMEOUT: a silent client's socket is closed
    data_dir: Path = Path(".minbump-data")  # MINBUMP_DATA_DIR
    redis_url: str = ""  # REDIS_URL: Redis mode when set
    worker_poll: float = WORKER_POLL  # MINBUMP_WORKER_POLL
    # The snapshot every other module's from_env reads (queue, job, GitHub settings).
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read and check every web setting; MinbumpError (one line) for a missing or bad one."""
        from bot.service.queue import data_dir

        snapshot = MappingProxyType(dict(env))
        secret = snapshot.get("WEBHOOK_SECRET") or ""
        if not secret:
            raise MinbumpError("WEBHOOK_SECRET is not set; the service verifies every delivery with it")
        app_id = snapshot.get("APP_ID") or ""
        return cls(
            webhook_secret=secret,
            # A malformed APP_ID is reported by the GitHub settings (bot.service.github) at start.
            app_id=int(app_id) if re.fullmatch(r"[0-9]{1,18}", app_id) else None,
            max_body=env_int(snapshot, "MINBUMP_MAX_BODY", MAX_BODY, minimum=1),
            body_memory=env_int(snapshot, "MINBUMP_BODY_MEMORY", BODY_MEMORY, minimum=1),
            read_timeout=env_float(snapshot, "MINBUMP_READ_TIMEOUT", READ_TIMEOUT, minimum=0.1),
            data_dir=data_dir(snapshot),
            redis_url=snapshot.get("REDIS_URL") or "",
            worker_poll=env_float(snapshot, "MINBUMP_WORKER_POLL", WORKER_POLL, minimum=0.001),
            env=snapshot,
        )
