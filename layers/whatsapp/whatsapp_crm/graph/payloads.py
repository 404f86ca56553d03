"""Request bodies for `POST /<phone_number_id>/messages`, built without any I/O.

Shapes follow Meta's send API. Only structural rules are checked here (how many buttons, one media
source); length limits are left to Meta, whose counting rules we would only drift away from.
`to` is normalized to E.164 with '+' because Meta prepends the *business* number's country code to
a number without one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from whatsapp_crm.graph.errors import InvalidMessageError
from whatsapp_crm.phone import normalize_phone

MediaKind = Literal["image", "document", "audio", "video", "sticker"]

MEDIA_KINDS: frozenset[str] = frozenset({"image", "document", "audio", "video", "sticker"})
_CAPTIONED_KINDS = frozenset({"image", "document", "video"})
MAX_REPLY_BUTTONS = 3
MAX_LIST_ROWS = 10
MAX_LIST_SECTIONS = 10


def _common(
    to: str,
    kind: str,
    content: Any,
    *,
    default_region: str,
    reply_to: str | None = None,
    biz_opaque_callback_data: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": normalize_phone(to, default_region).e164,
        "type": kind,
        kind: content,
    }
    if reply_to:
        body["context"] = {"message_id": reply_to}
    if biz_opaque_callback_data is not None:
        body["biz_opaque_callback_data"] = biz_opaque_callback_data
    return body


def message(message: Mapping[str, Any], *, default_region: str = "IL") -> dict[str, Any]:
    """A caller's Meta send object, completed: messaging_product, default recipient_type, normalized `to`."""
    to = message.get("to")
    if not isinstance(to, str):
        raise InvalidMessageError("the message has no 'to'")
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidMessageError("the message has no 'type'")
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    body.update({key: value for key, value in message.items() if key != "messaging_product"})
    body["to"] = normalize_phone(to, default_region).e164
    return body


def text(
    to: str,
    body: str,
    *,
    preview_url: bool = False,
    reply_to: str | None = None,
    biz_opaque_callback_data: str | None = None,
    default_region: str = "IL",
) -> dict[str, Any]:
    if not body:
        raise InvalidMessageError("a text message needs a body")
    return _common(
        to,
        "text",
        {"preview_url": preview_url, "body": body},
        default_region=default_region,
        reply_to=reply_to,
        biz_opaque_callback_data=biz_opaque_callback_data,
    )


def template(
    to: str,
    name: str,
    language_code: str,
    components: Sequence[Mapping[str, Any]] = (),
    *,
    reply_to: str | None = None,
    biz_opaque_callback_data: str | None = None,
    default_region: str = "IL",
) -> dict[str, Any]:
    if not name or not language_code:
        raise InvalidMessageError("a template needs a name and a language code")
    content: dict[str, Any] = {"name": name, "language": {"code": language_code}}
    if components:
        content["components"] = [dict(component) for component in components]
    return _common(
        to,
        "template",
        content,
        default_region=default_region,
        reply_to=reply_to,
        biz_opaque_callback_data=biz_opaque_callback_data,
    )


def media(
    to: str,
    kind: MediaKind,
    *,
    media_id: str | None = None,
    link: str | None = None,
    caption: str | None = None,
    filename: str | None = None,
    reply_to: str | None = None,
    biz_opaque_callback_data: str | None = None,
    default_region: str = "IL",
) -> dict[str, Any]:
    if kind not in MEDIA_KINDS:
        raise InvalidMessageError(f"unknown media kind {kind!r}")
    if (media_id is None) == (link is None):
        raise InvalidMessageError("give exactly one of media_id and link")
    if caption is not None and kind not in _CAPTIONED_KINDS:
        raise InvalidMessageError(f"{kind} messages take no caption")
    if filename is not None and kind != "document":
        raise InvalidMessageError("only documents take a filename")
    content: dict[str, Any] = {"id": media_id} if media_id is not None else {"link": link}
    if caption is not None:
        content["caption"] = caption
    if filename is not None:
        content["filename"] = filename
    return _common(
        to,
        kind,
        content,
        default_region=default_region,
        reply_to=reply_to,
        biz_opaque_callback_data=biz_opaque_callback_data,
    )


def _interactive(
    kind: str, body: str, action: dict[str, Any], header: str | None, footer: str | None
) -> dict[str, Any]:
    interactive: dict[str, Any] = {"type": kind}
    if header:
        interactive["header"] = {"type": "text", "text": header}
    interactive["body"] = {"text": body}
    if footer:
        interactive["footer"] = {"text": footer}
    interactive["action"] = action
    return interactive


def reply_buttons(
    to: str,
    body: str,
    buttons: Sequence[tuple[str, str]],
    *,
    header: str | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    biz_opaque_callback_data: str | None = None,
    default_region: str = "IL",
) -> dict[str, Any]:
    if not 1 <= len(buttons) <= MAX_REPLY_BUTTONS:
        raise InvalidMessageError(f"reply buttons take 1 to {MAX_REPLY_BUTTONS} buttons, got {len(buttons)}")
    ids = [button_id for button_id, _ in buttons]
    titles = [title for _, title in buttons]
    if len(set(ids)) != len(ids) or len(set(titles)) != len(titles):
        raise InvalidMessageError("reply button ids and titles must be unique")
    action = {
        "buttons": [{"type": "reply", "reply": {"id": button_id, "title": title}} for button_id, title in buttons]
    }
    interactive = _interactive("button", body, action, header, footer)
    return _common(
        to,
        "interactive",
        interactive,
        default_region=default_region,
        reply_to=reply_to,
        biz_opaque_callback_data=biz_opaque_callback_data,
    )


def list_message(
    to: str,
    body: str,
    button: str,
    sections: Sequence[Mapping[str, Any]],
    *,
    header: str | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    biz_opaque_callback_data: str | None = None,
    default_region: str = "IL",
) -> dict[str, Any]:
    if not 1 <= len(sections) <= MAX_LIST_SECTIONS:
        raise InvalidMessageError(f"a list takes 1 to {MAX_LIST_SECTIONS} sections, got {len(sections)}")
    rows = sum(len(section.get("rows") or ()) for section in sections)
    if not 1 <= rows <= MAX_LIST_ROWS:
        raise InvalidMessageError(f"a list takes 1 to {MAX_LIST_ROWS} rows in all, got {rows}")
    action = {"button": button, "sections": [dict(section) for section in sections]}
    interactive = _interactive("list", body, action, header, footer)
    return _common(
        to,
        "interactive",
        interactive,
        default_region=default_region,
        reply_to=reply_to,
        biz_opaque_callback_data=biz_opaque_callback_data,
    )


def reaction(to: str, message_id: str, emoji: str, *, default_region: str = "IL") -> dict[str, Any]:
    """An empty `emoji` removes an earlier reaction. Reactions cannot quote (no context)."""
    if not message_id:
        raise InvalidMessageError("a reaction needs the message_id it reacts to")
    return _common(to, "reaction", {"message_id": message_id, "emoji": emoji}, default_region=default_region)


def location(
    to: str,
    latitude: float,
    longitude: float,
    *,
    name: str | None = None,
    address: str | None = None,
    reply_to: str | None = None,
    default_region: str = "IL",
) -> dict[str, Any]:
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise InvalidMessageError("latitude or longitude out of range")
    content: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name is not None:
        content["name"] = name
    if address is not None:
        content["address"] = address
    return _common(to, "location", content, default_region=default_region, reply_to=reply_to)


def contacts(
    to: str,
    cards: Sequence[Mapping[str, Any]],
    *,
    reply_to: str | None = None,
    default_region: str = "IL",
) -> dict[str, Any]:
    if not cards:
        raise InvalidMessageError("a contacts message needs at least one contact")
    return _common(to, "contacts", [dict(card) for card in cards], default_region=default_region, reply_to=reply_to)


def mark_as_read(message_id: str, *, typing_indicator: bool = False) -> dict[str, Any]:
    if not message_id:
        raise InvalidMessageError("mark_as_read needs the inbound message_id")
    body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
    if typing_indicator:
        body["typing_indicator"] = {"type": "text"}
    return body
