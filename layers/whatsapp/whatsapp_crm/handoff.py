"""The contract between the webhook and the responder: one SQS FIFO message per inbound WhatsApp message.

MessageGroupId is the lead's wa_id (replies stay in order per lead, leads run in parallel) and
MessageDeduplicationId is the wamid (FIFO drops a redelivery within its 5-minute window; the
responder's own claim covers the rest).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr


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

    # The webhook serializes the raw message once for DynamoDB; the queue body reuses that text.
    _message_json: str | None = PrivateAttr(default=None)

    def with_message_json(self, message_json: str) -> QueuedInbound:
        self._message_json = message_json
        return self

    def to_body(self) -> str:
        """The SQS message body: this model as JSON (what the responder validates back into it)."""
        if self._message_json is None:
            return self.model_dump_json()
        header = json.dumps(self.model_dump(exclude={"message"}), ensure_ascii=False, separators=(",", ":"))
        return f'{header[:-1]},"message":{self._message_json}}}'
