"""Loading the support matrix from policy/matrix.yaml and a project's override files."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from collections.abc import Iterable
    from typing import Any

from bot.core.matrix import Matrix, apply_override, from_raw
from bot.data.paths import policy_file, read_bytes
from bot.data.yamlcache import cached_yaml
from bot.errors import MinbumpError


def _check(name: str):
    def check(raw: Any, text: str) -> None:
        """Refuse what the matrix schema refuses, at load, wherever the file comes from."""
        if not isinstance(raw, dict):
            raise MinbumpError(f"{name}: not a support matrix (no 'platforms' or 'out_of_scope' list)")
        from bot.data.schema import validate_data  # jsonschema: only on a cache miss

        errors = validate_data(raw, "matrix", text, name)
        if errors:
            more = f" (and {len(errors) - 1} more; run `minbump validate {name}`)" if len(errors) > 1 else ""
            raise MinbumpError(f"{errors[0]}{more}")
    return check


def parse_raw(data: bytes, name: str) -> dict:
    """Parse and schema-check a matrix file's bytes (through the content-hash cache, see bot.data.yamlcache)."""
    return cached_yaml(data, name, "matrix-checked", _check(name))


def load_raw(path: str | Path) -> dict:
    """Parse and schema-check a matrix file (through the content-hash cache, see bot.data.yamlcache)."""
    try:
        data = read_bytes(str(path))
    except OSError as exc:
        raise MinbumpError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_raw(data, str(path))


def check_scope_ids(matrix: Matrix, raw: dict, origin: str) -> None:
    """An `out_of_scope` id that names no platform is a typo (`ubuntu-14.4`): say the closest id."""
    import difflib

    known = [p.id for p in matrix.platforms]
    ids = set(known)
    for item in raw.get("out_of_scope") or ():
        pid = str(item.get("id") if isinstance(item, dict) else item)
        if pid not in ids:
            close = difflib.get_close_matches(pid, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise MinbumpError(f"{origin}: out_of_scope: {pid!r} is not a platform of the matrix{hint}")


def apply_file(matrix: Matrix, data: bytes, name: str, origin: str) -> Matrix:
    """`matrix` with a project's override file (its bytes) applied, checked first."""
    raw = parse_raw(data, name)
    out = apply_override(matrix, raw, origin)
    check_scope_ids(out, raw, origin)
    return out


_DEFAULT: Matrix | None = None


def default_matrix() -> Matrix:
    """The shipped matrix, parsed once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        path = policy_file("matrix.yaml")
        _DEFAULT = from_raw(load_raw(path), "policy/matrix.yaml")
    return _DEFAULT


def load_matrix(paths: Iterable[str | Path] | None = None) -> Matrix:
    """The shipped matrix, or the given files in order (later files override earlier ones)."""
    if not paths:
        return default_matrix()
    matrix: Matrix | None = None
    for path in paths:
        path = str(path)
        if not os.path.isfile(path):
            raise MinbumpError(f"{path}: no such matrix file")
        raw = load_raw(path)
        matrix = from_raw(raw, str(path)) if matrix is None else apply_override(matrix, raw, str(path))
        check_scope_ids(matrix, raw, path)
    assert matrix is not None
    return matrix


def with_overrides(files: Iterable[str | Path], base: Matrix | None = None) -> Matrix:
    """The shipped matrix (or `base`) with a project's override files applied in order."""
    matrix = base or default_matrix()
    for path in files:
        path = str(path)
        if not os.path.isfile(path):
            raise MinbumpError(f"{path}: no such matrix file")
        raw = load_raw(path)
        matrix = apply_override(matrix, raw, str(path))
        check_scope_ids(matrix, raw, path)
    return matrix


