"""The contract between the webhook and the responder: one SQS FIFO message per inbound WhatsApp message.

MessageGroupId is the lead's wa_id (replies stay in order per lead, leads run in parallel) and
MessageDeduplicationId is the wamid (FIFO drops a redelivery within its 5-minute window; the
responder's own claim covers the rest).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from pydantic import BaseModel, ConfigDict

from whatsapp_crm.clock import is_plausible_unix, parse_iso_or_none, plausible_unix


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

    @property
    def sent_unix(self) -> int:
        """When the lead wrote: `timestamp`, unless it is implausible (a record queued before the webhook
        checked Meta's timestamps), then when the webhook received it."""
        received = parse_iso_or_none(self.received_at)
        if received is None:
            return self.timestamp if is_plausible_unix(self.timestamp, int(time.time())) else int(time.time())
        return plausible_unix(self.timestamp, int(received.timestamp()))


# Not frozen: frozen's per-field object.__setattr__ is a measurable share of the webhook's CPU (see
# bench/bench_webhook.py); nothing mutates it, and unsafe_hash keeps the frozen class's hash.
@dataclass(slots=True, unsafe_hash=True)
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
    # Written out rather than json-encoding a dict (~4x faster): encode_basestring is what the compact
    # JSONEncoder uses for every string, so the text is byte for byte the same.
    return Handoff(
        wa_id=wa_id,
        wamid=wamid,
        body=(
            f'{{"wamid":{encode_basestring(wamid)},"wa_id":{encode_basestring(wa_id)},'
            f'"phone_number_id":{encode_basestring(phone_number_id)},'
            f'"display_phone_number":{_string_or_null(display_phone_number)},'
            f'"profile_name":{_string_or_null(profile_name)},"timestamp":{int(timestamp)},'
            f'"received_at":{encode_basestring(received_at)},"message":{message_json}}}'
        ),
    )


def _string_or_null(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)
