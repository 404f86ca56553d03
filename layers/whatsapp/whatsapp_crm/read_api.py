"""Reading conversations: the lead list by activity, one lead's thread, and marking a thread read.

Pagination cursors are opaque and tamper-evident: `v1.<payload>.<signature>`, the payload naming the last
item returned and the route and lead it belongs to, the signature an HMAC-SHA256 over both under a key
only the service holds. A cursor is honoured only on the route and lead it was issued for, and the store
rebuilds the partition key from the request, never from the cursor, so even a valid cursor cannot reach
another lead's messages. Anything that does not verify is an InvalidCursorError (HTTP 400).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from whatsapp_crm.clock import shifted_iso, utc_now
from whatsapp_crm.graph.errors import GraphAPIError
from whatsapp_crm.media_archive import MEDIA_KINDS
from whatsapp_crm.media_types import normalize_sha256
from whatsapp_crm.numbers import is_ours, sending_number
from whatsapp_crm.phone import InvalidPhoneNumberError, normalize_phone
from whatsapp_crm.records import StatusRank
from whatsapp_crm.service_window import window_closes_at

CURSOR_VERSION = "v1"
MAX_CURSOR_LENGTH = 2048
_KEY_CONTEXT = b"whatsapp-crm/pagination-cursor/v1"
STATUS_PREFIX = "status_ts_"
RESET_ATTEMPTS = 3
# The responder's default (HUMAN_TAKEOVER_HOURS); the function passes its own setting.
DEFAULT_TAKEOVER = timedelta(hours=12)


class InvalidCursorError(ValueError):
    """The cursor is garbled, forged, or was issued for another route or lead. Deliberately vague."""

    def __init__(self) -> None:
        super().__init__("the cursor is not valid for this request; start again without one")


class InvalidWaIdError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"not a WhatsApp id or phone number: {reason}")


class ForeignNumberError(ValueError):
    """`?phone_number_id=` names a number this deployment does not own (WhatsAppPhoneNumberIds)."""

    def __init__(self) -> None:
        super().__init__("not one of this deployment's WhatsApp numbers (WhatsAppPhoneNumberIds)")


class LeadNotFoundError(LookupError):
    def __init__(self) -> None:
        super().__init__("no conversation with this WhatsApp id")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last item's table key and its sort key on the index."""

    pk: str
    sort_key: str


@dataclass(frozen=True, slots=True)
class NumberFilter:
    """Only leads whose latest message was with this business number; `or_unnumbered` also keeps leads
    stored before the number was recorded (the list shows those under the first number)."""

    phone_number_id: str
    or_unnumbered: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_position: Position | None


# --- what the read API answers (the handler maps these to api_models' response bodies) ---------------


@dataclass(frozen=True, slots=True)
class Conversation:
    """One lead in the list, by last activity."""

    wa_id: str
    name: str | None
    lead_id: str | None
    last_message_at: str | None
    last_message_preview: str | None
    unread_count: int
    awaits_response: bool
    opted_out: bool
    window_expires_at: str | None
    meeting: dict[str, Any] | None
    last_human_outbound_at: str | None
    human_takeover_until: str | None
    phone_number_id: str | None


@dataclass(frozen=True, slots=True)
class ConversationList:
    conversations: list[Conversation]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class StatusReached:
    """A delivery status and when Meta reported it."""

    status: str
    timestamp: str


@dataclass(frozen=True, slots=True)
class OfferedReply:
    """A reply button a message offered (a meeting slot's id for offered slots)."""

    id: str
    title: str


MediaState = Literal["pending", "archived", "unavailable"]
_MEDIA_STATES: dict[str, MediaState] = {"pending": "pending", "archived": "archived", "unavailable": "unavailable"}


@dataclass(frozen=True, slots=True)
class MediaFile:
    """What a thread says about a media message's file: Meta's fields, then the archive's outcome."""

    id: str | None
    mime_type: str | None
    size: int | None
    sha256: str | None
    caption: str | None
    filename: str | None
    status: MediaState
    reason: str | None


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    id: str
    direction: Literal["inbound", "outbound"]
    type: str
    text: str | None
    timestamp: str
    status: str | None
    status_history: list[StatusReached]
    error: dict[str, Any] | None
    intent: str | None
    language: str | None
    auto_reply: bool
    reply_to: str | None
    sent_by: Literal["human", "auto_reply"] | None
    buttons: list[OfferedReply]
    template_name: str | None
    media: MediaFile | None


@dataclass(frozen=True, slots=True)
class Thread:
    wa_id: str
    phone_number_id: str
    messages: list[ThreadMessage]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ReadReceiptOutcome:
    """The blue ticks of POST .../read: best effort, so reported rather than raised."""

    message_id: str | None
    status: Literal["sent", "failed", "none"]
    # Meta's answer when it refused (code, title, details, fbtrace_id); None otherwise.
    graph_error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MarkedRead:
    wa_id: str
    phone_number_id: str
    unread_count: int
    read_receipt: ReadReceiptOutcome


class ConversationReader(Protocol):
    def list_leads(self, limit: int, after: Position | None, number: NumberFilter | None = None) -> Page: ...
    def list_thread(self, wa_id: str, phone_number_id: str, limit: int, after: Position | None) -> Page: ...
    def get_lead(self, wa_id: str, phone_number_id: str | None = None) -> dict[str, Any] | None:
        """The lead as seen through its conversation with `phone_number_id` (else the number it last wrote
        to): that conversation's fields, the lead's opt-out, `phone_number_id`, and `conversations`."""
        ...

    def reset_unread(self, wa_id: str, phone_number_id: str, seen_wamid: str | None, at: str) -> bool: ...
    def media_records(self, media_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...


class ReadReceiptSender(Protocol):
    def mark_as_read(self, phone_number_id: str, message_id: str, *, typing_indicator: bool = False) -> None: ...


# --- cursors -------------------------------------------------------------------------------------


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursorError() from None


class CursorSigner:
    """Signs and verifies cursors. Derive the key once from a secret the service already holds."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a cursor key needs at least 16 bytes")
        self._key = key

    @classmethod
    def from_secret(cls, secret: str) -> CursorSigner:
        """A key of its own, derived from (for instance) the app secret, so cursors never expose that secret."""
        if not secret:
            raise ValueError("no secret to derive the cursor key from")
        return cls(hmac.new(secret.encode("utf-8"), _KEY_CONTEXT, hashlib.sha256).digest())

    def _signature(self, signed_part: str) -> str:
        return _b64encode(hmac.new(self._key, signed_part.encode("ascii"), hashlib.sha256).digest())

    def issue(self, route: str, wa_id: str, position: Position) -> str:
        document = {"r": route, "w": wa_id, "pk": position.pk, "sk": position.sort_key}
        payload = _b64encode(json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode("ascii"))
        signed_part = f"{CURSOR_VERSION}.{payload}"
        return f"{signed_part}.{self._signature(signed_part)}"

    def verify(self, cursor: str, route: str, wa_id: str) -> Position:
        if not cursor.isascii() or len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 2:
            raise InvalidCursorError()
        version, payload, signature = cursor.split(".")
        signed_part = f"{version}.{payload}"
        if version != CURSOR_VERSION or not hmac.compare_digest(signature, self._signature(signed_part)):
            raise InvalidCursorError()
        try:
            document = json.loads(_b64decode(payload))
        except ValueError:
            raise InvalidCursorError() from None
        if not isinstance(document, dict) or document.get("r") != route or document.get("w") != wa_id:
            raise InvalidCursorError()
        pk, sort_key = document.get("pk"), document.get("sk")
        if not isinstance(pk, str) or not isinstance(sort_key, str) or not pk or not sort_key:
            raise InvalidCursorError()
        return Position(pk=pk, sort_key=sort_key)


# --- views ---------------------------------------------------------------------------------------


# Views never trust a stored item's shape: one odd value (written by an older version, by hand, or at
# the calendar's ends) must not turn a whole page into a 500. Each reader below degrades to None/0.


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int:
    return max(0, value) if isinstance(value, int) and not isinstance(value, bool) else 0


def _takeover_until(last_human_outbound_at: str | None, takeover: timedelta) -> str | None:
    if not last_human_outbound_at or takeover <= timedelta(0):
        return None
    return shifted_iso(last_human_outbound_at, takeover)


def conversation_summary(
    lead: Mapping[str, Any],
    takeover: timedelta = DEFAULT_TAKEOVER,
    now: datetime | None = None,
    default_phone_number_id: str | None = None,
) -> Conversation:
    # The responder records the lead's latest meeting request (slot, time, status) on the lead.
    meeting = lead.get("meeting_request")
    last_human = _text(lead.get("last_human_outbound_at"))
    return Conversation(
        wa_id=str(lead["wa_id"]),
        name=_text(lead.get("profile_name")),
        lead_id=_text(lead.get("lead_id")),
        last_message_at=_text(lead.get("last_message_at")),
        last_message_preview=_text(lead.get("last_message_preview")),
        unread_count=_count(lead.get("unread_count")),
        awaits_response=bool(lead.get("awaits_response")),
        opted_out=bool(lead.get("opted_out")),
        window_expires_at=window_closes_at(_text(lead.get("last_inbound_at")), now or utc_now()),
        meeting=meeting if isinstance(meeting, dict) else None,
        last_human_outbound_at=last_human,
        human_takeover_until=_takeover_until(last_human, takeover),
        # The business number the conversation is with: the one the lead last wrote to (sends go from it),
        # else the number sends fall back to.
        phone_number_id=_text(lead.get("last_phone_number_id")) or default_phone_number_id or None,
    )


def _status_history(item: Mapping[str, Any]) -> list[StatusReached]:
    entries = [
        (name.removeprefix(STATUS_PREFIX), value)
        for name, value in item.items()
        if name.startswith(STATUS_PREFIX) and isinstance(value, str)
    ]

    def order(entry: tuple[str, str]) -> tuple[int, str]:
        rank = StatusRank.of(entry[0])
        return (int(rank) if rank is not None else len(StatusRank), entry[1])

    return [StatusReached(status=status, timestamp=at) for status, at in sorted(entries, key=order)]


def _sent_request(item: Mapping[str, Any]) -> dict[str, Any]:
    """The send object as we posted it (outbound messages made by this service), or {}. An auto-reply keeps
    only its offered buttons ([[id, title], ...]), read here as the interactive part they came from."""
    raw = item.get("request")
    if not isinstance(raw, str) or not raw:
        return _from_buttons(item.get("buttons"))
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}


def _from_buttons(raw: Any) -> dict[str, Any]:
    try:
        pairs = json.loads(raw) if isinstance(raw, str) and raw else []
    except (ValueError, RecursionError):
        return {}
    buttons = [
        {"type": "reply", "reply": {"id": pair[0], "title": pair[1]}}
        for pair in pairs
        if isinstance(pairs, list) and isinstance(pair, list) and len(pair) == 2
    ]
    return {"type": "interactive", "interactive": {"type": "button", "action": {"buttons": buttons}}} if buttons else {}


def _offered_buttons(request: Mapping[str, Any]) -> list[OfferedReply]:
    interactive = request.get("interactive")
    action = interactive.get("action") if isinstance(interactive, dict) else None
    buttons = action.get("buttons") if isinstance(action, dict) else None
    offered = []
    for button in buttons if isinstance(buttons, list) else []:
        reply = button.get("reply") if isinstance(button, dict) else None
        if isinstance(reply, dict) and isinstance(reply.get("id"), str) and isinstance(reply.get("title"), str):
            offered.append(OfferedReply(id=reply["id"], title=reply["title"]))
    return offered


def _template_name(request: Mapping[str, Any]) -> str | None:
    template = request.get("template")
    return _text(template.get("name")) if isinstance(template, dict) else None


def _raw_message(item: Mapping[str, Any]) -> dict[str, Any]:
    """The message object as Meta delivered it (inbound messages), or {}."""
    raw = item.get("raw")
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        document = json.loads(raw)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _media_view(item: Mapping[str, Any], kind: str, message: Mapping[str, Any], inbound: bool) -> MediaFile | None:
    """What the thread says about a media message's file: Meta's fields, then the archive's outcome."""
    if kind not in MEDIA_KINDS:
        return None
    content = message.get(kind)
    media: Mapping[str, Any] = content if isinstance(content, dict) else {}
    media_id = _text(item.get("media_id")) or _text(media.get("id"))
    status = _MEDIA_STATES.get(_text(item.get("media_status")) or "")
    reason = _text(item.get("media_reason"))
    if status is None:
        # Inbound: waiting for the archiver. Outbound sent by link (or by an id uploaded elsewhere): never here.
        fallback: tuple[MediaState, str | None] = (
            ("pending", None) if inbound and media_id else ("unavailable", reason or "not_kept")
        )
        status, reason = fallback
    size = item.get("media_size")
    return MediaFile(
        id=media_id,
        mime_type=_text(item.get("media_mime_type")) or _text(item.get("mime_type")) or _text(media.get("mime_type")),
        size=size if isinstance(size, int) else None,
        sha256=_text(item.get("media_sha256")) or normalize_sha256(_text(media.get("sha256"))),
        caption=_text(media.get("caption")),
        filename=_text(media.get("filename")),
        status=status,
        reason=reason,
    )


def message_view(item: Mapping[str, Any]) -> ThreadMessage:
    direction: Literal["inbound", "outbound"] = "inbound" if item.get("direction") == "inbound" else "outbound"
    error = item.get("error")
    request = _sent_request(item) if direction == "outbound" else {}
    kind = _text(item.get("message_type")) or "unknown"
    sent_by = _text(item.get("sent_by")) if direction == "outbound" else None
    return ThreadMessage(
        id=str(item.get("wamid") or str(item.get("PK", "")).removeprefix("MSG#")),
        direction=direction,
        type=kind,
        text=_text(item.get("text")),
        timestamp=_text(item.get("timestamp")) or "",
        status=_text(item.get("status")) if direction == "outbound" else None,
        status_history=_status_history(item),
        error=error if isinstance(error, dict) else None,
        intent=_text(item.get("intent")),
        language=_text(item.get("language")),
        auto_reply=bool(item.get("auto_reply")),
        reply_to=_text(item.get("reply_to")),
        sent_by="human" if sent_by == "human" else "auto_reply" if sent_by == "auto_reply" else None,
        buttons=_offered_buttons(request),
        template_name=_template_name(request),
        media=_media_view(
            item, kind, request if direction == "outbound" else _raw_message(item), direction == "inbound"
        ),
    )


# --- use cases -----------------------------------------------------------------------------------

CONVERSATIONS_ROUTE = "conversations"
MESSAGES_ROUTE = "messages"


def resolve_wa_id(raw: str, default_region: str) -> str:
    """`{wa_id}` as Meta's international digits; a '+' is tolerated, a leading 0 is national."""
    try:
        return normalize_phone(raw, default_region).wa_id
    except InvalidPhoneNumberError as error:
        raise InvalidWaIdError(error.reason) from None


def _after(signer: CursorSigner, cursor: str | None, route: str, wa_id: str) -> Position | None:
    return signer.verify(cursor, route, wa_id) if cursor else None


def list_conversations(
    store: ConversationReader,
    signer: CursorSigner,
    *,
    limit: int,
    cursor: str | None,
    takeover: timedelta = DEFAULT_TAKEOVER,
    default_phone_number_id: str | None = None,
    phone_number_id: str | None = None,
    own_phone_number_ids: tuple[str, ...] = (),
) -> ConversationList:
    """Leads by last activity. `phone_number_id` keeps those whose latest message was with that number
    (one of ours, else ForeignNumberError); the cursor is bound to it, so a cursor of one filter (or of none)
    is refused under another."""
    number = None
    if phone_number_id is not None:
        if not is_ours(phone_number_id, own_phone_number_ids):
            raise ForeignNumberError()
        number = NumberFilter(phone_number_id, or_unnumbered=phone_number_id == default_phone_number_id)
    # The cursor's scope: "" for the whole list (as before the filter existed), else the number.
    scope = f"phone_number_id={phone_number_id}" if phone_number_id is not None else ""
    page = store.list_leads(limit, _after(signer, cursor, CONVERSATIONS_ROUTE, scope), number)
    next_cursor = signer.issue(CONVERSATIONS_ROUTE, scope, page.next_position) if page.next_position else None
    now = utc_now()
    return ConversationList(
        conversations=[
            conversation_summary(lead, takeover, now, default_phone_number_id)
            for lead in page.items
            if isinstance(lead.get("wa_id"), str)
        ],
        next_cursor=next_cursor,
    )


def conversation_number(
    store: ConversationReader, wa_id: str, phone_number_id: str | None, own_phone_number_ids: tuple[str, ...]
) -> tuple[str, Mapping[str, Any] | None]:
    """The business number of the conversation a request means, and the lead as seen through it: the one
    asked for (one of ours, else ForeignNumberError), else the number the lead last wrote to, else the
    first of ours. ("" when no number is known at all: a deployment without WhatsAppPhoneNumberIds.)"""
    if phone_number_id is not None:
        if not is_ours(phone_number_id, own_phone_number_ids):
            raise ForeignNumberError()
        return phone_number_id, store.get_lead(wa_id, phone_number_id)
    lead = store.get_lead(wa_id)
    number = sending_number(_text((lead or {}).get("phone_number_id")), own_phone_number_ids)
    return number, lead


def list_messages(
    store: ConversationReader,
    signer: CursorSigner,
    *,
    wa_id: str,
    limit: int,
    cursor: str | None,
    phone_number_id: str | None = None,
    own_phone_number_ids: tuple[str, ...] = (),
) -> Thread:
    """One conversation's thread: the lead's messages with one business number (see conversation_number)."""
    number, lead = conversation_number(store, wa_id, phone_number_id, own_phone_number_ids)
    # The cursor is bound to the conversation: one number's cursor is refused on another's thread.
    scope = f"{wa_id}@{number}"
    after = _after(signer, cursor, MESSAGES_ROUTE, scope)
    page = store.list_thread(wa_id, number, limit, after)
    # Messages without a lead exist (statuses of sends made outside this API), so only an empty first
    # page asks whether the lead exists at all.
    if not page.items and after is None and lead is None:
        raise LeadNotFoundError()
    next_cursor = signer.issue(MESSAGES_ROUTE, scope, page.next_position) if page.next_position else None
    return Thread(
        wa_id=wa_id, phone_number_id=number, messages=_with_sent_files(store, page.items), next_cursor=next_cursor
    )


def _with_sent_files(store: ConversationReader, items: Sequence[Mapping[str, Any]]) -> list[ThreadMessage]:
    """Outbound files sent by the id POST /media gave are kept in the bucket: one BatchGetItem per page
    finds which (the send path itself never waits for this)."""
    sent = {
        str(item["media_id"])
        for item in items
        if item.get("direction") != "inbound" and item.get("media_id") and not item.get("media_status")
    }
    uploads = store.media_records(sorted(sent)) if sent else {}
    views = []
    for item in items:
        upload = uploads.get(str(item.get("media_id"))) if item.get("direction") != "inbound" else None
        if upload is not None and upload.get("origin") == "upload":
            item = {
                **item,
                "media_status": upload.get("status"),
                "media_size": upload.get("size"),
                "media_sha256": upload.get("sha256"),
                "media_mime_type": upload.get("mime_type"),
            }
        views.append(message_view(item))
    return views


def _reset(store: ConversationReader, wa_id: str, number: str, at: str) -> Mapping[str, Any]:
    """Zero the conversation's unread count up to the newest inbound message seen; a message arriving
    meanwhile stays unread."""
    lead = None
    for _ in range(RESET_ATTEMPTS):
        lead = store.get_lead(wa_id, number)
        if lead is None:
            raise LeadNotFoundError()
        if store.reset_unread(wa_id, number, _text(lead.get("last_inbound_wamid")), at):
            return lead
    # Messages keep arriving: leave the count to the next call rather than wiping unseen ones.
    return lead or {}


def mark_conversation_read(
    store: ConversationReader,
    receipts: Callable[[], ReadReceiptSender],
    *,
    wa_id: str,
    own_phone_number_ids: tuple[str, ...],
    at: str,
    phone_number_id: str | None = None,
) -> MarkedRead:
    """Reset the thread's unread count, then blue-tick the lead's last message on WhatsApp.

    The receipt is best effort: Meta refuses receipts for messages older than 30 days, and that must not
    stop an agent from clearing the badge. Its outcome is reported, not raised. `receipts` builds the
    Graph client only when there is a message to mark (it needs the access token).
    """
    number, _ = conversation_number(store, wa_id, phone_number_id, own_phone_number_ids)
    lead = _reset(store, wa_id, number, at)
    remaining = store.get_lead(wa_id, number) or lead
    wamid = _text(lead.get("last_inbound_wamid"))
    receipt = ReadReceiptOutcome(message_id=wamid, status="none")
    # Blue ticks go from the number the lead wrote to (this conversation's), and only ever from one of ours.
    if wamid and number:
        try:
            receipts().mark_as_read(number, wamid)
            receipt = ReadReceiptOutcome(message_id=wamid, status="sent")
        except GraphAPIError as error:
            # Only when Meta answered: an error of ours (a timeout, no connection) has nothing to show.
            answered = error.code is not None or error.http_status is not None
            receipt = ReadReceiptOutcome(
                message_id=wamid, status="failed", graph_error=error.as_dict() if answered else None
            )
    return MarkedRead(
        wa_id=wa_id, phone_number_id=number, unread_count=_count(remaining.get("unread_count")), read_receipt=receipt
    )
