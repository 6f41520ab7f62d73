"""Where the shipped policy data lives, installed or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def policy_dir() -> Path:
    """The `policy/` folder: inside the wheel it is `bot/policy`, in a checkout it is `../policy`."""
    installed = _HERE / "policy"
    if (installed / "matrix.yaml").is_file():
        return installed
    return _HERE.parent / "policy"
