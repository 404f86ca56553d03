"""CRM domain events from committed table changes: the transactional outbox, read from DynamoDB Streams.

Nothing here writes twice: the webhook, the responder and the send API write the table as they always did,
and EventsFunction turns each change the table committed (a stream record with its old and new images)
into the facts a CRM cares about. A fact is recognised by what changed, never by who wrote it:

    detail-type              item     change
    message.received         message  an inbound message appears
    message.status_changed   message  status_rank moves forward (sent, delivered, read, played); by
                                      default not for auto-replies (StatusChanges)
    message.failed           message  status_rank moves forward to failed
    auto_reply.sent          message  an auto-reply's sent_at appears
    meeting.requested        reply    the responder's record of an inbound message takes intent meeting
                                      (not a slot tap; older messages carried the intent themselves)
    lead.opted_out           lead     opted_out becomes true
    lead.opted_in            lead     opted_out becomes false after being true
    meeting.booked           lead     meeting_request names another slot tap
    lead.human_takeover      conv.    a human send starts a takeover period in the conversation with one
                                      business number (none was running there); lead items written before
                                      issue 14 carry it themselves

A conversation item (the lead with one business number: window, unread, timeline) changes with every
message; the only fact it carries is a takeover, so it never repeats the message's own message.received.
`detail.phone_number_id` is the message's number, the conversation's, or for a lead fact the number it
came through (the lead item's `last_phone_number_id`, written with the opt change or the meeting tap).

Redelivered webhooks, retried replies and late statuses fail their conditional writes or change nothing
that matters here, so they produce no event. Each event's `detail.id` is derived from the fact itself
(a UUID 5 of the detail-type and the fact's identity), so a stream record processed twice publishes an
event with the same id: consumers deduplicate on it (EventBridge's own event id is new per PutEvents).

Items are told apart by their sort key and attributes, not by the layout of their partition keys, so a
key redesign leaves this mapping alone. docs/events/ holds one JSON schema per detail-type.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from whatsapp_crm.clock import parse_iso_or_none, shifted_iso
from whatsapp_crm.responder_records import CALLBACK_PREFIX
from whatsapp_crm.schedule import SLOT_ID_PREFIX

SOURCE = "whatsapp-crm"
DETAIL_VERSION = 1
# Fixed for ever: detail ids of facts already published must not change with a new release.
_ID_NAMESPACE = uuid.UUID("6f1c3d52-8a0e-4b7f-9c1d-2e5a7b9f0c44")

_MESSAGE_SK = "MSG"
_LEAD_SK = "LEAD"
_REPLY_SK = "REPLY"
_CONVERSATION_SK_PREFIX = "CONV#"
_FAILED_RANK = 5
_ACCEPTED_RANK = 0


class DetailType(StrEnum):
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_STATUS_CHANGED = "message.status_changed"
    MESSAGE_FAILED = "message.failed"
    AUTO_REPLY_SENT = "auto_reply.sent"
    LEAD_OPTED_OUT = "lead.opted_out"
    LEAD_OPTED_IN = "lead.opted_in"
    MEETING_REQUESTED = "meeting.requested"
    MEETING_BOOKED = "meeting.booked"
    LEAD_HUMAN_TAKEOVER = "lead.human_takeover"


class StatusChanges(StrEnum):
    """Which messages' forward status moves are published (CrmEventsStatusChanges)."""

    ALL = "all"
    # CRM and agent sends only: an auto-reply's sent/delivered/read are three events per answered message
    # that a CRM rarely acts on (docs/cost.md). Its failure is published whatever this says.
    EXCEPT_AUTO_REPLIES = "except_auto_replies"
    NONE = "none"


class UnmappableChangeError(ValueError):
    """A change of a message or lead item that lacks what every event needs (a wa_id, a new image)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TableChange:
    """One committed change of one item, as a stream record carries it (images as plain values)."""

    event_name: str  # INSERT | MODIFY | REMOVE
    keys: Mapping[str, Any]
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    sequence_number: str
    committed_at: str | None = None  # ApproximateCreationDateTime, ISO 8601 UTC


@dataclass(frozen=True, slots=True)
class EventOptions:
    """What a deployment publishes. Message text is personal data: off unless the stack says otherwise."""

    include_text: bool = False
    human_takeover: timedelta = timedelta(hours=12)
    status_changes: StatusChanges = StatusChanges.EXCEPT_AUTO_REPLIES


@dataclass(frozen=True, slots=True)
class DomainEvent:
    detail_type: DetailType
    detail: dict[str, Any]
    sequence_number: str = ""  # the stream record it came from (partial-batch failure reporting)
    time: str | None = None  # when the fact happened, for EventBridge's `time`

    @property
    def id(self) -> str:
        return str(self.detail["id"])


@dataclass(slots=True)
class _Builder:
    change: TableChange
    options: EventOptions
    events: list[DomainEvent] = field(default_factory=list)

    def emit(self, detail_type: DetailType, identity: str, occurred_at: Any, **fields: Any) -> None:
        occurred = occurred_at if isinstance(occurred_at, str) and occurred_at else self.change.committed_at
        detail: dict[str, Any] = {
            "id": str(uuid.uuid5(_ID_NAMESPACE, f"{detail_type.value}|{identity}")),
            "version": DETAIL_VERSION,
            "occurred_at": occurred,
            "committed_at": self.change.committed_at,
            # Always present (null for a lead who never wrote): consumers filter on it.
            "phone_number_id": fields.pop("phone_number_id", None),
        }
        detail.update({name: value for name, value in fields.items() if value is not None})
        self.events.append(DomainEvent(detail_type, detail, self.change.sequence_number, occurred))


def item_kind(change: TableChange) -> str | None:
    """`message`, `lead`, `conversation` (a lead's with one business number), `reply` (the responder's claim
    and decision about an inbound message), or None for items no event is about (counters, templates...)."""
    sort_key = change.keys.get("SK")
    if isinstance(sort_key, str) and sort_key.startswith(_CONVERSATION_SK_PREFIX):
        return "conversation"
    if sort_key == _MESSAGE_SK:
        return "message"
    if sort_key == _LEAD_SK:
        return "lead"
    if sort_key == _REPLY_SK:
        return "reply"
    return None


def events_for(change: TableChange, options: EventOptions | None = None) -> list[DomainEvent]:
    """The events one committed change means, in the order they happened (often none).

    Raises UnmappableChangeError for a message or lead change that cannot be read: the caller sets the
    record aside rather than losing a fact silently.
    """
    options = options or EventOptions()
    kind = item_kind(change)
    if kind is None or change.event_name == "REMOVE":
        return []  # nothing a CRM acts on (a TTL sweep of a lead or message is not a fact about the lead)
    new = change.new
    if not isinstance(new, Mapping):
        raise UnmappableChangeError("no_new_image")
    if set(new) <= set(change.keys):
        return []  # keys only: no fact yet (moto writes such an INSERT before a transaction's update)
    old = change.old if isinstance(change.old, Mapping) else {}
    if kind == "reply" and new.get("intent") != "meeting":
        return []  # a claim, its lease or a decision: the only fact a reply record can carry is a meeting ask
    wa_id = new.get("wa_id")
    if not isinstance(wa_id, str) or not wa_id:
        raise UnmappableChangeError(f"{kind}_without_wa_id")
    builder = _Builder(change, options)
    if kind == "message":
        _message_events(builder, old, new, wa_id)
    elif kind == "reply":
        _reply_events(builder, old, new, wa_id)
    elif kind == "conversation":
        number = str(change.keys["SK"])[len(_CONVERSATION_SK_PREFIX) :]
        _takeover(builder, old, new, {"wa_id": wa_id, "phone_number_id": number or None})
    else:
        _lead_events(builder, old, new, wa_id)
    return builder.events


def _text(builder: _Builder, item: Mapping[str, Any]) -> str | None:
    text = item.get("text")
    return text if builder.options.include_text and isinstance(text, str) else None


def _message_events(builder: _Builder, old: Mapping[str, Any], new: Mapping[str, Any], wa_id: str) -> None:
    wamid = new.get("wamid")
    if not isinstance(wamid, str) or not wamid:
        raise UnmappableChangeError("message_without_wamid")
    number = new.get("phone_number_id")
    common = {"wa_id": wa_id, "phone_number_id": number if isinstance(number, str) else None, "wamid": wamid}
    inbound = new.get("direction") == "inbound"
    if inbound and not old:
        builder.emit(
            DetailType.MESSAGE_RECEIVED,
            wamid,
            new.get("timestamp"),
            **common,
            message_type=new.get("message_type"),
            received_at=new.get("received_at"),
            reply_to=new.get("reply_to"),
            media_id=new.get("media_id"),
            text=_text(builder, new),
        )
    if inbound:
        _meeting_requested(builder, old, new, common, new.get("timestamp"), _text(builder, new))
    else:
        _outbound_events(builder, old, new, common)


def _meeting_requested(
    builder: _Builder,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    common: Mapping[str, Any],
    at: Any,
    text: str | None,
) -> None:
    if new.get("intent") != "meeting" or old.get("intent") == "meeting":
        return
    cue = new.get("intent_cue")
    if isinstance(cue, str) and cue.startswith(SLOT_ID_PREFIX):
        return  # a slot tap is meeting.booked
    builder.emit(
        DetailType.MEETING_REQUESTED, str(common["wamid"]), at, **common, language=new.get("language"), text=text
    )


def _reply_events(builder: _Builder, old: Mapping[str, Any], new: Mapping[str, Any], wa_id: str) -> None:
    """The responder's reply record: the intent arrives with its claim (docs/table-design.md). The message's
    text is not on it; with CrmEventsIncludeText it is in the same wamid's message.received."""
    wamid = new.get("wamid")
    if not isinstance(wamid, str) or not wamid:
        raise UnmappableChangeError("reply_without_wamid")
    number = new.get("phone_number_id")
    common = {"wa_id": wa_id, "phone_number_id": number if isinstance(number, str) else None, "wamid": wamid}
    _meeting_requested(builder, old, new, common, new.get("message_at") or new.get("claimed_at"), None)


def _outbound_events(
    builder: _Builder, old: Mapping[str, Any], new: Mapping[str, Any], common: Mapping[str, Any]
) -> None:
    wamid = str(common["wamid"])
    if new.get("auto_reply") is True and new.get("sent_at") and not old.get("sent_at"):
        builder.emit(
            DetailType.AUTO_REPLY_SENT,
            wamid,
            new.get("sent_at"),
            **common,
            in_reply_to=new.get("reply_to"),
            intent=new.get("intent"),
            message_type=new.get("message_type"),
            text=_text(builder, new),
        )
    rank, previous_rank = new.get("status_rank"), old.get("status_rank")
    if not isinstance(rank, int) or rank <= _ACCEPTED_RANK:
        return
    if isinstance(previous_rank, int) and previous_rank >= rank:
        return  # a late or repeated status: history only, not a move
    status = str(new.get("status", ""))
    at = new.get(f"status_ts_{status}") or new.get("status_at")
    previous = old.get("status") if isinstance(previous_rank, int) else None
    if rank >= _FAILED_RANK:
        stored_error = new.get("error")
        error: Mapping[str, Any] = stored_error if isinstance(stored_error, Mapping) else {}
        builder.emit(
            DetailType.MESSAGE_FAILED,
            wamid,
            at,
            **common,
            previous_status=previous,
            error={key: error[key] for key in ("code", "title", "details") if key in error} or None,
        )
    elif _publishes_status(builder.options.status_changes, auto_reply=_is_auto_reply(new)):
        builder.emit(
            DetailType.MESSAGE_STATUS_CHANGED,
            f"{wamid}|{status}",
            at,
            **common,
            status=status,
            previous_status=previous,
            auto_reply=_is_auto_reply(new),
            pricing_category=new.get("pricing_category"),
        )


def _is_auto_reply(item: Mapping[str, Any]) -> bool:
    """The responder's flag, or, when Meta's status came before the responder's record, the callback data
    every auto-reply is sent with (Meta echoes it in the reply's statuses)."""
    callback = item.get("biz_opaque_callback_data")
    return item.get("auto_reply") is True or (isinstance(callback, str) and callback.startswith(CALLBACK_PREFIX))


def _publishes_status(setting: StatusChanges, *, auto_reply: bool) -> bool:
    if setting is StatusChanges.ALL:
        return True
    return setting is StatusChanges.EXCEPT_AUTO_REPLIES and not auto_reply


def _lead_events(builder: _Builder, old: Mapping[str, Any], new: Mapping[str, Any], wa_id: str) -> None:
    number = new.get("last_phone_number_id")
    common = {"wa_id": wa_id, "phone_number_id": number if isinstance(number, str) else None}
    opted_out, was_opted_out = new.get("opted_out") is True, old.get("opted_out") is True
    if opted_out != was_opted_out and "opted_out" in new:
        at = new.get("opt_state_at")
        builder.emit(
            DetailType.LEAD_OPTED_OUT if opted_out else DetailType.LEAD_OPTED_IN,
            f"{wa_id}|{at}|{new.get('opt_state_source')}",
            at,
            **common,
            source=new.get("opt_state_source"),
        )
    meeting, earlier = new.get("meeting_request"), old.get("meeting_request")
    if isinstance(meeting, Mapping) and (not isinstance(earlier, Mapping) or _tap(meeting) != _tap(earlier)):
        builder.emit(
            DetailType.MEETING_BOOKED,
            f"{wa_id}|{meeting.get('source_wamid')}|{meeting.get('slot_id')}",
            meeting.get("requested_at"),
            **common,
            slot_id=meeting.get("slot_id"),
            slot_start=meeting.get("slot_start"),
            source_wamid=meeting.get("source_wamid"),
        )
    _takeover(builder, old, new, common)


def _tap(meeting: Mapping[str, Any]) -> tuple[Any, Any]:
    return meeting.get("slot_id"), meeting.get("requested_at")


def _takeover(builder: _Builder, old: Mapping[str, Any], new: Mapping[str, Any], common: Mapping[str, Any]) -> None:
    period = builder.options.human_takeover
    started, before = new.get("last_human_outbound_at"), old.get("last_human_outbound_at")
    if period <= timedelta(0) or not isinstance(started, str) or started == before:
        return
    start, previous = parse_iso_or_none(started), parse_iso_or_none(before)
    if start is None:
        return
    if previous is not None and start - previous < period:
        return  # a human writes again within a running takeover: the same takeover, extended
    # A takeover is one conversation's: two numbers' takeovers at the same second are two facts. (A lead
    # item written before issue 14 keeps the identity its takeovers had.)
    identity = f"{common['wa_id']}|{started}"
    if builder.change.keys.get("SK") != _LEAD_SK:
        identity = f"{common['wa_id']}|{common.get('phone_number_id')}|{started}"
    builder.emit(
        DetailType.LEAD_HUMAN_TAKEOVER,
        identity,
        started,
        **common,
        until=shifted_iso(started, period),
    )
