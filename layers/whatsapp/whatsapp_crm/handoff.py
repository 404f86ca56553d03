"""The contract between the webhook and the responder: one SQS FIFO message per inbound WhatsApp message.

MessageGroupId is the lead's wa_id (replies stay in order per lead, leads run in parallel) and
MessageDeduplicationId is the wamid (FIFO drops a redelivery within its 5-minute window; the
responder's own claim covers the rest).
"""

from __future__ import annotations

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
