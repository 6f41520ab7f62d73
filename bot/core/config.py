"""The analysis settings of a repository: what to watch, how to classify, how strict to be.

Loaded by bot.data.config from `.github/minbump.yml` on the base branch (a
pull request must not loosen its own check), merged over an optional preset.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from bot.core.records import Record, factory

CONFIG_PATH = ".github/minbump.yml"
RULES = ("fail", "warn", "pass")

DEFAULT_STRICTNESS = {
    "unwarned_drop": "fail",   # a still-supported platform dropped with no warning released first
    "warned_drop": "warn",     # dropped after a release that warned
    "minor_drop": "warn",      # an old minor release dropped; a newer minor of it is fine
    "unknown": "warn",         # a still-supported platform whose shipped version is unknown
    "low_confidence": "warn",  # the verdict rests on a low-confidence fact
    "policy_loosened": "warn",  # the change loosens the policy itself (bot.core.policy_changes)
    "error": "neutral",        # the bot could not read an input (or ran out of time): fail, warn, neutral, pass
}
ERROR_RULES = ("fail", "warn", "neutral", "pass")
DEFAULT_COMPONENTS = {"LIBVIRT": "libvirt", "QEMU": "qemu"}
DEFAULT_HYPERVISORS = {"PARALLELS": "parallels", "VIRTUOZZO": "virtuozzo", "LXC": "lxc", "XEN": "xen"}
KNOWN_KEYS = {"preset", "watch", "calendar", "support", "int_encoding", "components", "hypervisors",
              "constants", "strictness", "matrix", "max_data_age_days", "policy_files", "description",
              "support_tables"}


class Config(Record):
    watch: list[str]
    calendar: Any = None
    support: str = "standard"
    int_base: int = 1000
    int_width: int = 3
    components: dict[str, str] = factory(lambda: dict(DEFAULT_COMPONENTS))
    hypervisors: dict[str, str] = factory(lambda: dict(DEFAULT_HYPERVISORS))
    constants: dict[str, dict] = factory(dict)
    strictness: dict[str, str] = factory(lambda: dict(DEFAULT_STRICTNESS))
    matrix: list[str] = factory(list)
    policy_files: list[str] = factory(list)
    support_tables: list[str] = factory(list)  # documentation tables checked against the code and the data
    max_data_age_days: int = 180  # = bot.core.matrix.DEFAULT_MAX_DATA_AGE_DAYS
    preset: str | None = None
    origin: str = "defaults"

    def calendar_path(self) -> str | None:
        """The repository's own calendar file, when the config names one."""
        cal = self.calendar
        return cal["path"] if isinstance(cal, dict) and isinstance(cal.get("path"), str) else None

    def policy_paths(self) -> list[str]:
        """The policy files: the config, the project's matrix files, its calendar and support tables."""
        cal = self.calendar_path()
        return ([CONFIG_PATH] + list(self.matrix) + list(self.policy_files) + ([cal] if cal else [])
                + list(self.support_tables))

    def watched_paths(self) -> list[str]:
        """Paths whose change makes a PR relevant: the watched globs, the config and policy files."""
        return list(self.watch) + self.policy_paths()
