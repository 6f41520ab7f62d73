"""``check_run``: "Re-run" on our check run (App mode)."""

from __future__ import annotations

from typing import Any

from bot.service.events.payload import action, first_pr, get, rerun
from bot.service.github import CHECK_NAME
from bot.service.queue import JobSpec


def job_for(payload: dict[str, Any], delivery: str, app_id: int | None = None) -> JobSpec | None:
    """The job for a re-requested run of our check; None for others' check runs and other actions."""
    act = action(payload)
    if act != "rerequested":
        return None
    run = get(payload, "check_run")
    if isinstance(run, dict) and run.get("name") != CHECK_NAME:
        return None  # someone else's check run
    # No pull request attached: a PR from a fork (or none at all); the job looks it up.
    return rerun("check_run", act, payload, delivery, first_pr(run, "check_run"), get(payload, "check_run.head_sha"))
