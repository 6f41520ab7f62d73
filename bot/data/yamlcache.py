"""Parsed YAML cached as JSON, keyed by content hash.

Even libyaml costs tens of milliseconds to import and parse the matrix; the
dry-run has a budget of a few times the git work itself, so files that rarely
change are parsed once per content.
"""

from __future__ import annotations

import json
import os
from datetime import date

try:  # the builtin module: hashlib's OpenSSL binding costs ~15 ms to import
    from _sha1 import sha1
except ImportError:  # pragma: no cover
    from hashlib import sha1

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

from bot.errors import MinbumpError


def cache_dir() -> str:
    base = os.environ.get("MINBUMP_CACHE_DIR")
    if base:
        return base
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "minbump")


def _json_default(o: Any) -> Any:
    if isinstance(o, date):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def parse_yaml(text: str, name: str) -> Any:
    """Safe-load YAML (C loader when present); a syntax error becomes a one-line MinbumpError."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MinbumpError(f"{name}{where}: not valid YAML: {problem}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. an impossible date, 2026-13-01
        raise MinbumpError(f"{name}: not valid YAML: {exc}") from None


def cached_yaml(data: bytes, name: str, kind: str = "yaml",
                check: Callable[[Any, str], None] | None = None) -> Any:
    """Parse `data`; `check(parsed, text)` runs only on a cache miss and may raise to refuse it.

    Dates come back as ISO strings from the cache and as `date` on a miss;
    consumers accept both.
    """
    digest = sha1(kind.encode() + b"\0" + data).hexdigest()
    folder = cache_dir()
    path = os.path.join(folder, f"{kind}-{digest}.json")
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read())
    except (OSError, ValueError):
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MinbumpError(f"{name}: not UTF-8 text") from None
    parsed = parse_yaml(text, name)
    if check is not None:
        check(parsed, text)
    try:
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(parsed, default=_json_default))
        os.replace(tmp, path)
    except (OSError, TypeError):
        pass  # an unwritable cache costs speed, never correctness
    return parsed
