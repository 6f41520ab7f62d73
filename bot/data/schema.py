"""Validate policy and configuration files against the shipped JSON Schemas.

Errors point at the YAML line a maintainer has to edit: each jsonschema error's
path is looked up in the node tree `yaml.compose` builds, which keeps marks.
jsonschema is imported here only, so the dry-run path never pays for it
unless a configuration file has to be checked.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from collections.abc import Iterable

from bot.errors import MinbumpError
from bot.data.paths import policy_dir

KINDS = ("matrix", "calendar", "config", "preset", "facts")


@dataclass(frozen=True)
class Error:
    """One problem, printed as `file:line: key.path: message`."""

    file: str
    line: int | None
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key_path}: {self.message}" if self.key_path else f"{where}: {self.message}"


# ------------------------------------------------------------ schemas ---

@cache
def load_schema(kind: str) -> dict:
    if kind not in KINDS:
        raise MinbumpError(f"unknown file kind {kind!r} (one of {', '.join(KINDS)})")
    path = policy_dir() / "schema" / f"{kind}.schema.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MinbumpError(f"{path}: cannot load schema: {exc}") from None


@cache
def _validator(kind: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(kind))


# --------------------------------------------------------- data prep ---

def _jsonable(value: Any) -> Any:
    """YAML gives dates (and sometimes non-string keys); the schemas speak JSON."""
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else _key_text(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _key_text(key: Any) -> str:
    if isinstance(key, date):
        return key.isoformat()
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    return str(key)


# ---------------------------------------------------------- line marks ---

def _compose(text: str | None) -> Any:
    """The node tree for line numbers; None when there is none (or the file's aliases were refused)."""
    if not text:
        return None
    import yaml

    from bot.data.yamlcache import compose_yaml

    try:
        return compose_yaml(text, "<yaml>")
    except (yaml.YAMLError, MinbumpError):
        return None


def line_of(root: Any, path: Iterable[Any]) -> int | None:
    """1-based line of the deepest node on `path` (a mapping key's own line when the path ends on it)."""
    import yaml

    node, line = root, None
    if node is None:
        return None
    line = node.start_mark.line + 1
    for step in path:
        if isinstance(node, yaml.MappingNode):
            for knode, vnode in node.value:
                if str(knode.value) == str(step):
                    line = knode.start_mark.line + 1
                    node = vnode
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _key_path(path: Iterable[Any]) -> str:
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += ("." if out else "") + str(step)
    return out


# ------------------------------------------------------------- messages ---

def _short(value: Any, limit: int = 50) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number",
               bool: "true/false", type(None): "null"}


def _describe(err: Any) -> tuple[list[Any], str]:
    """(extra path steps, one-line message) for a jsonschema error."""
    v = err.validator
    inst = err.instance
    sch = err.schema if isinstance(err.schema, dict) else {}
    if "propertyNames" in err.schema_path:
        return [inst], f"key {_short(inst)} is not {sch.get('description') or 'allowed here'}"
    if v == "required":
        missing = [k for k in err.validator_value if isinstance(inst, dict) and k not in inst]
        return [], f"missing required key {', '.join(repr(k) for k in missing) or err.message}"
    if v == "additionalProperties" and isinstance(inst, dict):
        known = list((sch.get("properties") or {}).keys())
        extras = [k for k in inst if k not in known]
        if extras and known:
            k = extras[0]
            hint = difflib.get_close_matches(str(k), known, n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else f" (known: {', '.join(known)})"
            return [k], f"unknown key {k!r}{more}"
    if v == "propertyNames":
        return [], f"key {_short(inst)} is not allowed here ({_desc_of(sch.get('propertyNames'))})"
    if v == "false" or (v is None and err.schema is False):
        return [], "this key is not allowed here"
    if v == "enum":
        return [], f"{_short(inst)} is not one of {', '.join(map(str, err.validator_value))}"
    if v == "const":
        return [], f"{_short(inst)} must be {err.validator_value!r}"
    if v == "type":
        wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        got = _TYPE_NAMES.get(type(inst), type(inst).__name__)
        about = f" ({sch['description']})" if sch.get("description") else ""
        return [], f"expected {' or '.join(wanted)}, got {got}" + ("" if inst is None else f" {_short(inst)}") + about
    if v == "pattern":
        return [], f"{_short(inst)} is not {sch.get('description') or 'in the form ' + err.validator_value}"
    if v in ("minItems", "minLength"):
        return [], "must not be empty"
    if v == "uniqueItems":
        return [], "has duplicate items"
    if v in ("minimum", "maximum"):
        return [], f"{inst!r} is out of range ({v} {err.validator_value})"
    if v in ("anyOf", "oneOf"):
        from jsonschema.exceptions import best_match

        ctx = list(err.context or ())
        if inst is not None:  # "or null" branches only distract from the real mistake
            ctx = [c for c in ctx if not (c.validator == "type" and c.validator_value == "null")] or ctx
        if ctx:
            sub = best_match(ctx)
            extra, msg = _describe(sub)
            rel = list(sub.relative_path)
            if sch.get("description") and not rel and sub.validator in ("type", "pattern", "enum"):
                msg = f"{_short(inst)} is not {sch['description']}"
            return rel + extra, msg
    return [], err.message if len(err.message) < 160 else err.message[:157] + "..."


def _desc_of(sub: Any) -> str:
    if isinstance(sub, dict):
        if sub.get("description"):
            return sub["description"]
        if "$ref" in sub:
            return "see " + sub["$ref"].rsplit("/", 1)[-1]
        if "pattern" in sub:
            return "form " + sub["pattern"]
    return "not allowed"


# --------------------------------------------------------------- api ---

def validate_data(data: Any, kind: str, text: str | None = None, filename: str = "<data>") -> list[Error]:
    """Check parsed YAML `data` as `kind`; `text` (the YAML source) lets errors carry line numbers."""
    validator = _validator(kind)
    root = _compose(text)
    errors: list[Error] = []
    for err in validator.iter_errors(_jsonable(data)):
        extra, msg = _describe(err)
        path = list(err.absolute_path) + extra
        errors.append(Error(filename, line_of(root, path), _key_path(path) or "(top)", msg))
    errors.sort(key=lambda e: (e.line or 0, e.key_path))
    return errors


def infer_kind(path: str | Path, data: Any) -> str | None:
    """From where the file lives first, then from its keys."""
    p = Path(path)
    parts = {x.lower() for x in p.parts}
    name = p.name.lower()
    if name in ("minbump.yml", "minbump.yaml"):
        return "config"
    if "calendars" in parts:
        return "calendar"
    if "presets" in parts:
        return "preset"
    if "facts" in parts:
        return "facts"
    if isinstance(data, dict):
        if "platforms" in data or "out_of_scope" in data:
            return "matrix"
        if "nova_min_versions" in data or "libvirt_ci_target_changes" in data:
            return "facts"
        if isinstance(data.get("releases"), list) and "name" in data:
            return "calendar"
        if {"watch", "preset", "constants", "components"} & set(data):
            return "config"
    if "matrix" in name:
        return "matrix"
    return None


def validate_file(path: str | Path, kind: str | None = None) -> list[Error]:
    """Validate one file; raises MinbumpError only when it cannot be read at all."""
    from bot.data.yamlcache import parse_yaml

    from bot.data.yamlcache import check_size

    p = Path(path)
    size_kind = kind or ("matrix" if "matrix" in p.name.lower() else "config")
    try:
        check_size(p.stat().st_size, str(p), size_kind)
        raw = p.read_bytes()
    except OSError as exc:
        raise MinbumpError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return [Error(str(p), None, "", "not UTF-8 text")]
    try:
        data = parse_yaml(text, str(p), size_kind)
    except MinbumpError as exc:
        bad = bad_scalar(text)  # the YAML parser's date constructor: 2026-13-01
        if bad is not None:
            bad_line, keys, value = bad
            why = str(exc).split("not valid YAML: ", 1)[-1]
            return [Error(str(p), bad_line, _key_path(keys), f"{value!r} is not a real date ({why})")]
        msg = str(exc)
        line: int | None = None
        head = f"{p}:"
        if msg.startswith(head):
            num, _, rest = msg[len(head):].partition(":")
            if num.isdigit():
                line, msg = int(num), rest.strip()
            else:
                msg = msg[len(head):].strip()
        return [Error(str(p), line, "", msg)]
    kind = kind or infer_kind(p, data)
    if kind is None:
        return [Error(str(p), 1, "", "cannot tell what kind of file this is "
                                     f"(not a {', '.join(KINDS)} file); pass --kind")]
    if data is None:
        data = {}
    return validate_data(data, kind, text, str(p))


def bad_scalar(text: str) -> tuple[int, list[Any], str] | None:
    """Find the first scalar YAML cannot construct (an impossible date), with its line and key path."""
    import yaml

    root = _compose(text)
    loader = yaml.SafeLoader("")

    def walk(node: Any, path: list[Any]) -> tuple[int, list[Any], str] | None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                hit = walk(v, path + [k.value])
                if hit:
                    return hit
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                hit = walk(v, path + [i])
                if hit:
                    return hit
        elif isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node, deep=True)
            except (ValueError, yaml.YAMLError):
                return node.start_mark.line + 1, path, node.value
        return None

    return walk(root, []) if root is not None else None


def policy_files(root: Path | None = None) -> list[Path]:
    """Every YAML file shipped under policy/ (what `minbump validate` checks by default)."""
    base = root or policy_dir()
    return sorted(x for x in base.rglob("*") if x.suffix in (".yaml", ".yml") and x.is_file())
