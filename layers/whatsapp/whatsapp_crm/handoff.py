"""The contract between the webhook and the responder: one SQS FIFO message per inbound WhatsApp message.

MessageGroupId is the lead's wa_id (replies stay in order per lead, leads run in parallel) and
MessageDeduplicationId is the wamid (FIFO drops a redelivery within its 5-minute window; the
responder's own claim covers the rest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


class QueuedInbound(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    wamid: str
    wa_id: str
    phone_number_id: str
    display_phone_number: str | None = None
    profile_name: str | None = None
    timestamp: int  # Meta's Unix seconds
    received_at: str
    message: dict[str, Any]  # the message object exactly as Meta sent it


_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class Handoff:
    """One SQS FIFO entry as the webhook sends it: `body` is a QueuedInbound in JSON."""

    wa_id: str  # MessageGroupId
    wamid: str  # MessageDeduplicationId
    body: str


def handoff(
    *,
    wamid: str,
    wa_id: str,
    phone_number_id: str,
    display_phone_number: str | None,
    profile_name: str | None,
    timestamp: int,
    received_at: str,
    message_json: str,
) -> Handoff:
    """Build the queue entry without a second validation or serialization of the raw message: the webhook
    already holds it as JSON text (tests check that the body validates back into QueuedInbound)."""
    header = {
        "wamid": wamid,
        "wa_id": wa_id,
        "phone_number_id": phone_number_id,
        "display_phone_number": display_phone_number,
        "profile_name": profile_name,
        "timestamp": timestamp,
        "received_at": received_at,
    }
    encoded = _compact_json(header)
    return Handoff(wa_id=wa_id, wamid=wamid, body=f'{encoded[:-1]},"message":{message_json}}}')
