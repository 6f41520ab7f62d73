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
    from typing import Any
    from collections.abc import Callable

from bot.data.limits import SETTINGS, limits
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


def byte_limit(kind: str) -> int:
    """The size limit for a YAML file of `kind` (matrix files are larger than the rest)."""
    lim = limits()
    return lim.matrix_bytes if kind.startswith("matrix") else lim.config_bytes


def check_size(size: int, name: str, kind: str) -> None:
    """Refuse a file over its kind's limit before anything reads it."""
    cap = byte_limit(kind)
    if size > cap:
        var = SETTINGS["matrix_bytes" if kind.startswith("matrix") else "config_bytes"]
        raise MinbumpError(f"{name}: not read: too large ({size} bytes; the limit is {cap}, setting {var})")


def _check_aliases(root: Any, name: str) -> None:
    """Refuse alias bombs and recursive aliases, walking the composed node graph once.

    Aliases are shared nodes at this point, so nothing has been expanded yet;
    what they would expand to is counted here without expanding it.
    """
    import yaml

    lim = limits()
    size: dict[int, int] = {}  # id(node) -> nodes once expanded; -1 while being walked
    aliases = 0
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            if key in size:
                aliases += 1
            size[key] = 1
            continue
        children = [x for pair in node.value for x in pair] if isinstance(node, yaml.MappingNode) \
            else list(node.value)
        if done:
            size[key] = 1 + sum(size[id(c)] for c in children)
            continue
        if key in size:
            if size[key] < 0:
                raise MinbumpError(f"{name}:{node.start_mark.line + 1}: refused: a YAML alias refers to itself")
            aliases += 1
            continue
        size[key] = -1
        stack.append((node, True))
        stack.extend((c, False) for c in children)
    if aliases > lim.yaml_aliases:
        raise MinbumpError(f"{name}: refused: {aliases} YAML aliases, over the limit of {lim.yaml_aliases} "
                           f"(setting {SETTINGS['yaml_aliases']})")
    extra = size[id(root)] - len(size)
    if extra > lim.yaml_alias_nodes:
        raise MinbumpError(f"{name}: refused: YAML aliases expand to {extra} more nodes, over the limit of "
                           f"{lim.yaml_alias_nodes} (setting {SETTINGS['yaml_alias_nodes']})")


def compose_yaml(text: str, name: str) -> Any:
    """The node tree of `text` (marks kept, aliases shared and checked), or None when it is empty."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is not None and "*" in text:  # no `*`, no alias: skip the walk
            _check_aliases(node, name)
        return node
    finally:
        loader.dispose()


def parse_yaml(text: str, name: str, kind: str = "yaml") -> Any:
    """Safe-load YAML (C loader when present); a syntax error or a refused file is a one-line MinbumpError.

    The size limit of `kind` and the alias limits are checked before anything
    is constructed, so an alias bomb never expands.
    """
    import yaml

    check_size(len(text), name, kind)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "*" in text:  # no `*`, no alias: skip the walk
            _check_aliases(node, name)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MinbumpError(f"{name}{where}: not valid YAML: {problem}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. an impossible date, 2026-13-01
        raise MinbumpError(f"{name}: not valid YAML: {exc}") from None
    except RecursionError:
        raise MinbumpError(f"{name}: refused: YAML nested too deeply") from None
    finally:
        loader.dispose()


def cached_yaml(data: bytes, name: str, kind: str = "yaml",
                check: Callable[[Any, str], None] | None = None) -> Any:
    """Parse `data`; `check(parsed, text)` runs only on a cache miss and may raise to refuse it.

    Dates come back as ISO strings from the cache and as `date` on a miss;
    consumers accept both. A file over its kind's size limit is refused before
    it is hashed or parsed (see bot.data.limits).
    """
    check_size(len(data), name, kind)
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
    parsed = parse_yaml(text, name, kind)
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
