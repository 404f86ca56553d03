"""What the responder records about a reply, independent of the use case and of how it is stored.

The claim on an inbound wamid, the reply a holder was about to send, evidence of an earlier send, the
lead state the decision reads and the meeting request a slot tap records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

# Sent as biz_opaque_callback_data with every auto-reply; Meta echoes it in the reply's status webhooks.
CALLBACK_PREFIX = "auto_reply:"


class ClaimStatus(StrEnum):
    ACQUIRED = "acquired"  # first attempt, or an earlier one released the claim without sending
    RESUMED = "resumed"  # an earlier holder's lease ran out: it may have died before or after sending
    HANDLED = "handled"  # replied, skipped or failed for good already
    HELD = "held"  # another consumer holds a live lease


@dataclass(frozen=True, slots=True)
class PendingReply:
    """What a holder was about to send, stored on the claim just before the Graph call."""

    kind: str
    body: str
    intent: str
    language: str
    buttons: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Claim:
    status: ClaimStatus
    wamid: str
    owner: str
    claimed_at: str
    first_claimed_at: str
    pending: PendingReply | None = None  # set when an earlier holder reached the Graph call
    sending_at: str | None = None  # with `pending`: when that holder called Graph (ISO 8601 UTC)
    outcome: str | None = None  # for HANDLED: what happened back then
    lease_expires_at: int | None = None  # for HELD: Unix seconds


@dataclass(frozen=True, slots=True)
class SentReply:
    """Evidence that an earlier attempt's reply reached Meta: a status webhook or a recorded send."""

    wamid: str
    recorded: bool


@dataclass(frozen=True, slots=True)
class LeadSnapshot:
    wa_id: str
    opted_out: bool = False
    opt_state_at: str | None = None
    opt_state_source: str | None = None
    last_human_outbound_at: str | None = None
    auto_reply_at: Mapping[str, str] = field(default_factory=dict)  # intent -> last auto-reply time


@dataclass(frozen=True, slots=True)
class MeetingRequest:
    slot_id: str
    slot_start: str  # ISO 8601 UTC
    requested_at: str  # Meta's timestamp of the tap
    source_wamid: str
    status: str = "requested"
