"""Which job a delivery asks for: one module per GitHub event we act on.

Each module's ``job_for(payload, delivery, app_id)`` returns the checked
:class:`~bot.service.queue.JobSpec`, None when the event's action is not ours,
or raises :class:`BadPayload`. Pure: no I/O, easy to test with recorded payloads.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

from bot.service.events import check_run, check_suite, pull_request
from bot.service.events.payload import BadPayload
from bot.service.queue import JobSpec

ROUTES: dict[str, Callable[[dict[str, Any], str, int | None], JobSpec | None]] = {
    "pull_request": pull_request.job_for,
    "check_run": check_run.job_for,
    "check_suite": check_suite.job_for,
}


def job_for(event: str, payload: dict[str, Any], delivery: str, app_id: int | None = None) -> JobSpec | None:
    """The job for a delivery of ``event``, or None when it is not ours to handle.

    ``app_id`` is this service's GitHub App id (App mode): only its own check
    suite's "Re-run all checks" concerns it.
    """
    route = ROUTES.get(event)
    return None if route is None else route(payload, delivery, app_id)


__all__ = ["BadPayload", "ROUTES", "job_for"]
