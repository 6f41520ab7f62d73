"""Shipped release calendars (policy/calendars/*.yaml)."""

from __future__ import annotations

import os

from bot.core.calendar import Calendar, from_data
from bot.data.paths import policy_file, policy_names, read_bytes
from bot.data.yamlcache import cached_yaml
from bot.errors import ConfigError


def shipped(name: str) -> Calendar:
    path = policy_file("calendars", f"{name}.yaml")
    if "/" in name or not os.path.isfile(path):
        known = ", ".join(policy_names("calendars", ".yaml"))
        raise ConfigError(f"unknown calendar {name!r} (shipped: {known})")
    return from_data(cached_yaml(read_bytes(path), path, "calendar") or {}, name)
