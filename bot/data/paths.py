"""Where the shipped policy data lives, installed or in a source checkout.

String paths through `os.path` on the dry-run's path: `pathlib` alone costs
~30 ms to import on a small machine. `policy_dir()` gives a `Path` for the
commands that are not in a hurry.
"""

from __future__ import annotations

import os

_BOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the bot package
_ROOT: str | None = None


def policy_root() -> str:
    """The `policy/` folder: inside the wheel it is `bot/policy`, in a checkout `../policy`."""
    global _ROOT
    if _ROOT is None:
        installed = os.path.join(_BOT, "policy")
        _ROOT = installed if os.path.isfile(os.path.join(installed, "matrix.yaml")) else \
            os.path.join(os.path.dirname(_BOT), "policy")
    return _ROOT


def policy_file(*parts: str) -> str:
    return os.path.join(policy_root(), *parts)


def policy_names(folder: str, suffix: str) -> list[str]:
    """Names (without `suffix`) of the files in a policy folder, e.g. the shipped presets."""
    try:
        return sorted(n[: -len(suffix)] for n in os.listdir(policy_file(folder)) if n.endswith(suffix))
    except OSError:
        return []


def policy_dir():
    """The policy folder as a `pathlib.Path`."""
    from pathlib import Path

    return Path(policy_root())


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()
