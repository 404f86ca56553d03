"""Issue 10, points 1-3 as rules: Meta's timestamps at the calendar's ends, parts DynamoDB refuses for good,
and one JSON decoder with one depth limit for the webhook and the responder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local import meta_payloads as meta
from whatsapp_crm.api_models import ConversationSummary, MessageView
from whatsapp_crm.clock import EARLIEST_PLAUSIBLE_UNIX, shifted_iso
from whatsapp_crm.errors import UnstorableError
from whatsapp_crm.handoff import QueuedInbound
from whatsapp_crm.ingest import UnstorablePart, inbound_record, preference_change, record_notification, status_update
from whatsapp_crm.json_text import MAX_DEPTH, MalformedPayloadError, decode_json
from whatsapp_crm.outbound import window_closes_at, window_is_open
from whatsapp_crm.read_api import conversation_summary, message_view
from whatsapp_crm.records import InboundRecord, PreferenceChange, StatusOutcome, StatusUpdate
from whatsapp_crm.sqs.dead_letters import MAX_MESSAGE_BYTES, dead_letter_body, read_dead_letter
from whatsapp_crm.store.toolkit import unstorable
from whatsapp_crm.webhook.parse import decode_body, parse_notification

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
RECEIVED_AT = "2026-11-25T10:00:00Z"
LAST_DAY_OF_9999 = 253_402_250_000  # 9999-12-31T10:13:20Z
LEAD = "972525551234"

# --- 1. timestamps at the calendar's ends ----------------------------------------------------------------


@pytest.mark.parametrize("stored", ["9999-12-31T12:00:00Z", "9999-12-31T23:59:59Z", "9000-01-01T00:00:00Z"])
def test_a_window_stored_at_the_end_of_the_calendar_is_closed_not_an_overflow(stored: str) -> None:
    # Given a lead whose last message was stored with a timestamp in the year 9999 (or any far future)
    # When the window is worked out
    # Then nothing overflows: the window is unusable (closed), its end unknown
    assert window_closes_at(stored, NOW) is None
    assert window_is_open(stored, NOW) is False


def test_date_arithmetic_is_safe_at_both_ends_of_the_calendar() -> None:
    assert shifted_iso("9999-12-31T12:00:00Z", timedelta(hours=24)) is None
    assert shifted_iso("0001-01-01T00:00:00Z", -timedelta(seconds=1)) is None
    assert shifted_iso("not a time", timedelta(hours=1)) is None
    assert shifted_iso("2026-11-25T10:00:00Z", timedelta(hours=24)) == "2026-11-26T10:00:00Z"


@pytest.mark.parametrize("meta_seconds", [LAST_DAY_OF_9999, 0, EARLIEST_PLAUSIBLE_UNIX - 1, 1_795_773_600])
def test_an_implausible_message_timestamp_runs_the_window_from_receipt_and_keeps_metas_value(
    meta_seconds: int,
) -> None:
    # Given a message whose timestamp is in the year 9999, 1970, 2008, or 2 days after we received it
    message = meta.text_message(LEAD, "שלום", timestamp=meta_seconds)
    [event] = parse_notification(meta.envelope(meta.message_value([message]))).messages
    # When it becomes a record and a hand-off
    record = inbound_record(event, RECEIVED_AT)
    # Then the window and timeline run from when we received it, and Meta's own value is kept
    assert record.timestamp == RECEIVED_AT
    assert record.meta_timestamp == meta_seconds
    assert json.loads(record.raw_json)["timestamp"] == str(meta_seconds)


def test_a_plausible_timestamp_is_metas_own() -> None:
    message = meta.text_message(LEAD, "שלום", timestamp=1_764_064_800)  # 2025-11-25T10:00:00Z
    [event] = parse_notification(meta.envelope(meta.message_value([message]))).messages
    record = inbound_record(event, RECEIVED_AT)
    assert (record.timestamp, record.meta_timestamp) == ("2025-11-25T10:00:00Z", None)


def test_statuses_and_opt_changes_dated_in_9999_do_not_outrank_every_later_event() -> None:
    # Given a status and a stop request dated in the year 9999
    status = meta.status("wamid.out1", "delivered", LEAD, timestamp=LAST_DAY_OF_9999)
    notification = parse_notification(meta.envelope(meta.status_value([status])))
    stop = {"wa_id": LEAD, "category": "marketing_messages", "value": "stop", "timestamp": LAST_DAY_OF_9999}
    preferences = parse_notification(
        meta.envelope({"metadata": meta.metadata(), "user_preferences": [stop]}, field="user_preferences")
    )
    # Then both are dated when we received them
    update = status_update(notification.statuses[0], RECEIVED_AT)
    change = preference_change(preferences.preferences[0], RECEIVED_AT)
    assert update is not None and update.timestamp == RECEIVED_AT
    assert change is not None and change.timestamp == RECEIVED_AT


def test_a_queued_record_from_before_the_check_answers_by_its_receipt_time() -> None:
    queued = QueuedInbound(
        wamid="wamid.x",
        wa_id=LEAD,
        phone_number_id="1",
        timestamp=LAST_DAY_OF_9999,
        received_at=RECEIVED_AT,
        message={"id": "wamid.x", "from": LEAD, "timestamp": str(LAST_DAY_OF_9999), "type": "text"},
    )
    assert queued.sent_unix == int(NOW.timestamp())


_ODD_STRINGS = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59Z",
            "9999-12-31T12:00:00Z",
            "0001-01-01T00:00:00Z",
            "2026-11-25T10:00:00Z",
            "",
            "2026-02-30T10:00:00Z",
            "not a time at all...Z",
            "+275760-09-13T00:00Z",
        ]
    ),
    st.text(max_size=30),
)
_ODD_VALUES = st.one_of(
    _ODD_STRINGS,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**38), max_value=10**38),
    st.floats(allow_nan=False, allow_infinity=False),
    st.dictionaries(st.text(max_size=8), _ODD_STRINGS, max_size=3),
    st.lists(_ODD_STRINGS, max_size=3),
)
_LEAD_FIELDS = [
    "profile_name",
    "lead_id",
    "last_message_at",
    "last_message_preview",
    "unread_count",
    "awaits_response",
    "opted_out",
    "last_inbound_at",
    "meeting_request",
    "last_human_outbound_at",
]
_MESSAGE_FIELDS = [
    "wamid",
    "PK",
    "direction",
    "message_type",
    "text",
    "timestamp",
    "status",
    "status_ts_sent",
    "status_ts_read",
    "status_ts_bogus",
    "error",
    "intent",
    "language",
    "auto_reply",
    "reply_to",
    "sent_by",
    "request",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lead=st.fixed_dictionaries({"wa_id": st.just(LEAD)}, optional=dict.fromkeys(_LEAD_FIELDS, _ODD_VALUES)),
    item=st.fixed_dictionaries({}, optional=dict.fromkeys(_MESSAGE_FIELDS, _ODD_VALUES)),
    takeover_hours=st.integers(min_value=0, max_value=24 * 30),
)
def test_the_read_models_never_fail_on_any_stored_value(
    lead: dict[str, Any], item: dict[str, Any], takeover_hours: int
) -> None:
    # Given any values a stored lead or message could hold, the calendar's ends included
    # When the read API shapes them
    summary = conversation_summary(lead, timedelta(hours=takeover_hours), NOW)
    view = message_view(item)
    # Then each becomes a valid answer (never a 500 for the whole page)
    json.loads(ConversationSummary.model_validate(summary, from_attributes=True).model_dump_json())
    json.loads(MessageView.model_validate(view, from_attributes=True).model_dump_json())
    assert summary.unread_count >= 0
    if summary.window_expires_at is not None:
        assert summary.window_expires_at <= "9999-12-31T23:59:59Z"


# --- 2. parts DynamoDB can never store -----------------------------------------------------------------------


def _client_error(code: str, reasons: list[dict[str, str]] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "..."}}
    if reasons is not None:
        response["CancellationReasons"] = reasons
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


def test_dynamodb_validation_refusals_are_permanent_and_throttles_are_not() -> None:
    assert unstorable(_client_error("ValidationException")) is not None
    cancelled = _client_error("TransactionCanceledException", [{"Code": "None"}, {"Code": "ValidationError"}])
    assert unstorable(cancelled) is not None
    assert unstorable(_client_error("ProvisionedThroughputExceededException")) is None
    assert unstorable(_client_error("TransactionCanceledException", [{"Code": "ConditionalCheckFailed"}])) is None
    assert unstorable(_client_error("TransactionCanceledException", [{"Code": "ThrottlingError"}])) is None


class _Store:
    """Refuses for good any message whose text starts with 'huge', as DynamoDB refuses a 300 KB item."""

    def __init__(self) -> None:
        self.stored: list[str] = []

    def record_inbound(self, record: InboundRecord) -> bool:
        if (record.text or "").startswith("huge"):
            raise UnstorableError("ValidationException")
        self.stored.append(record.wamid)
        return True

    def record_status(self, update: StatusUpdate) -> StatusOutcome:
        if len(update.wamid) > 2000:
            raise UnstorableError("ValidationException")
        return StatusOutcome.APPLIED

    def record_preference(self, change: PreferenceChange) -> bool:
        return True


class _Queue:
    def __init__(self) -> None:
        self.queued: list[str] = []

    def enqueue(self, messages: Any) -> None:
        self.queued.extend(handoff.wamid for handoff in messages)


class _DeadLetters:
    def __init__(self) -> None:
        self.parts: list[UnstorablePart] = []

    def set_aside(self, part: UnstorablePart) -> str:
        self.parts.append(part)
        return f"dl-{len(self.parts)}"


def test_an_unstorable_part_is_set_aside_and_the_rest_is_stored_and_queued() -> None:
    # Given one POST with a good message, one DynamoDB refuses for good, and an unstorable status
    good = meta.text_message(LEAD, "שלום", wamid="wamid.good")
    huge = meta.text_message(LEAD, "huge" + "x" * 10, wamid="wamid.huge")
    document = meta.envelope(
        meta.message_value([huge, good]), meta.status_value([meta.status("w" * 3000, "read", LEAD)])
    )
    store, queue, dead_letters = _Store(), _Queue(), _DeadLetters()
    # When it is recorded
    report = record_notification(parse_notification(document), store, queue, dead_letters=dead_letters)
    # Then the good message is stored and queued, the others are set aside whole, and counted
    assert store.stored == ["wamid.good"]
    assert queue.queued == ["wamid.good"]
    assert [(part.kind, part.reason) for part in dead_letters.parts] == [
        ("message", "ValidationException"),
        ("status", "ValidationException"),
    ]
    assert json.loads(dead_letters.parts[0].raw_json) == huge
    assert report.dead_letter_ids == ["dl-1", "dl-2"]
    assert report.new_messages == 1


@pytest.mark.parametrize("size", [10, 2_000_000])
def test_a_dead_letter_holds_the_part_whole(size: int) -> None:
    # Given a part of 10 characters, and one of 2 MB (over SQS's 1 MiB per message)
    raw = json.dumps({"id": "wamid.x", "text": {"body": "ש" * size}}, ensure_ascii=False)
    part = UnstorablePart("message", "ValidationException", raw, "106540352242922", RECEIVED_AT)
    # When it becomes a dead letter
    body = dead_letter_body(part)
    # Then it fits one SQS message and gives the part back whole
    assert len(body.encode("utf-8")) <= MAX_MESSAGE_BYTES
    document = read_dead_letter(body)
    assert document["part"] == json.loads(raw)
    assert (document["kind"], document["reason"]) == ("message", "ValidationException")


# --- 3. one decoder, one limit ----------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    inner: Any = "x"
    for _ in range(depth):
        inner = {"n": inner}
    return inner


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, MAX_DEPTH + 60, 900])
def test_a_body_deeper_than_the_limit_is_refused_whichever_parser_reads_it(depth: int) -> None:
    # Given a signed body whose message nests deeper than the shared limit (json could read it, jiter not)
    message = meta.text_message(LEAD, "hi")
    message["deep"] = _nested(depth)
    body = meta.wire_bytes(meta.envelope(meta.message_value([message])))
    # Then the webhook refuses it as malformed, as the responder would refuse its record
    with pytest.raises(MalformedPayloadError, match="nests"):
        decode_body(body)


def test_every_record_the_webhook_can_queue_the_responder_can_read() -> None:
    # Given the deepest message the webhook accepts, with a lone surrogate that sends it down json's path
    message = meta.text_message(LEAD, "half an emoji \ud83d")
    message["deep"] = _nested(MAX_DEPTH - 8)  # the message object sits 8 levels down
    body = json.dumps(meta.envelope(meta.message_value([message])), ensure_ascii=True).encode()
    [event] = parse_notification(decode_body(body)).messages
    record = inbound_record(event, RECEIVED_AT)
    # When the hand-off is read back with the same decoder the responder uses
    queued = QueuedInbound.model_validate(decode_json(_handoff_body(event, record)))
    # Then it parses
    assert queued.wamid == message["id"]


def _handoff_body(event: Any, record: InboundRecord) -> str:
    from whatsapp_crm.ingest import _handoff

    return _handoff(event, record.received_at).body()
