"""``pull_request``: opened, pushed to, reopened, or retargeted at another base branch."""

from __future__ import annotations

from typing import Any

from bot.service.events.payload import action, get, job
from bot.service.queue import JobSpec

ACTIONS = {"opened", "synchronize", "reopened", "edited"}


def job_for(payload: dict[str, Any], delivery: str, app_id: int | None = None) -> JobSpec | None:
    """The job for an open PR's new head or new base; None for every other action."""
    act = action(payload)
    if act not in ACTIONS:
        return None
    if act == "edited" and not (isinstance(payload.get("changes"), dict) and "base" in payload["changes"]):
        return None  # title/body edits change nothing we check
    if get(payload, "pull_request.state") != "open":
        return None
    return job("pull_request", act, payload, delivery, get(payload, "pull_request.number"),
               get(payload, "pull_request.head.sha"), get(payload, "pull_request.base.ref"))
