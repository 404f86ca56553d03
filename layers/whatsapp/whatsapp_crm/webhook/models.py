"""Pydantic models of the WhatsApp Cloud API webhook (field `messages`), tolerant of what Meta adds.

Every sub-object accepts extra fields (and ignores them: the raw message object is stored whole), enums
fall back to UNKNOWN, and each message or status is validated on its own (see parse.py) so one unusable
part never costs the others.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Unix seconds a calendar can hold (up to 9999-12-31T23:59:59Z): a larger value makes the part unusable
# instead of failing the whole request when it is turned into a date.
MAX_UNIX_SECONDS = 253_402_300_799
UnixSeconds = Annotated[int, Field(ge=0, le=MAX_UNIX_SECONDS)]


class _ForwardCompatibleEnum(StrEnum):
    """A value Meta invents tomorrow maps to UNKNOWN instead of failing validation."""

    @classmethod
    def _missing_(cls, value: object) -> _ForwardCompatibleEnum:
        if isinstance(value, str):
            lowered = value.strip().lower()
            for member in cls:
                if member.value == lowered:
                    return member
        return cls("unknown")


class MessageType(_ForwardCompatibleEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"
    BUTTON = "button"
    REACTION = "reaction"
    ORDER = "order"
    SYSTEM = "system"
    REQUEST_WELCOME = "request_welcome"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


class StatusKind(_ForwardCompatibleEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    UNKNOWN = "unknown"


MEDIA_TYPES = frozenset(
    {MessageType.IMAGE, MessageType.AUDIO, MessageType.VIDEO, MessageType.DOCUMENT, MessageType.STICKER}
)


class _Part(BaseModel):
    # "ignore", not "allow": nothing reads a part's extras, and collecting them costs ~15% of each validation.
    # defer_build: a part's validator is built when it first validates (the read API imports these for
    # MessageType and never validates one; cold start, docs/performance.md).
    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


class ErrorData(_Part):
    details: str | None = None


class GraphErrorInfo(_Part):
    code: int | None = None
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None
    href: str | None = None

    @property
    def details(self) -> str | None:
        return self.error_data.details if self.error_data else None


class Profile(_Part):
    name: str | None = None


class Contact(_Part):
    wa_id: str | None = None
    user_id: str | None = None
    profile: Profile | None = None


class Metadata(_Part):
    display_phone_number: str | None = None
    phone_number_id: str


class Text(_Part):
    body: str = ""


class Media(_Part):
    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    url: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class Location(_Part):
    latitude: float | None = None
    longitude: float | None = None
    name: str | None = None
    address: str | None = None
    url: str | None = None


class ReplyChoice(_Part):
    id: str = ""
    title: str = ""
    description: str | None = None


class Interactive(_Part):
    type: str = ""
    button_reply: ReplyChoice | None = None
    list_reply: ReplyChoice | None = None
    nfm_reply: dict[str, Any] | None = None

    @property
    def choice(self) -> ReplyChoice | None:
        return self.button_reply or self.list_reply


class Button(_Part):
    payload: str | None = None
    text: str | None = None


class Reaction(_Part):
    message_id: str | None = None
    emoji: str | None = None


class Order(_Part):
    catalog_id: str | None = None
    text: str | None = None
    product_items: list[dict[str, Any]] = Field(default_factory=list)


class System(_Part):
    body: str | None = None
    wa_id: str | None = None
    type: str | None = None


class Context(_Part):
    from_: str | None = Field(default=None, alias="from")
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None
    referred_product: dict[str, Any] | None = None


class Referral(_Part):
    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    ctwa_clid: str | None = None


class InboundMessage(_Part):
    id: str = Field(min_length=1)
    from_: str = Field(alias="from", min_length=1)
    timestamp: UnixSeconds
    type: MessageType = MessageType.UNKNOWN
    text: Text | None = None
    image: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    contacts: list[dict[str, Any]] | None = None
    interactive: Interactive | None = None
    button: Button | None = None
    reaction: Reaction | None = None
    order: Order | None = None
    system: System | None = None
    unsupported: dict[str, Any] | None = None
    context: Context | None = None
    referral: Referral | None = None
    errors: list[GraphErrorInfo] | None = None

    @field_validator("timestamp", mode="before")
    @classmethod
    def _unix_seconds(cls, value: Any) -> Any:
        # Meta sends timestamps as strings of Unix seconds; bool is an int subclass and never a timestamp.
        if isinstance(value, bool):
            raise ValueError("timestamp must be Unix seconds")
        return value

    @property
    def media(self) -> Media | None:
        if self.type in MEDIA_TYPES:
            media = getattr(self, self.type.value)
            return media if isinstance(media, Media) else None
        return None

    @property
    def text_content(self) -> str | None:
        """What a person reads in the message: text body, caption, choice title, or button text."""
        if self.text is not None:
            return self.text.body
        if self.media is not None and self.media.caption:
            return self.media.caption
        if self.interactive is not None and self.interactive.choice is not None:
            return self.interactive.choice.title
        if self.button is not None:
            return self.button.text
        if self.reaction is not None:
            return self.reaction.emoji
        if self.order is not None:
            return self.order.text
        if self.system is not None:
            return self.system.body
        return None


class Pricing(_Part):
    billable: bool | None = None
    pricing_model: str | None = None
    category: str | None = None
    type: str | None = None


class Conversation(_Part):
    id: str | None = None
    expiration_timestamp: str | None = None
    origin: dict[str, Any] | None = None


class MessageStatus(_Part):
    id: str = Field(min_length=1)
    status: StatusKind = StatusKind.UNKNOWN
    timestamp: UnixSeconds
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    biz_opaque_callback_data: str | None = None
    conversation: Conversation | None = None
    pricing: Pricing | None = None
    errors: list[GraphErrorInfo] | None = None

    @field_validator("timestamp", mode="before")
    @classmethod
    def _unix_seconds(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("timestamp must be Unix seconds")
        return value

    @property
    def first_error(self) -> GraphErrorInfo | None:
        return self.errors[0] if self.errors else None


class UserPreference(_Part):
    """`user_preferences` change: a lead stopped or resumed marketing messages."""

    wa_id: str | None = None
    detail: str | None = None
    category: str | None = None
    value: str | None = None
    timestamp: UnixSeconds | None = None
