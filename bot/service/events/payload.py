"""What a delivery's payload must hold for a job: the few fields, with exact types.

Why exact types: a payload is attacker-shaped JSON until the job re-reads the
pull request from GitHub. A list where a string belongs, a number past what
GitHub issues, or an id with a trailing newline must be refused here with 400
(nothing stored), not crash later or become a second repository.
Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from bot.service.queue import JobSpec

MAX_PR = 2**31 - 1  # GitHub's numbers are 32-bit; beyond is a forged payload (and past SQLite's INTEGER)
MAX_INSTALLATION = 2**63 - 1
RERUN_EVENTS = ("check_run", "check_suite")  # "Re-run": their jobs may have to find the PR (pr 0)

_SHA = re.compile(r"[0-9a-f]{40}")
_NAME = r"[A-Za-z0-9_.-]+"
_FULL_NAME = re.compile(f"{_NAME}/{_NAME}")
_URL = re.compile(r"https?://[^\s/]+(/[^\s]*)?")
_REF = re.compile(r"[^\x00-\x20\x7f]{1,255}")  # a git ref name: no whitespace or control characters


class BadPayload(Exception):
    """A delivery we cannot turn into a job: answered 400 with this one-line message."""


def get(obj: Any, path: str) -> Any:
    """``obj["a"]["b"]`` for ``path`` "a.b"; BadPayload naming the path when a step is missing."""
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise BadPayload(f"payload lacks {path}")
        obj = obj[part]
    return obj


def text(obj: Any, path: str) -> str:
    """A field that must be a JSON string."""
    value = get(obj, path)
    if type(value) is not str:
        raise BadPayload(f"{path} is not a string")
    return value


def whole(value: Any) -> bool:
    """A JSON integer (not a bool, not a float such as 17.0)."""
    return type(value) is int


def action(payload: dict[str, Any]) -> str | None:
    """The payload's ``action``: a string or absent; anything else is a bad payload."""
    value = payload.get("action")
    if value is not None and type(value) is not str:
        raise BadPayload("action is not a string")
    return value


def installation(payload: dict[str, Any]) -> int | None:
    """The App installation the delivery came through (None in token mode)."""
    inst = payload.get("installation")
    if inst is None:
        return None
    if not isinstance(inst, dict):
        raise BadPayload("installation is not an object")
    value = inst.get("id")
    if value is None:
        return None
    if not whole(value) or not 1 <= value <= MAX_INSTALLATION:
        raise BadPayload("installation.id is not a positive integer")
    return value


def first_pr(obj: Any, where: str) -> Any:
    """The first of a check run's or suite's ``pull_requests``; None when there is none."""
    prs = obj.get("pull_requests") if isinstance(obj, dict) else None
    if prs is None or prs == []:
        return None
    if not isinstance(prs, list):
        raise BadPayload(f"{where}.pull_requests is not a list")
    return prs[0]


def checked(spec: JobSpec) -> JobSpec:
    """``spec`` when every field the job relies on is well formed; else BadPayload."""
    if type(spec.head_sha) is not str or not _SHA.fullmatch(spec.head_sha):
        raise BadPayload("head sha is not 40 hex characters")
    # A re-run on a PR from a fork comes without its PR: the job finds it (and its base) by head sha.
    find_pr = whole(spec.pr) and spec.pr == 0 and spec.base_ref == "" and spec.event in RERUN_EVENTS
    if not find_pr and not (whole(spec.pr) and spec.pr > 0):
        raise BadPayload("pull request number is not a positive integer")
    if spec.pr > MAX_PR:
        raise BadPayload(f"pull request number is larger than {MAX_PR}")
    if type(spec.repo) is not str or not _FULL_NAME.fullmatch(spec.repo) or \
            any(part.strip(".") == "" for part in spec.repo.split("/")):
        raise BadPayload("repository.full_name is not owner/name")
    if not find_pr and (type(spec.base_ref) is not str or not spec.base_ref):
        raise BadPayload("base ref is missing")
    if not find_pr and not _REF.fullmatch(spec.base_ref):
        raise BadPayload("base ref is not a branch name")
    if type(spec.clone_url) is not str or not _URL.fullmatch(spec.clone_url):
        raise BadPayload("repository.clone_url is not an http(s) URL")
    return spec


def job(event: str, act: str, payload: dict[str, Any], delivery: str, pr: Any, head_sha: Any,
        base_ref: Any) -> JobSpec:
    """The checked job for (repository of ``payload``, ``pr``, ``head_sha``, ``base_ref``)."""
    return checked(JobSpec(
        delivery_id=delivery, event=event, action=act,
        repo=get(payload, "repository.full_name"), pr=pr, head_sha=head_sha, base_ref=base_ref,
        clone_url=get(payload, "repository.clone_url"), installation_id=installation(payload)))


def rerun(event: str, act: str, payload: dict[str, Any], delivery: str, pr: Any, head_sha: Any) -> JobSpec:
    """A re-run asked for from a check run or suite: the job for its (first) pull request, or,
    when GitHub attached none (a PR from a fork), a job with PR number 0 that finds it."""
    number, base_ref = (get(pr, "number"), get(pr, "base.ref")) if pr is not None else (0, "")
    return job(event, act, payload, delivery, number, head_sha, base_ref)
