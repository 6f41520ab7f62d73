"""One structured JSON log line per step, with secrets scrubbed.

Why: an operator greps one delivery id across web and worker; and no token,
JWT, private key or webhook secret may ever reach a log, even inside an error
message from a library (so every registered secret is replaced before output).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

_LOGGER = logging.getLogger("minbump")
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_ORDERED: tuple[str, ...] = ()  # longest first, rebuilt on register: every log line reads it, unlocked


def register_secret(value: str | None) -> None:
    """Remember a value that must never appear in a log line (min 6 chars to avoid noise)."""
    global _ORDERED
    if value and len(value) >= 6:
        with _LOCK:
            _SECRETS.add(value)
            _ORDERED = tuple(sorted(_SECRETS, key=len, reverse=True))


def scrub(text: str) -> str:
    """Replace every registered secret in ``text``."""
    for s in _ORDERED:
        if s in text:
            text = text.replace(s, "***")
    return text


def setup(level: int = logging.INFO) -> None:
    """Send ``minbump`` log lines to stderr once (idempotent)."""
    if not any(getattr(h, "_minbump", False) for h in _LOGGER.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._minbump = True  # type: ignore[attr-defined]
        _LOGGER.addHandler(handler)
    _LOGGER.setLevel(level)
    _LOGGER.propagate = True


def log(step: str, level: int = logging.INFO, **fields: Any) -> None:
    """Emit ``{"ts":..., "step": step, **fields}`` as one JSON line."""
    record = {"ts": round(time.time(), 3), "step": step}
    record.update(fields)
    line = json.dumps(record, default=str, sort_keys=False)
    _LOGGER.log(level, scrub(line))


def error_text(exc: BaseException) -> str:
    """A one-line, scrubbed description of an exception for logs and failed-job records."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return scrub(f"{type(exc).__name__}: {msg}"[:500])
