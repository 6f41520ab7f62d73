"""Loading the support matrix from policy/matrix.yaml and a project's override files."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Iterable

from bot.core.matrix import Matrix, apply_override, from_raw
from bot.data.paths import policy_file, read_bytes
from bot.data.yamlcache import cached_yaml
from bot.errors import MinbumpError


def load_raw(path: str | Path) -> dict:
    """Parse a matrix file through the content-hash cache (see bot.data.yamlcache)."""
    def check(raw: Any, _text: str) -> None:
        # A project's override file may only mark platforms out of scope.
        if not isinstance(raw, dict) or not (isinstance(raw.get("platforms"), list)
                                             or isinstance(raw.get("out_of_scope"), list)):
            raise MinbumpError(f"{path}: not a support matrix (no 'platforms' or 'out_of_scope' list)")

    try:
        data = read_bytes(str(path))
    except OSError as exc:
        raise MinbumpError(f"{path}: cannot read: {exc.strerror}") from None
    return cached_yaml(data, str(path), "matrix", check)


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
    assert matrix is not None
    return matrix


def with_overrides(files: Iterable[str | Path], base: Matrix | None = None) -> Matrix:
    """The shipped matrix (or `base`) with a project's override files applied in order."""
    matrix = base or default_matrix()
    for path in files:
        path = str(path)
        if not os.path.isfile(path):
            raise MinbumpError(f"{path}: no such matrix file")
        matrix = apply_override(matrix, load_raw(path), str(path))
    return matrix


