"""Webhook bodies shaped and encoded the way Meta sends them, for tests, events/, the simulator and benches.

Meta's wire form is compact JSON with every non-ASCII character as a lowercase `\\uXXXX` escape
(emoji as surrogate pairs) and `/` escaped as `\\/`. The signature covers exactly those bytes.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from whatsapp_crm.signature import sign

DEMO_PHONE_NUMBER_ID = "106540352242922"
# A second number the local stack owns (WHATSAPP_PHONE_NUMBER_IDS), for trying a business with two numbers.
DEMO_SECOND_PHONE_NUMBER_ID = "109876543210987"
DEMO_DISPLAY_NUMBER = "15550783881"
DEMO_SECOND_DISPLAY_NUMBER = "15550783882"
# The numbers of the demo WABA as Meta lists them (the Graph simulator owns these two).
DEMO_NUMBERS = {DEMO_PHONE_NUMBER_ID: DEMO_DISPLAY_NUMBER, DEMO_SECOND_PHONE_NUMBER_ID: DEMO_SECOND_DISPLAY_NUMBER}
DEMO_WABA_ID = "102290129340398"

_counter = itertools.count(1)


def wire_bytes(document: Any) -> bytes:
    """Meta's encoding of a JSON document."""
    return json.dumps(document, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode("ascii")


def signed_headers(body: bytes, app_secret: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-hub-signature-256": sign(body, app_secret),
        "user-agent": "facebookexternalua",
    }


def new_wamid(prefix: str = "in") -> str:
    return f"wamid.HBgM{prefix.upper()}{next(_counter):08d}{int(time.time() * 1000) % 10**8:08d}="


def metadata(phone_number_id: str = DEMO_PHONE_NUMBER_ID) -> dict[str, str]:
    display = DEMO_NUMBERS.get(phone_number_id, DEMO_DISPLAY_NUMBER)
    return {"display_phone_number": display, "phone_number_id": phone_number_id}


def envelope(*values: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    """One entry with one change per value."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": DEMO_WABA_ID, "changes": [{"value": value, "field": field} for value in values]}],
    }


def message_value(
    messages: list[dict[str, Any]], *, name: str | None = "Lead", phone_number_id: str = DEMO_PHONE_NUMBER_ID
) -> dict[str, Any]:
    senders = list(dict.fromkeys(message["from"] for message in messages))
    value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": metadata(phone_number_id)}
    if name is not None:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": sender} for sender in senders]
    value["messages"] = messages
    return value


def text_message(
    wa_id: str,
    body: str,
    *,
    wamid: str | None = None,
    timestamp: int | None = None,
    context_id: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "from": wa_id,
        "id": wamid or new_wamid(),
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "type": "text",
        "text": {"body": body},
    }
    if context_id:
        message["context"] = {"from": DEMO_DISPLAY_NUMBER, "id": context_id}
    return message


def button_reply(
    wa_id: str,
    reply_id: str,
    title: str,
    *,
    context_id: str,
    wamid: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    return {
        "context": {"from": DEMO_DISPLAY_NUMBER, "id": context_id},
        "from": wa_id,
        "id": wamid or new_wamid(),
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}},
    }


def status(
    wamid: str,
    status_name: str,
    recipient: str,
    *,
    timestamp: int | None = None,
    error_code: int | None = None,
    error_title: str = "Message undeliverable",
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status_name,
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "recipient_id": recipient,
    }
    if status_name in ("sent", "delivered", "read"):
        item["pricing"] = {
            "billable": True,
            "pricing_model": "PMP",
            "category": "service",
            "type": "free_customer_service",
        }
    if error_code is not None:
        item["errors"] = [
            {
                "code": error_code,
                "title": error_title,
                "message": error_title,
                "error_data": {"details": error_title},
            }
        ]
    return item


def status_value(statuses: list[dict[str, Any]], phone_number_id: str = DEMO_PHONE_NUMBER_ID) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "metadata": metadata(phone_number_id), "statuses": statuses}


def template_status_update(
    name: str,
    language: str,
    event: str,
    *,
    template_id: int | str,
    at: int | None = None,
    reason: str | None = None,
    waba_id: str = DEMO_WABA_ID,
) -> dict[str, Any]:
    """A whole `message_template_status_update` webhook: `entry.time` is when the status changed."""
    value: dict[str, Any] = {
        "event": event,
        "message_template_id": template_id,
        "message_template_name": name,
        "message_template_language": language,
        "reason": reason if reason is not None else "NONE",
    }
    document = envelope(value, field="message_template_status_update")
    document["entry"][0]["id"] = waba_id
    document["entry"][0]["time"] = at if at is not None else int(time.time())
    return document


def media_message(
    wa_id: str,
    kind: str,
    media_id: str,
    *,
    mime_type: str,
    caption: str | None = None,
    filename: str | None = None,
    sha256: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """An inbound image/document/audio/video/sticker message naming a media id Meta holds."""
    media: dict[str, Any] = {"id": media_id, "mime_type": mime_type}
    for key, value in (("sha256", sha256), ("caption", caption), ("filename", filename)):
        if value is not None:
            media[key] = value
    return {
        "from": wa_id,
        "id": new_wamid(),
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "type": kind,
        kind: media,
    }
