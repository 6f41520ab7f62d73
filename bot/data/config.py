"""The repository's `.github/minbump.yml`, merged over an optional preset.

The bot reads it from the base branch only: a pull request must not be able
to loosen its own check.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

from bot.data.limits import SETTINGS, limits
from bot.data.yamlcache import cached_yaml
from bot.errors import ConfigError
from bot.data.paths import policy_file, policy_names, read_bytes
from bot.core.matrix import DEFAULT_MAX_DATA_AGE_DAYS
from bot.core.config import DEFAULT_COMPONENTS, DEFAULT_HYPERVISORS, DEFAULT_STRICTNESS, ERROR_RULES, RULES, Config

def preset_names() -> list[str]:
    return policy_names("presets", ".yml")


def _validate(kind: str, name: str):
    def check(data: Any, text: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{name}:1: the file must be a mapping of keys")
        _check_watch_count(data.get("watch"), name)  # before the schema walks a huge list
        from bot.data.schema import validate_data  # jsonschema is slow to import: only on a cache miss

        errors = validate_data(data, kind, text, name)
        if errors:
            e = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ConfigError(f"{e.file}:{e.line}: {e.key_path or '(top)'}: {e.message}{more}")
    return check


def _check_watch_count(watch: Any, origin: str) -> None:
    """Every watch glob is matched against every path: a huge list would spend the box."""
    cap = limits().watch_patterns
    if isinstance(watch, list) and len(watch) > cap:
        raise ConfigError(f"{origin}: watch: not read: too large ({len(watch)} patterns; the limit is {cap}, "
                          f"setting {SETTINGS['watch_patterns']})")


def _load_preset(name: str) -> dict:
    path = policy_file("presets", f"{name}.yml")
    if "/" in name or not os.path.isfile(path):
        raise ConfigError(f"unknown preset {name!r} (shipped: {', '.join(preset_names()) or 'none'})")
    return cached_yaml(read_bytes(path), f"preset {name}", "preset", _validate("preset", path)) or {}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if key in ("components", "hypervisors", "constants", "strictness", "int_encoding") and \
                isinstance(value, dict) and isinstance(out.get(key), dict):
            merged = dict(out[key])
            merged.update(value)
            out[key] = merged
        else:
            out[key] = value
    return out


def from_dict(data: dict, origin: str) -> Config:
    preset = data.get("preset")
    merged = _merge(_load_preset(preset), data) if preset else dict(data)
    if not merged.get("watch"):
        raise ConfigError(f"{origin}: 'watch' is required (a list of globs such as 'nova/virt/libvirt/*.py'), "
                          "or use a preset")
    watch = merged["watch"]
    if isinstance(watch, str):
        watch = [watch]
    _check_watch_count(watch, origin)
    enc = merged.get("int_encoding") or {}
    cfg = Config(
        watch=[str(w) for w in watch],
        calendar=merged.get("calendar"),
        support=merged.get("support", "standard"),
        int_base=int(enc.get("base", 1000)), int_width=int(enc.get("width", 3)),
        components={**DEFAULT_COMPONENTS, **(merged.get("components") or {})},
        hypervisors={**DEFAULT_HYPERVISORS, **(merged.get("hypervisors") or {})},
        constants={k: (v or {}) for k, v in (merged.get("constants") or {}).items()},
        strictness={**DEFAULT_STRICTNESS, **(merged.get("strictness") or {})},
        matrix=list(merged.get("matrix") or []),
        policy_files=list(merged.get("policy_files") or []),
        support_tables=[t["path"] if isinstance(t, dict) else str(t) for t in merged.get("support_tables") or []],
        max_data_age_days=int(merged.get("max_data_age_days", DEFAULT_MAX_DATA_AGE_DAYS)),
        preset=preset, origin=origin,
    )
    if cfg.support not in ("standard", "extended"):
        raise ConfigError(f"{origin}: support: must be 'standard' or 'extended', not {cfg.support!r}")
    for key, rule in cfg.strictness.items():
        allowed = ERROR_RULES if key == "error" else RULES
        if rule not in allowed:
            raise ConfigError(f"{origin}: strictness.{key}: must be one of {', '.join(allowed)}")
    return cfg


def from_text(data: bytes, origin: str) -> Config:
    parsed = cached_yaml(data, origin, "config", _validate("config", origin))
    if parsed is None:
        parsed = {}
    if not isinstance(parsed, dict):
        raise ConfigError(f"{origin}:1: the file must be a mapping of keys")
    return from_dict(parsed, origin)


def from_preset(name: str) -> Config:
    return from_dict({"preset": name}, f"preset {name}")


def from_file(path: str | Path) -> Config:
    p = str(path)
    try:
        data = read_bytes(p)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    return from_text(data, str(p))
