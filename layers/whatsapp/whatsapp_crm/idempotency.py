"""Retried sends never send twice: POST /messages with an `Idempotency-Key` header (Stripe's convention).

The first request with a key claims it (one conditional write) with a fingerprint of its body; the answer
Meta gave is kept with the key for 24 hours, and the same key with the same body gets that answer again
without a second Graph send. The same key with another body is refused (422 `idempotency_key_reused`).

The hard case is a first attempt that ended without Meta's answer (a timeout, or a 503 after retries) when
Meta had in fact accepted the message. Before calling Graph, the attempt records on the key that it is
sending, to whom, and the `biz_opaque_callback_data` it sends (ours, `idem:<key id>`, unless the caller
set one), which Meta echoes in the message's status webhooks. A retry of such a key never resends blindly:
it looks for a message in the lead's thread carrying that callback since the attempt began (the status
webhook, or the attempt's own record). Found: that message is the answer. Not found yet: 409 with
Retry-After until EVIDENCE_WAIT has passed (Meta posts `sent` within seconds of accepting). Only after
that is the message sent again. Refusals before Meta (validation, opt-out, window, rate limit) and Meta's
definite refusals release the key: nothing was sent, so a retry is evaluated afresh.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from whatsapp_crm.clock import Clock, iso, parse_iso_or_none
from whatsapp_crm.errors import StoreUnavailableError
from whatsapp_crm.graph.errors import GraphAPIError, TransientError
from whatsapp_crm.observability import logger

RETENTION = timedelta(hours=24)
# Longer than API Gateway's 30-second limit: a first attempt still running is never taken over.
LEASE = timedelta(seconds=60)
# How long a retry waits for Meta's status webhook of an attempt that ended without Meta's answer.
EVIDENCE_WAIT = timedelta(minutes=5)
EVIDENCE_SLACK = timedelta(minutes=1)
CALLBACK_PREFIX = "idem:"


class IdempotencyKeyReusedError(Exception):
    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used with a different request body in the last 24 hours")


class IdempotencyKeyInUseError(Exception):
    """The key's first request is still running, or ended without Meta's answer and its evidence is awaited."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, retry_after_seconds)


class State:
    IN_PROGRESS = "in_progress"
    IN_DOUBT = "in_doubt"  # ended without Meta's answer after the Graph call began
    DONE = "done"
    RELEASED = "released"  # nothing was sent; the key may be claimed afresh


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the table holds for a key another request claimed."""

    fingerprint: str
    state: str
    owner: str
    lease_until: int
    response: dict[str, Any] | None = None
    sending_at: str | None = None
    wa_id: str | None = None
    callback: str | None = None
    phone_number_id: str | None = None  # the sending number (None for a key held before issue 14)


class IdempotencyStore(Protocol):
    def claim_idempotency_key(
        self, key_id: str, fingerprint: str, owner: str, now: datetime, lease: timedelta, retention: timedelta
    ) -> KeyRecord | None:
        """Claim a new, expired or released key (None), or return the record that holds it."""
        ...

    def take_over_idempotency_key(self, key_id: str, held: KeyRecord, owner: str, now: datetime) -> bool: ...
    def mark_idempotent_sending(
        self, key_id: str, owner: str, wa_id: str, phone_number_id: str, callback: str, at: str
    ) -> None: ...
    def settle_idempotency_key(
        self, key_id: str, owner: str, state: str, response: Mapping[str, Any] | None
    ) -> None: ...
    def find_send_by_callback(
        self, wa_id: str, phone_number_id: str | None, callback: str, since: str
    ) -> str | None: ...


@dataclass(frozen=True, slots=True)
class IdempotentAnswer:
    body: dict[str, Any]
    replayed: bool


def key_id(key: str) -> str:
    """The stored name of a key: its SHA-256, so a caller's key never appears in the table or the logs."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def fingerprint(body: Mapping[str, Any]) -> str:
    """The same request body, whatever its key order or spacing, has the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def in_doubt(error: GraphAPIError) -> bool:
    """Meta may have accepted the send: no answer at all (a timeout), or its side kept failing (5xx, 131000)."""
    no_answer = error.code is None and (error.http_status is None or 200 <= error.http_status < 300)
    return no_answer or isinstance(error, TransientError)


@dataclass(slots=True)
class Attempt:
    """One request's hold on a key: what `send_message` calls right before the Graph call."""

    store: IdempotencyStore
    key_id: str
    owner: str
    clock: Clock
    callback: str
    sending: bool = False

    def before_send(self, wa_id: str, phone_number_id: str) -> None:
        self.store.mark_idempotent_sending(
            self.key_id, self.owner, wa_id, phone_number_id, self.callback, iso(self.clock())
        )
        self.sending = True

    def settle(self, state: str, response: Mapping[str, Any] | None = None) -> None:
        try:
            self.store.settle_idempotency_key(self.key_id, self.owner, state, response)
        except StoreUnavailableError:
            # A done key not written comes back as in doubt after the lease, and the evidence answers it.
            logger.warning("could not settle an idempotency key", extra={"state": state})


def _evidence_answer(store: IdempotencyStore, held: KeyRecord, now: datetime) -> dict[str, Any] | None:
    sending_at = parse_iso_or_none(held.sending_at)
    if sending_at is None or not held.wa_id or not held.callback:
        return None
    since = iso(sending_at - EVIDENCE_SLACK)
    wamid = store.find_send_by_callback(held.wa_id, held.phone_number_id, held.callback, since)
    if wamid is not None:
        return {"message_id": wamid, "wa_id": held.wa_id, "to": f"+{held.wa_id}", "status": "accepted"}
    waited = now - sending_at
    if waited < EVIDENCE_WAIT:
        raise IdempotencyKeyInUseError(
            "the first request with this key may have reached WhatsApp; retry once its status has arrived",
            int((EVIDENCE_WAIT - waited).total_seconds()) + 1,
        )
    return None


def begin(key: str, body: Mapping[str, Any], store: IdempotencyStore, clock: Clock) -> IdempotentAnswer | Attempt:
    """Claim the key for this request (an Attempt to go on with), or answer from what it already holds."""
    identifier, print_ = key_id(key), fingerprint(body)
    owner, now = uuid.uuid4().hex, clock()
    attempt = Attempt(store, identifier, owner, clock, f"{CALLBACK_PREFIX}{identifier[:40]}")
    held = store.claim_idempotency_key(identifier, print_, owner, now, LEASE, RETENTION)
    if held is None:
        return attempt
    if held.fingerprint != print_:
        raise IdempotencyKeyReusedError()
    if held.state == State.DONE and held.response is not None:
        return IdempotentAnswer(held.response, replayed=True)
    if held.state == State.IN_PROGRESS and held.lease_until > int(now.timestamp()):
        raise IdempotencyKeyInUseError(
            "a request with this key is in progress", held.lease_until - int(now.timestamp())
        )
    evidence = _evidence_answer(store, held, now)
    if not store.take_over_idempotency_key(identifier, held, owner, now):
        raise IdempotencyKeyInUseError("another request with this key is in progress", 1)
    if evidence is not None:
        attempt.settle(State.DONE, evidence)
        return IdempotentAnswer(evidence, replayed=True)
    if held.sending_at is not None:
        logger.warning("resending: no evidence that the first attempt with this key reached WhatsApp")
    return attempt


def run(attempt: Attempt, send: Callable[[Attempt], dict[str, Any]]) -> IdempotentAnswer:
    """Send under the key; keep Meta's answer, or what the failure says about whether Meta has it."""
    try:
        body = send(attempt)
    except GraphAPIError as error:
        attempt.settle(State.IN_DOUBT if attempt.sending and in_doubt(error) else State.RELEASED)
        raise
    except BaseException:
        attempt.settle(State.IN_DOUBT if attempt.sending else State.RELEASED)
        raise
    attempt.settle(State.DONE, body)
    return IdempotentAnswer(body, replayed=False)
