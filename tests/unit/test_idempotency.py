"""Issue 10, point 4 as rules: an Idempotency-Key never lets a retried send go out twice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_crm import idempotency
from whatsapp_crm.graph.errors import GraphUnavailableError, InvalidParameterError
from whatsapp_crm.idempotency import KeyRecord, State

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
BODY = {"to": "+972525551234", "type": "text", "text": {"body": "שלום"}}
LEAD = "972525551234"


@dataclass
class FakeKeys:
    """In memory, with the DynamoDB adapter's conditions."""

    records: dict[str, KeyRecord] = field(default_factory=dict)
    expires: dict[str, datetime] = field(default_factory=dict)
    thread: dict[tuple[str, str], str] = field(default_factory=dict)  # (wa_id, callback) -> wamid

    def claim_idempotency_key(
        self, key_id: str, fingerprint: str, owner: str, now: datetime, lease: timedelta, retention: timedelta
    ) -> KeyRecord | None:
        held = self.records.get(key_id)
        if held is None or self.expires[key_id] < now or held.state == State.RELEASED:
            lease_until = int((now + lease).timestamp())
            self.records[key_id] = KeyRecord(fingerprint, State.IN_PROGRESS, owner, lease_until)
            self.expires[key_id] = now + retention
            return None
        return held

    def take_over_idempotency_key(self, key_id: str, held: KeyRecord, owner: str, now: datetime) -> bool:
        current = self.records[key_id]
        if (current.owner, current.state) != (held.owner, held.state):
            return False
        lease_until = int((now + idempotency.LEASE).timestamp())
        self.records[key_id] = replace(current, owner=owner, state=State.IN_PROGRESS, lease_until=lease_until)
        return True

    def mark_idempotent_sending(
        self, key_id: str, owner: str, wa_id: str, phone_number_id: str, callback: str, at: str
    ) -> None:
        current = self.records[key_id]
        if current.owner == owner:
            self.records[key_id] = replace(current, sending_at=at, wa_id=wa_id, callback=callback)

    def settle_idempotency_key(self, key_id: str, owner: str, state: str, response: Mapping[str, Any] | None) -> None:
        current = self.records[key_id]
        if current.owner == owner:
            self.records[key_id] = replace(current, state=state, response=dict(response) if response else None)

    def find_send_by_callback(self, wa_id: str, phone_number_id: str | None, callback: str, since: str) -> str | None:
        return self.thread.get((wa_id, callback))


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Meta:
    """The Graph call: counts sends, fails when told to, after the attempt marked itself sending."""

    sends: int = 0
    fail_with: Exception | None = None
    fail_before_send: Exception | None = None

    def send(self, attempt: idempotency.Attempt) -> dict[str, Any]:
        if self.fail_before_send is not None:
            raise self.fail_before_send
        attempt.before_send(LEAD, "106540352242922")
        self.sends += 1
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        return {"message_id": f"wamid.OUT{self.sends}", "wa_id": LEAD, "to": f"+{LEAD}", "status": "accepted"}


def _request(
    key: str, body: Mapping[str, Any], keys: FakeKeys, meta: Meta, clock: Clock
) -> idempotency.IdempotentAnswer:
    started = idempotency.begin(key, body, keys, clock)
    if isinstance(started, idempotency.IdempotentAnswer):
        return started
    return idempotency.run(started, meta.send)


def test_the_same_key_and_body_get_the_first_answer_and_one_send() -> None:
    keys, meta, clock = FakeKeys(), Meta(), Clock()
    first = _request("k-1", BODY, keys, meta, clock)
    clock.now += timedelta(hours=23)
    again = _request("k-1", {"type": "text", "text": {"body": "שלום"}, "to": "+972525551234"}, keys, meta, clock)
    assert meta.sends == 1
    assert (first.replayed, again.replayed) == (False, True)
    assert again.body == first.body


def test_after_24_hours_the_key_is_free_again() -> None:
    keys, meta, clock = FakeKeys(), Meta(), Clock()
    _request("k-1", BODY, keys, meta, clock)
    clock.now += timedelta(hours=24, seconds=1)
    assert _request("k-1", BODY, keys, meta, clock).replayed is False
    assert meta.sends == 2


def test_the_same_key_with_another_body_is_refused_and_nothing_is_sent() -> None:
    keys, meta, clock = FakeKeys(), Meta(), Clock()
    _request("k-1", BODY, keys, meta, clock)
    with pytest.raises(idempotency.IdempotencyKeyReusedError):
        _request("k-1", {**BODY, "text": {"body": "other"}}, keys, meta, clock)
    assert meta.sends == 1


def test_a_request_still_running_makes_a_concurrent_retry_wait() -> None:
    keys, clock = FakeKeys(), Clock()
    started = idempotency.begin("k-1", BODY, keys, clock)
    assert isinstance(started, idempotency.Attempt)
    with pytest.raises(idempotency.IdempotencyKeyInUseError) as waiting:
        idempotency.begin("k-1", BODY, keys, clock)
    assert 1 <= waiting.value.retry_after_seconds <= 60


def test_a_refusal_before_meta_releases_the_key() -> None:
    # Given a first attempt refused before any Graph call (a rule, a rate limit)
    keys, meta, clock = FakeKeys(), Meta(fail_before_send=ValueError("window closed")), Clock()
    with pytest.raises(ValueError):
        _request("k-1", BODY, keys, meta, clock)
    # Then a retry is evaluated afresh and sends
    meta.fail_before_send = None
    assert _request("k-1", BODY, keys, meta, clock).replayed is False
    assert meta.sends == 1


def test_a_definite_refusal_by_meta_releases_the_key() -> None:
    keys, meta, clock = FakeKeys(), Meta(fail_with=InvalidParameterError(code=100, http_status=400)), Clock()
    with pytest.raises(InvalidParameterError):
        _request("k-1", BODY, keys, meta, clock)
    assert keys.records[idempotency.key_id("k-1")].state == State.RELEASED
    assert _request("k-1", BODY, keys, meta, clock).replayed is False


class TestAFirstAttemptThatEndedWithoutMetasAnswer:
    def _interrupted(self) -> tuple[FakeKeys, Meta, Clock]:
        # Meta accepted the send, but the answer never came back: the first request answered 503
        keys, meta, clock = FakeKeys(), Meta(fail_with=GraphUnavailableError(http_status=None)), Clock()
        with pytest.raises(GraphUnavailableError):
            _request("k-1", BODY, keys, meta, clock)
        assert keys.records[idempotency.key_id("k-1")].state == State.IN_DOUBT
        return keys, meta, clock

    def test_with_metas_status_evidence_the_retry_answers_that_message_and_sends_nothing(self) -> None:
        keys, meta, clock = self._interrupted()
        record = keys.records[idempotency.key_id("k-1")]
        assert record.callback is not None
        keys.thread[(LEAD, record.callback)] = "wamid.ACCEPTED"
        clock.now += timedelta(seconds=30)
        answer = _request("k-1", BODY, keys, meta, clock)
        assert answer.replayed is True
        assert answer.body["message_id"] == "wamid.ACCEPTED"
        assert meta.sends == 1
        # And a later retry gets the same answer from the key itself
        assert _request("k-1", BODY, keys, meta, clock).body["message_id"] == "wamid.ACCEPTED"

    def test_without_evidence_yet_the_retry_waits_instead_of_resending(self) -> None:
        keys, meta, clock = self._interrupted()
        clock.now += timedelta(seconds=30)
        with pytest.raises(idempotency.IdempotencyKeyInUseError) as waiting:
            _request("k-1", BODY, keys, meta, clock)
        assert meta.sends == 1
        assert 0 < waiting.value.retry_after_seconds <= idempotency.EVIDENCE_WAIT.total_seconds()

    def test_without_evidence_after_the_wait_the_message_is_sent_again(self) -> None:
        keys, meta, clock = self._interrupted()
        clock.now += idempotency.EVIDENCE_WAIT + timedelta(seconds=1)
        answer = _request("k-1", BODY, keys, meta, clock)
        assert answer.replayed is False
        assert meta.sends == 2


def test_the_key_is_stored_only_as_its_hash() -> None:
    keys = FakeKeys()
    _request("crm-secret-order-4411", BODY, keys, Meta(), Clock())
    assert "crm-secret-order-4411" not in repr(keys.records)
    assert list(keys.records) == [idempotency.key_id("crm-secret-order-4411")]
