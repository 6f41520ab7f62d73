"""Read both refs' policy files for review: the config, the project's matrix files, calendar, support tables.

The judgement uses the base's policy (bot.git.gather); these readings feed
bot.core.policy_changes, which says what the head's policy changes. Every
file that fails to load or to pass its schema at head becomes an error with
its line, not an exception: a broken policy is a finding, not a crash.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from bot.core.calendar import from_data as calendar_from_data
from bot.core.config import CONFIG_PATH, Config
from bot.core.matrix import apply_override
from bot.core.policy_changes import PolicyFiles, PolicySide
from bot.data import config as configs
from bot.data.matrix import default_matrix
from bot.data.yamlcache import parse_yaml
from bot.errors import MinbumpError


def key_lines(text: str) -> dict[str, int]:
    """Key path ("strictness.unwarned_drop", "out_of_scope[0]") -> 1-based line, for every node."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return {}
    out: dict[str, int] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                sub = f"{path}.{k.value}" if path else str(k.value)
                out.setdefault(sub, k.start_mark.line + 1)
                walk(v, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                sub = f"{path}[{i}]"
                out.setdefault(sub, v.start_mark.line + 1)
                walk(v, sub)

    if root is not None:
        walk(root, "")
    return out


def _split(message: str, path: str) -> tuple[int | None, str]:
    """`file:12: message` -> (12, message)."""
    rest = message
    for prefix in (f"{path}:",):
        if rest.startswith(prefix):
            rest = rest[len(prefix):]
            num, _, tail = rest.partition(":")
            if num.strip().isdigit():
                return int(num), tail.strip()
            return None, rest.strip()
    return None, rest


def _load(data: bytes, path: str, kind: str, side: PolicySide) -> Any:
    """Parse and schema-check one YAML file; problems land in `side.errors`. The parsed data, or None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        side.errors.append({"file": path, "line": None, "subject": "file", "message": "not UTF-8 text"})
        return None
    try:
        parsed = parse_yaml(text, path, kind)  # the size limit of its kind (matrix files may be larger)
    except MinbumpError as exc:
        line, msg = _split(str(exc), path)
        subject = "YAML"
        if line is None:  # an impossible date, 2026-13-01: the schema module finds its line
            from bot.data.schema import bad_scalar

            bad = bad_scalar(text)
            if bad is not None:
                line, keys, value = bad
                subject = ".".join(str(k) for k in keys) or subject
                msg = f"{value!r} is not a real date ({msg.split('not valid YAML: ', 1)[-1]})"
        side.errors.append({"file": path, "line": line, "subject": subject, "message": msg})
        return None
    side.lines[path] = key_lines(text)
    if parsed is None:
        parsed = {}
    from bot.data import schema  # jsonschema: only when a policy file changed

    errors = schema.validate_data(parsed, kind, text, path)
    for e in errors:
        side.errors.append({"file": path, "line": e.line, "subject": e.key_path, "message": e.message})
    return None if errors else parsed


def _side(g: Any, sha: str, fallback: Config, *, full: bool) -> PolicySide:
    side = PolicySide()
    cfg: Config | None = fallback
    data = g.read(sha, CONFIG_PATH) if full else None
    side.config_present = data is not None or not full
    if data is not None:
        raw = _load(data, CONFIG_PATH, "config", side)
        cfg = None
        if isinstance(raw, dict):
            try:
                cfg = configs.from_dict(raw, CONFIG_PATH)
            except MinbumpError as exc:
                line, msg = _split(str(exc), CONFIG_PATH)
                key = next((k for k in ("preset", "watch", "support", "strictness") if k in msg), "config")
                line = line or side.lines[CONFIG_PATH].get(key)
                side.errors.append({"file": CONFIG_PATH, "line": line, "subject": key, "message": msg})
        elif raw is not None:
            side.errors.append({"file": CONFIG_PATH, "line": 1, "subject": "(top)",
                                "message": "the file must be a mapping of keys"})
    side.config = cfg
    use = cfg or fallback
    for path in use.support_tables:
        text = g.read(sha, path)
        if text is not None:
            side.tables[path] = text.decode("utf-8", "replace")
    if not full:
        return side
    matrix = default_matrix()
    for path in use.matrix:
        data = g.read(sha, path)
        if data is None:
            side.errors.append({"file": path, "line": None, "subject": "matrix",
                                "message": f"{path} is named under matrix: but does not exist"})
            continue
        raw = _load(data, path, "matrix", side)
        if not isinstance(raw, dict):
            continue
        try:
            apply_override(matrix, raw, path)
        except (KeyError, TypeError, ValueError) as exc:
            side.errors.append({"file": path, "line": None, "subject": "matrix",
                                "message": f"does not load as a matrix override ({exc})"})
            continue
        side.overrides[path] = raw
    cal = use.calendar_path()
    if cal:
        data = g.read(sha, cal)
        if data is None:
            side.errors.append({"file": cal, "line": None, "subject": "calendar",
                                "message": f"{cal} is named as calendar.path but does not exist"})
        else:
            raw = _load(data, cal, "calendar", side)
            if isinstance(raw, dict):
                try:
                    calendar_from_data(raw, cal)
                except MinbumpError as exc:
                    side.errors.append({"file": cal, "line": None, "subject": "calendar", "message": str(exc)})
    side.watch_files = [e.path for e in g.files(sha, use.watch)] if cfg is not None else []
    return side


def read_policy(g: Any, base_sha: str, head_sha: str, cfg: Config,
                changed: list[tuple[str, str, str | None]]) -> PolicyFiles:
    """Both refs' policy files; read in full only when the change touches one (`changed` from the gatherer)."""
    mine = set(cfg.policy_paths())
    full = any(c[1] in mine or c[2] in mine for c in changed)
    base = _side(g, base_sha, cfg, full=full)
    head = _side(g, head_sha, cfg, full=full)
    files = PolicyFiles(config_file=CONFIG_PATH, base=base, head=head, data=default_matrix())
    if full:
        paths = set(mine)
        for side in (base, head):
            if side.config is not None:
                paths |= set(side.config.policy_paths())
        for path in sorted(paths):
            old, new = g.object(f"{base_sha}:{path}"), g.object(f"{head_sha}:{path}")
            if (old and old[0]) != (new and new[0]):
                files.changed.append(path)
    return files


def support_table_errors(config_file: str) -> list:
    """`minbump validate`: each `support_tables` entry of a repository config exists and holds a readable table.

    Paths are relative to the repository root (the folder holding `.github/`).
    """
    import os

    from bot.core import tables
    from bot.data.schema import Error

    try:
        with open(config_file, "rb") as fh:
            text = fh.read().decode("utf-8")
        raw = parse_yaml(text, config_file)
    except (OSError, UnicodeDecodeError, MinbumpError):
        return []  # validate_file reports these
    if not isinstance(raw, dict) or not isinstance(raw.get("support_tables"), list):
        return []
    where = os.path.dirname(os.path.abspath(config_file))
    root = os.path.dirname(where) if os.path.basename(where) == ".github" else where
    lines = key_lines(text)
    out = []
    for i, item in enumerate(raw["support_tables"]):
        rel = item.get("path") if isinstance(item, dict) else item
        if not isinstance(rel, str):
            continue  # the schema reports it
        key = f"support_tables[{i}]"
        path = os.path.join(root, rel)
        try:
            with open(path, "rb") as fh:
                doc = fh.read().decode("utf-8", "replace")
        except OSError:
            out.append(Error(config_file, lines.get(key), key, f"{rel} does not exist"))
            continue
        try:
            found = tables.parse(doc, rel)
        except tables.TableError as exc:
            out.append(Error(config_file, lines.get(key), key, f"{rel}: {exc}"))
            continue
        if not found:
            out.append(Error(config_file, lines.get(key), key, f"{rel} holds no table minbump can read"))
    return out
