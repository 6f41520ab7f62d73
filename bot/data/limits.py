"""What a repository's files may cost to read, with defaults and environment settings.

A pull request's author controls the watched sources and a repository's
owner its config, matrix and calendar files: a 4 MB file of tuples costs
seconds and a gigabyte to parse, a YAML alias bomb expands to gigabytes.
The edges (bot.data, bot.git) check these limits before reading; the pure
core gets them passed in. Read from the environment once, at first use.
"""

from __future__ import annotations

import os

from bot.core.records import Record
from bot.errors import MinbumpError

MiB = 1024 * 1024


class Limits(Record):
    config_bytes: int = 1 * MiB      # .github/minbump.yml, presets, calendar files
    matrix_bytes: int = 8 * MiB      # policy/matrix.yaml and a project's matrix overrides
    yaml_aliases: int = 100          # alias references (`*name`) in one YAML file
    yaml_alias_nodes: int = 10_000   # nodes those aliases may add when expanded
    source_bytes: int = 2 * MiB      # one watched source file at one ref
    watch_patterns: int = 200        # entries in `watch` (each is matched against every path)


SETTINGS = {
    "config_bytes": "MINBUMP_MAX_CONFIG_BYTES",
    "matrix_bytes": "MINBUMP_MAX_MATRIX_BYTES",
    "yaml_aliases": "MINBUMP_MAX_YAML_ALIASES",
    "yaml_alias_nodes": "MINBUMP_MAX_YAML_ALIAS_NODES",
    "source_bytes": "MINBUMP_MAX_SOURCE_BYTES",
    "watch_patterns": "MINBUMP_MAX_WATCH_PATTERNS",
}

_LIMITS: Limits | None = None


def from_env(env: dict[str, str] | os._Environ[str]) -> Limits:
    """Limits from `env`; a setting that is not a whole number >= 0 is a one-line error."""
    values: dict[str, int] = {}
    for field, var in SETTINGS.items():
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[field] = int(raw.strip())
        except ValueError:
            raise MinbumpError(f"{var}={raw[:40]!r}: not a whole number") from None
        if values[field] < 0:
            raise MinbumpError(f"{var}={raw[:40]!r}: must not be negative")
    return Limits(**values)


def limits() -> Limits:
    """The process's limits (the environment's settings over the defaults)."""
    global _LIMITS
    if _LIMITS is None:
        _LIMITS = from_env(os.environ)
    return _LIMITS


def reset() -> None:
    """Read the environment again on next use (tests change the settings)."""
    global _LIMITS
    _LIMITS = None
