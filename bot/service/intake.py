"""Webhook intake, sans-IO: (headers, body) -> (HTTP status, JSON-able answer).

Why so little happens here: GitHub gives a delivery 10 seconds. Intake verifies
the HMAC over the raw body, extracts the few ids a job needs (see
:mod:`bot.service.events`), and answers 202 only after the backend has stored
the job and marked the delivery id seen in one atomic step. Analysis and every
GitHub write happen in a worker.

Why sans-IO: the whole webhook contract is testable without a server, and the
web framework (:mod:`bot.service.wsgi`) only adapts it. :meth:`Intake.refuse_early`
runs before the body is read, so an unsigned or oversized delivery never costs
its bytes in memory.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from typing import Any, Protocol
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs

from bot.service.events import BadPayload, job_for
from bot.service.logs import error_text, log
from bot.service.queue import Backend
from bot.service.settings import MAX_BODY

Answer = tuple[int, dict[str, Any]]


class Headers(Protocol):
    """Any header collection (a dict, Werkzeug's Headers): names are matched case-insensitively."""

    def items(self) -> Iterable[tuple[str, str]]: ...


SIGNATURE = "x-hub-signature-256"
_DELIVERY = re.compile(r"[A-Za-z0-9._:-]{1,200}")  # GitHub sends a GUID
_EVENT = re.compile(r"[a-z_]{1,64}")


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(raw: bytes, content_type: str = "application/json") -> dict[str, Any]:
    """The JSON object in a body (or in its ``payload=`` form field when the hook is set to
    form encoding). UTF-8 only, as GitHub sends; NaN/Infinity and over-deep nesting refused."""
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            fields = parse_qs(raw.decode("utf-8"), strict_parsing=False)
            text = (fields.get("payload") or [""])[0]
        else:
            text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadPayload("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadPayload("body is not a JSON object")
    return data


def signature_ok(secret: bytes, raw: bytes, header: str) -> bool:
    """``sha256=<hex>`` over the raw body, compared in constant time."""
    scheme, _, hexdigest = header.strip().partition("=")
    if scheme != "sha256" or len(hexdigest) != 64:
        return False
    try:
        given = bytes.fromhex(hexdigest)
    except ValueError:
        return False
    return hmac.compare_digest(hmac.digest(secret, raw, "sha256"), given)


def _lower(headers: Headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


class Intake:
    """Verify, parse, route, dedupe and enqueue one delivery through ``backend``."""

    def __init__(self, secret: str, backend: Backend, *, max_body: int = MAX_BODY,
                 app_id: int | None = None) -> None:
        if not secret:
            raise ValueError("a webhook secret is required")
        self.secret = secret.encode()
        self.backend = backend
        self.max_body = max_body
        self.app_id = app_id  # App mode: whose check suites are ours

    def refuse_early(self, headers: Headers, content_length: int | None) -> Answer | None:
        """The answer when the delivery can be refused from its headers alone (before its body is
        read): no signature (401) or a declared length over the cap (413). None: read the body,
        at most :attr:`max_body` + 1 bytes, and call :meth:`handle`."""
        h = _lower(headers)
        base = _ids(h)
        if not h.get(SIGNATURE):
            log("webhook.unsigned", level=logging.WARNING, **base)
            return 401, {"error": "missing X-Hub-Signature-256"}
        if content_length is not None and content_length > self.max_body:
            log("webhook.too_large", level=logging.WARNING, bytes=content_length, **base)
            return 413, {"error": "payload too large"}
        return None

    def handle(self, headers: Headers, body: bytes | None) -> Answer:
        """The whole webhook contract for one delivery. ``body`` None: it ran past the cap."""
        t0 = time.monotonic()
        h = _lower(headers)
        # A body that ran past the cap is refused like one whose declared length is over it.
        early = self.refuse_early(h, self.max_body + 1 if body is None else len(body))
        if early is not None or body is None:
            return early or (413, {"error": "payload too large"})
        base = _ids(h)
        if not signature_ok(self.secret, body, h[SIGNATURE]):
            log("webhook.bad_signature", level=logging.WARNING, **base)
            return 401, {"error": "signature does not match"}
        delivery, event = h.get("x-github-delivery", ""), h.get("x-github-event", "")
        if not _DELIVERY.fullmatch(delivery) or not _EVENT.fullmatch(event):
            log("webhook.bad_headers", level=logging.WARNING, **base)
            return 400, {"error": "missing X-GitHub-Delivery or X-GitHub-Event"}
        try:
            payload = parse(body, h.get("content-type", ""))
            if event == "ping":
                log("webhook.ping", hook_id=payload.get("hook_id"), **base)
                return 200, {"ok": True, "pong": True}
            spec = job_for(event, payload, delivery, self.app_id)
        except BadPayload as exc:
            log("webhook.bad_payload", level=logging.WARNING, error=str(exc), **base)
            return 400, {"error": str(exc)}
        if spec is None:
            action = payload.get("action")
            action = action if type(action) is str else None
            log("webhook.ignored", action=action, **base)
            return 200, {"ok": True, "ignored": f"{event}.{action}" if action else event}
        try:
            new = self.backend.submit(spec)
        except Exception as exc:
            # Not accepted: GitHub records the failed delivery and it can be redelivered.
            log("webhook.queue_unavailable", level=logging.ERROR, error=error_text(exc), **spec.log_fields())
            return 503, {"error": "queue unavailable, redeliver later"}
        ms = round((time.monotonic() - t0) * 1000, 1)
        if not new:
            log("webhook.duplicate", ms=ms, **spec.log_fields())
            return 200, {"ok": True, "duplicate": True}
        log("webhook.accepted", ms=ms, event=event, action=spec.action, **spec.log_fields())
        return 202, {"ok": True, "queued": True}


def _ids(h: Mapping[str, str]) -> dict[str, Any]:
    """The delivery's ids for a log line (cut short: they are not validated yet)."""
    return {"delivery": h.get("x-github-delivery", "")[:200] or None, "event": h.get("x-github-event", "")[:64] or None}
