"""``check_suite``: "Re-run all checks" on our App's suite."""

from __future__ import annotations

from typing import Any

from bot.service.events.payload import action, first_pr, get, rerun
from bot.service.queue import JobSpec


def job_for(payload: dict[str, Any], delivery: str, app_id: int | None = None) -> JobSpec | None:
    """The job for our suite's re-run. ``app_id`` is this service's App id: an App with checks
    permission is sent every app's ``check_suite`` events; without one (token mode, commit
    statuses) no check suite is ours."""
    act = action(payload)
    if act != "rerequested" or app_id is None:
        return None
    suite = get(payload, "check_suite")
    app = suite.get("app") if isinstance(suite, dict) else None
    if not isinstance(app, dict) or app.get("id") != app_id:
        return None  # another app's suite (GitHub Actions, other CI)
    return rerun("check_suite", act, payload, delivery, first_pr(suite, "check_suite"),
                 get(payload, "check_suite.head_sha"))
