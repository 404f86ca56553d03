"""The contract between the webhook and the responder: one SQS FIFO message per inbound WhatsApp message.

`QueuedInbound` is the whole contract: the webhook builds one from the message it has just validated, the
queue adapter (whatsapp_crm.sqs.inbound_queue) sends `body()`, and the responder reads it back with the same
model, so the message is typed on both sides and validated once on each. MessageGroupId is the lead's wa_id
(replies stay in order per lead, leads run in parallel) and MessageDeduplicationId is the wamid (FIFO drops
a redelivery within its 5-minute window; the responder's own claim covers the rest).

Forward compatible both ways: a message type Meta adds later is queued and read back as `unknown` (never an
error), and records queued before this model, whose `message` was Meta's raw object, read the same way.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict

from whatsapp_crm.clock import is_plausible_unix, parse_iso_or_none, plausible_unix
from whatsapp_crm.webhook.models import InboundMessage


class QueuedInbound(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    wamid: str
    wa_id: str
    phone_number_id: str
    display_phone_number: str | None = None
    profile_name: str | None = None
    timestamp: int  # Unix seconds: Meta's, or when the webhook received it if Meta's was implausible
    received_at: str
    message: InboundMessage  # the webhook's model of the message (the raw object is stored, not queued)

    def body(self) -> str:
        """The SQS message body: compact JSON in Meta's field names, absent fields left out."""
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @property
    def sent_unix(self) -> int:
        """When the lead wrote: `timestamp`, unless it is implausible (a record queued before the webhook
        checked Meta's timestamps), then when the webhook received it."""
        received = parse_iso_or_none(self.received_at)
        if received is None:
            return self.timestamp if is_plausible_unix(self.timestamp, int(time.time())) else int(time.time())
        return plausible_unix(self.timestamp, int(received.timestamp()))
