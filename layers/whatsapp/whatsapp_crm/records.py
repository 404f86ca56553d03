"""What the service records about a conversation, independent of how it is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class StatusRank(IntEnum):
    """Statuses only move forward. `failed` is terminal: nothing after it changes the status."""

    ACCEPTED = 0
    SENT = 1
    DELIVERED = 2
    READ = 3
    PLAYED = 4
    FAILED = 5

    @classmethod
    def of(cls, status: str) -> StatusRank | None:
        try:
            return cls[status.upper()]
        except KeyError:
            return None


@dataclass(frozen=True, slots=True)
class MessageError:
    code: int | None
    title: str | None
    details: str | None = None

    def as_item(self) -> dict[str, Any]:
        return {
            key: value
            for key, value in (("code", self.code), ("title", self.title), ("details", self.details))
            if value is not None
        }


# Not frozen: a frozen dataclass sets each field through object.__setattr__ (~1.5 µs per record, built on
# every webhook event); nothing mutates it, and unsafe_hash keeps the frozen class's field-wise hash.
@dataclass(slots=True, unsafe_hash=True)
class InboundRecord:
    """A new message from a lead, as the webhook received it."""

    wamid: str
    wa_id: str
    phone_number_id: str
    message_type: str
    timestamp: str  # Meta's, ISO 8601 UTC (received_at when Meta's is implausible): the 24-hour window runs from here
    received_at: str
    raw_json: str
    profile_name: str | None = None
    meta_timestamp: int | None = None  # Meta's own value, only when it was too implausible to use
    text: str | None = None
    media_id: str | None = None
    mime_type: str | None = None
    reply_to: str | None = None
    errors: tuple[MessageError, ...] = ()
    preview: str = ""


# Not frozen, for the same reason as InboundRecord (one per status of every webhook).
@dataclass(slots=True, unsafe_hash=True)
class StatusUpdate:
    wamid: str
    status: str
    rank: StatusRank
    timestamp: str
    received_at: str
    recipient_wa_id: str | None
    phone_number_id: str
    error: MessageError | None = None
    pricing_category: str | None = None
    biz_opaque_callback_data: str | None = None


class SentBy(StrEnum):
    HUMAN = "human"  # the CRM's send API: starts the responder's human-takeover period
    AUTO_REPLY = "auto_reply"


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A message we sent and Meta accepted (it holds a wamid). Merges with statuses that arrived first."""

    wamid: str
    wa_id: str
    phone_number_id: str
    message_type: str
    timestamp: str  # when Meta accepted it, ISO 8601 UTC
    sent_by: SentBy
    text: str | None = None
    preview: str = ""
    intent: str | None = None
    reply_to: str | None = None
    media_id: str | None = None
    request_json: str | None = None  # the send object as we posted it, minus nothing secret
    # An auto-reply's offered buttons, compact: [[id, title], ...] (its text is `text`; no request echo).
    buttons_json: str | None = None
    message_status: str | None = None  # template pacing: accepted / held_for_quality_assessment / paused
    lead_id: str | None = None
    # None leaves the lead's flag alone; a human send clears it, an auto-reply sets it per intent.
    awaits_response: bool | None = None
    callback: str | None = None  # biz_opaque_callback_data as sent (Meta echoes it in status webhooks)


class StatusOutcome(StrEnum):
    APPLIED = "applied"  # the message's status moved forward
    STALE = "stale"  # an older status arrived after a newer one; history kept, status unchanged
    DUPLICATE = "duplicate"  # this exact status was already recorded


@dataclass(frozen=True, slots=True)
class PreferenceChange:
    wa_id: str
    opted_out: bool
    timestamp: str
    detail: str | None = None
    source: str = "user_preferences"
    # The business number the change came through (events name it); the change holds for every number.
    phone_number_id: str | None = None

    @classmethod
    def stopped_marketing(
        cls, wa_id: str, at: str, code: int | None, phone_number_id: str | None = None
    ) -> PreferenceChange:
        """Meta's 131050 (on a send, or in a `failed` status): the lead stopped marketing messages, which
        opts them out here too, wherever the code arrives."""
        return cls(wa_id, True, at, detail=str(code), source=f"graph:{code}", phone_number_id=phone_number_id)


@dataclass(frozen=True, slots=True)
class Lead:
    wa_id: str
    name: str | None = None
    lead_id: str | None = None
    first_seen_at: str | None = None
    last_inbound_at: str | None = None
    last_inbound_wamid: str | None = None
    last_message_at: str | None = None
    last_message_preview: str | None = None
    last_human_outbound_at: str | None = None
    unread_count: int = 0
    awaits_response: bool = False
    opted_out: bool = False
    opted_out_at: str | None = None
    opt_out_cue: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
