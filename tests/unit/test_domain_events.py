"""Which committed changes are CRM facts, and what their events carry (whatsapp_crm.domain_events), and how a
batch is published when EventBridge or the dead-letter queue misbehave (whatsapp_crm.outbox)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import jsonschema
import pytest

from local.template import ROOT
from whatsapp_crm.domain_events import (
    DetailType,
    EventOptions,
    StatusChanges,
    TableChange,
    UnmappableChangeError,
    events_for,
)
from whatsapp_crm.errors import QueueUnavailableError
from whatsapp_crm.outbox import publish_changes

LEAD = "972525551234"
NUMBER = "106540352242922"


def _message(**fields: Any) -> dict[str, Any]:
    return {"PK": "MSG#w1", "SK": "MSG", "wamid": "w1", "wa_id": LEAD, "phone_number_id": NUMBER, **fields}


def _lead(**fields: Any) -> dict[str, Any]:
    return {"PK": f"LEAD#{LEAD}", "SK": "LEAD", "wa_id": LEAD, "last_phone_number_id": NUMBER, **fields}


def _change(new: dict[str, Any] | None, old: dict[str, Any] | None = None, sequence: str = "100") -> TableChange:
    item = new or old or {}
    name = "REMOVE" if new is None else ("MODIFY" if old else "INSERT")
    return TableChange(name, {"PK": item["PK"], "SK": item["SK"]}, old, new, sequence, "2026-12-07T10:00:01Z")


def _types(change: TableChange, options: EventOptions | None = None) -> list[str]:
    return [event.detail_type.value for event in events_for(change, options)]


INBOUND = _message(direction="inbound", message_type="text", timestamp="2026-12-07T10:00:00Z", text="שלום")


class TestMessages:
    def test_a_new_inbound_message_is_received_without_its_text(self) -> None:
        [event] = events_for(_change(INBOUND))
        assert event.detail_type.value == "message.received"
        assert event.detail["wamid"] == "w1" and event.detail["wa_id"] == LEAD
        assert event.detail["phone_number_id"] == NUMBER
        assert event.detail["occurred_at"] == "2026-12-07T10:00:00Z"
        assert "text" not in event.detail

    def test_the_text_is_included_only_when_allowed(self) -> None:
        [event] = events_for(_change(INBOUND), EventOptions(include_text=True))
        assert event.detail["text"] == "שלום"

    def test_the_same_fact_always_gets_the_same_id_and_another_fact_another(self) -> None:
        first = events_for(_change(INBOUND, sequence="1"))[0]
        again = events_for(_change(INBOUND, sequence="9"))[0]
        other = events_for(_change({**INBOUND, "wamid": "w2", "PK": "MSG#w2"}))[0]
        assert first.id == again.id != other.id

    def test_annotating_a_stored_message_is_not_a_new_message(self) -> None:
        assert _types(_change({**INBOUND, "intent": "greeting"}, INBOUND)) == []

    def test_the_responders_record_taking_intent_meeting_is_the_meeting_request(self) -> None:
        # Since the table redesign the intent arrives with the reply claim, not on the message
        claim = {
            "PK": "MSG#w1",
            "SK": "REPLY",
            "wamid": "w1",
            "wa_id": LEAD,
            "phone_number_id": NUMBER,
            "message_at": "2026-12-07T10:00:00Z",
            "state": "in_progress",
            "intent": "meeting",
            "intent_cue": "לקבוע",
            "language": "he",
        }
        [event] = events_for(_change(claim))
        assert event.detail_type.value == "meeting.requested"
        assert (event.detail["wamid"], event.detail["phone_number_id"]) == ("w1", NUMBER)
        # Same fact, same id as when the message carried the intent
        asked = {**INBOUND, "intent": "meeting", "intent_cue": "meeting"}
        assert event.detail["id"] == events_for(_change(asked, INBOUND))[0].detail["id"]
        # The claim's later writes (sending, done) and a slot tap mean nothing more
        assert events_for(_change({**claim, "state": "done"}, claim)) == []
        assert events_for(_change({**claim, "intent_cue": "slot:2026-12-08T09:00"})) == []

    def test_a_meeting_question_is_a_meeting_request_but_a_slot_tap_is_not(self) -> None:
        asked = {**INBOUND, "intent": "meeting", "intent_cue": "meeting"}
        assert _types(_change(asked, INBOUND)) == ["meeting.requested"]
        tapped = {**INBOUND, "intent": "meeting", "intent_cue": "slot:2026-12-08T09:00"}
        assert _types(_change(tapped, INBOUND)) == []

    @pytest.mark.parametrize(
        ("old_rank", "new_rank", "status", "expected"),
        [
            (None, 1, "sent", ["message.status_changed"]),  # a status before our send record
            (0, 1, "sent", ["message.status_changed"]),
            (1, 3, "read", ["message.status_changed"]),
            (3, 3, "read", []),  # a repeated status rewrites history only
            (0, 0, "accepted", []),  # our own send record: not a status move
            (2, 5, "failed", ["message.failed"]),
        ],
    )
    def test_only_forward_status_moves_are_published(
        self, old_rank: int | None, new_rank: int, status: str, expected: list[str]
    ) -> None:
        old = _message(direction="outbound", status_rank=old_rank, status="x") if old_rank is not None else None
        new = _message(direction="outbound", status_rank=new_rank, status=status, error={"code": 131026})
        assert _types(_change(new, old)) == expected

    @pytest.mark.parametrize(
        ("setting", "crm_send", "auto_reply"),
        [
            (StatusChanges.EXCEPT_AUTO_REPLIES, ["message.status_changed"], []),  # the default
            (StatusChanges.ALL, ["message.status_changed"], ["message.status_changed"]),
            (StatusChanges.NONE, [], []),
        ],
    )
    def test_which_status_moves_are_published_but_failures_always_are(
        self, setting: StatusChanges, crm_send: list[str], auto_reply: list[str]
    ) -> None:
        options = EventOptions(status_changes=setting)
        sent = _message(direction="outbound", status_rank=1, status="sent", auto_reply=False)
        reply = {**sent, "auto_reply": True}
        assert _types(_change(sent), options) == crm_send
        assert _types(_change(reply), options) == auto_reply
        # Meta's status before the responder's record: the echoed callback data says it is an auto-reply
        early = _message(direction="outbound", status_rank=1, status="sent", biz_opaque_callback_data="auto_reply:w0")
        assert _types(_change(early), options) == auto_reply
        failed = _message(direction="outbound", status_rank=5, status="failed", auto_reply=True)
        assert _types(_change(failed), options) == ["message.failed"]

    def test_an_auto_reply_is_sent_once_and_a_human_send_is_not_an_auto_reply(self) -> None:
        reply = _message(direction="outbound", auto_reply=True, sent_at="2026-12-07T10:00:02Z", status_rank=0)
        assert _types(_change(reply)) == ["auto_reply.sent"]
        assert _types(_change({**reply, "status_ts_sent": "x"}, reply)) == []
        human = {**reply, "auto_reply": False}
        assert _types(_change(human)) == []


class TestLeads:
    def test_opting_out_then_in_are_two_facts(self) -> None:
        out = _lead(opted_out=True, opt_state_at="2026-12-07T10:00:00Z", opt_state_source="text:stop")
        back = _lead(opted_out=False, opt_state_at="2026-12-07T11:00:00Z", opt_state_source="text:start")
        assert _types(_change(out, _lead())) == ["lead.opted_out"]
        assert _types(_change(back, out)) == ["lead.opted_in"]
        assert _types(_change(back, _lead())) == []  # never opted out: nothing to resume

    def test_a_new_slot_tap_is_a_booking(self) -> None:
        meeting = {"slot_id": "slot:a", "requested_at": "2026-12-07T10:00:00Z", "source_wamid": "w1"}
        booked = _lead(meeting_request=meeting)
        assert _types(_change(booked, _lead())) == ["meeting.booked"]
        assert _types(_change({**booked, "unread_count": 2}, booked)) == []

    def test_a_human_takeover_starts_once_per_period(self) -> None:
        options = EventOptions(human_takeover=timedelta(hours=12))
        first = _lead(last_human_outbound_at="2026-12-07T10:00:00Z")
        again = _lead(last_human_outbound_at="2026-12-07T11:00:00Z")
        later = _lead(last_human_outbound_at="2026-12-08T00:00:00Z")
        [event] = events_for(_change(first, _lead()), options)
        assert event.detail["until"] == "2026-12-07T22:00:00Z"
        assert _types(_change(again, first), options) == []
        assert _types(_change(later, again), options) == ["lead.human_takeover"]

    def test_a_conversation_item_publishes_only_its_takeover_with_its_number(self) -> None:
        # A lead's conversation with our second number (issue 14): every message changes it
        def conversation(**fields: Any) -> dict[str, Any]:
            return {"PK": f"LEAD#{LEAD}", "SK": "CONV#110022003300", "wa_id": LEAD, **fields}

        wrote = conversation(last_inbound_at="2026-12-07T10:00:00Z", last_inbound_wamid="w1", unread_tags={"0a"})
        assert events_for(_change(wrote)) == []  # its message's message.received comes from the message item
        answered = {**wrote, "last_human_outbound_at": "2026-12-07T10:05:00Z"}
        [event] = events_for(_change(answered, wrote))
        assert event.detail_type.value == "lead.human_takeover"
        assert (event.detail["wa_id"], event.detail["phone_number_id"]) == (LEAD, "110022003300")
        # The same moment in another conversation is another fact
        other = {**answered, "SK": f"CONV#{NUMBER}"}
        [elsewhere] = events_for(_change(other, {**wrote, "SK": f"CONV#{NUMBER}"}))
        assert elsewhere.id != event.id


class TestUnreadable:
    def test_claims_counters_and_removals_mean_nothing(self) -> None:
        claim = {"PK": "MSG#w1", "SK": "REPLY", "state": "done"}
        assert events_for(_change(claim)) == []
        assert events_for(_change(None, INBOUND)) == []

    def test_a_message_without_a_lead_cannot_be_mapped(self) -> None:
        with pytest.raises(UnmappableChangeError) as error:
            events_for(_change({"PK": "MSG#w1", "SK": "MSG", "wamid": "w1", "direction": "inbound"}))
        assert error.value.reason == "message_without_wa_id"


class Bus:
    def __init__(self, refuse_calls: int = 0) -> None:
        self.refuse_calls = refuse_calls
        self.calls: list[list[dict[str, Any]]] = []
        self.accepted: list[dict[str, Any]] = []

    def put(self, entries: Sequence[dict[str, Any]]) -> list[str | None]:
        self.calls.append(list(entries))
        if len(self.calls) <= self.refuse_calls:
            return ["ThrottlingException"] * len(entries)
        self.accepted.extend(entries)
        return [None] * len(entries)


class Letters:
    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.kept: list[dict[str, Any]] = []

    def set_aside(self, letters: Sequence[dict[str, Any]]) -> None:
        if self.down:
            raise QueueUnavailableError("down")
        self.kept.extend(letters)


def _inbound(index: int) -> TableChange:
    item = {**INBOUND, "PK": f"MSG#w{index}", "wamid": f"w{index}"}
    return _change(item, sequence=str(100 + index))


class TestOutbox:
    def test_events_go_out_ten_per_call(self) -> None:
        bus = Bus()
        report = publish_changes([_inbound(i) for i in range(23)], bus_name="b", publisher=bus, dead_letters=Letters())
        assert [len(call) for call in bus.calls] == [10, 10, 3]
        assert report.published == 23 and report.retry_from is None
        assert json.loads(bus.accepted[0]["Detail"])["wamid"] == "w0"

    def test_refused_entries_are_retried_then_kept_whole(self) -> None:
        bus, letters = Bus(refuse_calls=3), Letters()
        report = publish_changes([_inbound(1)], bus_name="b", publisher=bus, dead_letters=letters, attempts=3)
        assert len(bus.calls) == 3 and bus.accepted == []
        [letter] = letters.kept
        assert letter["entry"]["DetailType"] == "message.received" and letter["entry"]["EventBusName"] == "b"
        assert (report.dead_lettered, report.retry_from) == (1, None)

    def test_with_nowhere_to_keep_them_the_batch_retries_from_the_first_unsafe_record(self) -> None:
        bus = Bus(refuse_calls=99)
        changes = [_change(_lead()), _inbound(2), _inbound(3)]
        report = publish_changes(changes, bus_name="b", publisher=bus, dead_letters=Letters(down=True))
        assert report.retry_from == "102"


SCHEMAS = ROOT / "docs" / "events"


def _every_fact() -> list[TableChange]:
    """One change per detail-type, with every optional field the mapping can set."""
    out = _lead(opted_out=True, opt_state_at="2026-12-07T10:00:00Z", opt_state_source="text:stop")
    meeting = {"slot_id": "slot:a", "slot_start": "2026-12-08T07:00:00Z", "requested_at": "2026-12-07T10:00:00Z"}
    sent = _message(direction="outbound", status="sent", status_rank=1, status_ts_sent="2026-12-07T10:00:03Z")
    return [
        _change({**INBOUND, "reply_to": "w0", "media_id": "m1", "received_at": "2026-12-07T10:00:01Z"}),
        _change({**INBOUND, "intent": "meeting", "language": "he"}, INBOUND),
        _change(
            _message(
                direction="outbound",
                auto_reply=True,
                sent_at="2026-12-07T10:00:02Z",
                reply_to="w0",
                intent="greeting",
                message_type="text",
                text="hi",
                status_rank=0,
            )
        ),
        _change(
            {**sent, "pricing_category": "service"}, _message(direction="outbound", status="accepted", status_rank=0)
        ),
        _change(_message(direction="outbound", status="failed", status_rank=5, error={"code": 131026, "title": "x"})),
        _change(out, _lead()),
        _change(_lead(opted_out=False, opt_state_at="2026-12-07T11:00:00Z", opt_state_source="text:start"), out),
        _change(_lead(meeting_request={**meeting, "source_wamid": "w1"}), _lead()),
        _change(_lead(last_human_outbound_at="2026-12-07T10:00:00Z"), _lead()),
    ]


@pytest.mark.parametrize("include_text", [False, True])
def test_every_detail_type_has_a_schema_its_events_satisfy(include_text: bool) -> None:
    events = [
        event for change in _every_fact() for event in events_for(change, EventOptions(include_text=include_text))
    ]
    assert {event.detail_type for event in events} == set(DetailType)
    for event in events:
        schema = json.loads((SCHEMAS / f"{event.detail_type.value}.schema.json").read_text(encoding="utf-8"))
        jsonschema.validate(event.detail, schema, format_checker=jsonschema.FormatChecker())
    assert {path.name.removesuffix(".schema.json") for path in SCHEMAS.glob("*.schema.json")} == set(DetailType)
