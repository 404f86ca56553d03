"""The one outbound message model: Meta's send-message object, validated, for every message the service sends.

The body of POST /messages is parsed into it (`parse_send_request`), the responder builds its replies with it
(`text_message`, `buttons_message`), and the Graph client posts `graph_body()` of it: there is no other
definition of a WhatsApp send. Every kind Meta accepts on `/<PHONE_NUMBER_ID>/messages` that the CRM uses has
a model here, with Meta's documented limits, so a message Meta would refuse is refused (400 with the offending
field, for the API) before any call leaves. Unknown keys are refused (a typo must not silently drop a caption).
Where Meta documents no limit we cap a string at a generous sanity bound; those bounds are listed in docs/api.md.

What a caller sent is forwarded as sent (`exclude_unset`): defaults declared here are never added to
Meta's JSON. `lead_id` is ours (stored on the lead) and never reaches Meta. `to` is whatever spelling the
caller gave until the sender puts the normalized number in (`addressed_to`, whatsapp_crm.phone): Meta prepends
the *business* number's country code to a number without '+', so the client refuses to post any other form.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    model_validator,
)

from whatsapp_crm.send_limits import (
    MAX_BUTTON_ID,
    MAX_BUTTON_TITLE,
    MAX_INTERACTIVE_BODY,
    MAX_LIST_ROWS,
    MAX_REPLY_BUTTONS,
    MAX_TEXT_BODY,
)

PREVIEW_LENGTH = 80


class _Strict(BaseModel):
    # defer_build: a model's validator is built when it first validates, not at import; the responder builds
    # two of these kinds and the read API none (cold start, docs/performance.md).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _https_only(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc or any(char.isspace() for char in value):
        raise ValueError("must be an absolute https:// URL")
    return value


def _unique(values: list[str], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must be unique")


Text = Annotated[str, Field(min_length=1)]
HttpsLink = Annotated[str, Field(max_length=2048), AfterValidator(_https_only)]
MediaId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-.:]+$")]
MessageId = Annotated[str, Field(min_length=1, max_length=256, examples=["wamid.HBgMOTcyNTI1NTUxMjM0FQIAERgS"])]
# Any spelling of a phone number; the send use case normalizes it (default region for a leading 0).
PhoneInput = Annotated[str, Field(min_length=1, max_length=64, examples=["+972525551234", "052-555-1234"])]


# --- text ----------------------------------------------------------------------------------------


class TextContent(_Strict):
    body: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_BODY)]
    preview_url: StrictBool | None = None


# --- media ---------------------------------------------------------------------------------------


class _MediaSource(_Strict):
    """A media object is either an uploaded media `id` (recommended by Meta) or a public https `link`."""

    id: MediaId | None = None
    link: HttpsLink | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> _MediaSource:
        if (self.id is None) == (self.link is None):
            raise ValueError("give exactly one of 'id' or 'link'")
        return self


Caption = Annotated[str, Field(min_length=1, max_length=1024)]


class ImageContent(_MediaSource):
    caption: Caption | None = None


class VideoContent(_MediaSource):
    caption: Caption | None = None


class DocumentContent(_MediaSource):
    caption: Caption | None = None
    filename: Annotated[str, Field(min_length=1, max_length=240)] | None = None


class AudioContent(_MediaSource):
    pass


class StickerContent(_MediaSource):
    pass


# --- interactive ---------------------------------------------------------------------------------


class _TextBlock(_Strict):
    text: Text


class InteractiveBody(_Strict):
    text: Annotated[str, Field(min_length=1, max_length=MAX_INTERACTIVE_BODY)]


class ListBody(_Strict):
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_BODY)]


class InteractiveFooter(_Strict):
    text: Annotated[str, Field(min_length=1, max_length=60)]


class TextHeader(_Strict):
    type: Literal["text"]
    text: Annotated[str, Field(min_length=1, max_length=60)]


class ImageHeader(_Strict):
    type: Literal["image"]
    image: ImageContent


class VideoHeader(_Strict):
    type: Literal["video"]
    video: VideoContent


class DocumentHeader(_Strict):
    type: Literal["document"]
    document: DocumentContent


ButtonHeader = Annotated[TextHeader | ImageHeader | VideoHeader | DocumentHeader, Field(discriminator="type")]


class Reply(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=MAX_BUTTON_ID)]
    title: Annotated[str, Field(min_length=1, max_length=MAX_BUTTON_TITLE)]


class ReplyButton(_Strict):
    type: Literal["reply"]
    reply: Reply


class ButtonAction(_Strict):
    buttons: Annotated[list[ReplyButton], Field(min_length=1, max_length=MAX_REPLY_BUTTONS)]

    @model_validator(mode="after")
    def _distinct(self) -> ButtonAction:
        _unique([button.reply.id for button in self.buttons], "button ids")
        _unique([button.reply.title for button in self.buttons], "button titles")
        return self


class ButtonInteractive(_Strict):
    type: Literal["button"]
    header: ButtonHeader | None = None
    body: InteractiveBody
    footer: InteractiveFooter | None = None
    action: ButtonAction


class ListRow(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=200)]
    title: Annotated[str, Field(min_length=1, max_length=24)]
    description: Annotated[str, Field(min_length=1, max_length=72)] | None = None


class ListSection(_Strict):
    title: Annotated[str, Field(min_length=1, max_length=24)] | None = None
    rows: Annotated[list[ListRow], Field(min_length=1, max_length=10)]


class ListAction(_Strict):
    button: Annotated[str, Field(min_length=1, max_length=20)]
    sections: Annotated[list[ListSection], Field(min_length=1, max_length=10)]

    @model_validator(mode="after")
    def _rows_and_titles(self) -> ListAction:
        rows = [row for section in self.sections for row in section.rows]
        if len(rows) > MAX_LIST_ROWS:
            raise ValueError(f"a list holds at most {MAX_LIST_ROWS} rows across all sections")
        _unique([row.id for row in rows], "row ids")
        if len(self.sections) > 1 and any(section.title is None for section in self.sections):
            raise ValueError("every section needs a title when there is more than one")
        return self


class ListInteractive(_Strict):
    type: Literal["list"]
    header: TextHeader | None = None
    body: ListBody
    footer: InteractiveFooter | None = None
    action: ListAction


InteractiveContent = Annotated[ButtonInteractive | ListInteractive, Field(discriminator="type")]


# --- reaction, location, contacts ----------------------------------------------------------------


class ReactionContent(_Strict):
    message_id: MessageId
    # An empty string removes an earlier reaction. One emoji can be several code points (ZWJ sequences).
    emoji: Annotated[str, Field(max_length=32)]


Latitude = Annotated[float, Field(ge=-90, le=90, strict=True)]
Longitude = Annotated[float, Field(ge=-180, le=180, strict=True)]


class LocationContent(_Strict):
    latitude: Latitude
    longitude: Longitude
    name: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    address: Annotated[str, Field(min_length=1, max_length=1000)] | None = None


_Short = Annotated[str, Field(min_length=1, max_length=256)]


class ContactName(_Strict):
    formatted_name: _Short
    first_name: _Short | None = None
    last_name: _Short | None = None
    middle_name: _Short | None = None
    suffix: _Short | None = None
    prefix: _Short | None = None


class ContactPhone(_Strict):
    phone: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    type: _Short | None = None
    wa_id: Annotated[str, Field(pattern=r"^[0-9]{6,15}$")] | None = None


class ContactEmail(_Strict):
    email: _Short | None = None
    type: _Short | None = None


class ContactAddress(_Strict):
    street: _Short | None = None
    city: _Short | None = None
    state: _Short | None = None
    zip: _Short | None = None
    country: _Short | None = None
    country_code: Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")] | None = None
    type: _Short | None = None


class ContactOrg(_Strict):
    company: _Short | None = None
    department: _Short | None = None
    title: _Short | None = None


class ContactUrl(_Strict):
    url: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    type: _Short | None = None


class Contact(_Strict):
    name: ContactName
    phones: Annotated[list[ContactPhone], Field(max_length=20)] | None = None
    emails: Annotated[list[ContactEmail], Field(max_length=20)] | None = None
    addresses: Annotated[list[ContactAddress], Field(max_length=20)] | None = None
    org: ContactOrg | None = None
    urls: Annotated[list[ContactUrl], Field(max_length=20)] | None = None
    birthday: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None


# --- template ------------------------------------------------------------------------------------

ParameterName = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[a-z0-9_]+$")]
HEADER_TEXT_LIMIT = 60


class TextParameter(_Strict):
    type: Literal["text"]
    text: Annotated[str, Field(min_length=1, max_length=1024)]
    parameter_name: ParameterName | None = None


class Currency(_Strict):
    fallback_value: Annotated[str, Field(min_length=1, max_length=256)]
    code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    amount_1000: StrictInt


class CurrencyParameter(_Strict):
    type: Literal["currency"]
    currency: Currency
    parameter_name: ParameterName | None = None


class DateTime(_Strict):
    fallback_value: Annotated[str, Field(min_length=1, max_length=256)]


class DateTimeParameter(_Strict):
    type: Literal["date_time"]
    date_time: DateTime
    parameter_name: ParameterName | None = None


class ImageParameter(_Strict):
    type: Literal["image"]
    image: ImageContent


class VideoParameter(_Strict):
    type: Literal["video"]
    video: VideoContent


class DocumentParameter(_Strict):
    type: Literal["document"]
    document: DocumentContent


class HeaderLocation(_Strict):
    latitude: Latitude
    longitude: Longitude
    name: Annotated[str, Field(min_length=1, max_length=1000)]
    address: Annotated[str, Field(min_length=1, max_length=1000)]


class LocationParameter(_Strict):
    type: Literal["location"]
    location: HeaderLocation


class PayloadParameter(_Strict):
    type: Literal["payload"]
    payload: Annotated[str, Field(min_length=1, max_length=1024)]


class CouponCodeParameter(_Strict):
    type: Literal["coupon_code"]
    coupon_code: Annotated[str, Field(min_length=1, max_length=20)]


class ActionParameter(_Strict):
    type: Literal["action"]
    action: dict[str, Any]


HeaderParameter = Annotated[
    TextParameter | ImageParameter | VideoParameter | DocumentParameter | LocationParameter,
    Field(discriminator="type"),
]
BodyParameter = Annotated[TextParameter | CurrencyParameter | DateTimeParameter, Field(discriminator="type")]
ButtonParameter = Annotated[
    PayloadParameter | TextParameter | CouponCodeParameter | ActionParameter, Field(discriminator="type")
]


class HeaderComponent(_Strict):
    type: Literal["header"]
    parameters: Annotated[list[HeaderParameter], Field(min_length=1, max_length=1)]

    @model_validator(mode="after")
    def _header_text_fits(self) -> HeaderComponent:
        for parameter in self.parameters:
            if isinstance(parameter, TextParameter) and len(parameter.text) > HEADER_TEXT_LIMIT:
                raise ValueError(f"a header text parameter holds at most {HEADER_TEXT_LIMIT} characters")
        return self


class BodyComponent(_Strict):
    type: Literal["body"]
    parameters: Annotated[list[BodyParameter], Field(max_length=100)] | None = None


class ButtonComponent(_Strict):
    type: Literal["button"]
    sub_type: Literal["quick_reply", "url", "copy_code", "flow", "catalog", "voice_call"]
    index: Annotated[str, Field(pattern=r"^[0-9]$")]
    parameters: Annotated[list[ButtonParameter], Field(max_length=1)] | None = None


TemplateComponent = Annotated[HeaderComponent | BodyComponent | ButtonComponent, Field(discriminator="type")]


class TemplateLanguage(_Strict):
    code: Annotated[str, Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2,3})?$", examples=["he", "en_US"])]
    policy: Literal["deterministic"] | None = None


class TemplateContent(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")]
    language: TemplateLanguage
    components: Annotated[list[TemplateComponent], Field(max_length=12)] | None = None

    @model_validator(mode="after")
    def _one_header_one_body(self) -> TemplateContent:
        components = self.components or []
        for kind in ("header", "body"):
            if sum(1 for component in components if component.type == kind) > 1:
                raise ValueError(f"at most one {kind} component")
        _unique([c.index for c in components if isinstance(c, ButtonComponent)], "button component indexes")
        return self


# --- the request ---------------------------------------------------------------------------------


class ReplyContext(_Strict):
    message_id: MessageId


# Ours, never Meta's: `lead_id` is stored on the lead, `from_phone_number_id` picks the number the message is
# posted from; `messaging_product` is always set by graph_body.
_NOT_FORWARDED = {"lead_id", "from_phone_number_id", "messaging_product"}


class _SendBase(_Strict):
    to: PhoneInput
    recipient_type: Literal["individual"] | None = None
    # Tolerated because callers paste Meta's examples; we always set it ourselves.
    messaging_product: Literal["whatsapp"] | None = None
    biz_opaque_callback_data: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    lead_id: (
        Annotated[str, Field(min_length=1, max_length=128, description="The CRM's id, stored on the lead")] | None
    ) = None
    from_phone_number_id: (
        Annotated[
            str,
            Field(
                pattern=r"^[0-9]{1,30}$",
                description=(
                    "The business number to send from: one of the deployment's WhatsAppPhoneNumberIds. Default: "
                    "the number the lead last wrote to, else the first listed."
                ),
            ),
        ]
        | None
    ) = None

    def addressed_to(self, e164: str, *, callback: str | None = None) -> Self:
        """This message to a normalized number ('+972525551234'), with `callback` as its
        biz_opaque_callback_data unless the message has its own."""
        update: dict[str, Any] = {"to": e164}
        if callback is not None and self.biz_opaque_callback_data is None:
            update["biz_opaque_callback_data"] = callback
        return self.model_copy(update=update)

    def graph_body(self) -> dict[str, Any]:
        """The JSON posted to `/<PHONE_NUMBER_ID>/messages`: what was set, our own keys removed."""
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        body.update(self.model_dump(mode="json", exclude_unset=True, exclude_none=True, exclude=_NOT_FORWARDED))
        return body


class _Replyable(_SendBase):
    context: ReplyContext | None = None


class TextMessage(_Replyable):
    type: Literal["text"]
    text: TextContent


class TemplateMessage(_Replyable):
    type: Literal["template"]
    template: TemplateContent


class ImageMessage(_Replyable):
    type: Literal["image"]
    image: ImageContent


class DocumentMessage(_Replyable):
    type: Literal["document"]
    document: DocumentContent


class AudioMessage(_Replyable):
    type: Literal["audio"]
    audio: AudioContent


class VideoMessage(_Replyable):
    type: Literal["video"]
    video: VideoContent


class StickerMessage(_Replyable):
    type: Literal["sticker"]
    sticker: StickerContent


class InteractiveMessage(_Replyable):
    type: Literal["interactive"]
    interactive: InteractiveContent


class ReactionMessage(_SendBase):
    """Meta ignores a reply context on reactions; refusing it (extra key) says so early."""

    type: Literal["reaction"]
    reaction: ReactionContent


class LocationMessage(_Replyable):
    type: Literal["location"]
    location: LocationContent


class ContactsMessage(_Replyable):
    type: Literal["contacts"]
    contacts: Annotated[list[Contact], Field(min_length=1, max_length=10)]


AnyMessage = (
    TextMessage
    | TemplateMessage
    | ImageMessage
    | DocumentMessage
    | AudioMessage
    | VideoMessage
    | StickerMessage
    | InteractiveMessage
    | ReactionMessage
    | LocationMessage
    | ContactsMessage
)
SendRequest = Annotated[AnyMessage, Field(discriminator="type")]
send_request_adapter: TypeAdapter[AnyMessage] = TypeAdapter(SendRequest, config=ConfigDict(defer_build=True))

MEDIA_MESSAGES = (ImageMessage, DocumentMessage, AudioMessage, VideoMessage, StickerMessage)


def parse_send_request(document: Any) -> AnyMessage:
    """Validate a decoded JSON body (pydantic.ValidationError when it is not a valid send object)."""
    return send_request_adapter.validate_python(document)


def requires_open_window(message: AnyMessage) -> bool:
    """Only templates may be sent outside the 24-hour customer service window."""
    return not isinstance(message, TemplateMessage)


def request_json(message: AnyMessage) -> str:
    """The message as posted, for the outbound record (the conversations API shows offered buttons from it)."""
    return json.dumps(message.graph_body(), ensure_ascii=False, separators=(",", ":"))


# --- the replies the service writes itself --------------------------------------------------------


def text_message(
    to: str, body: str, *, preview_url: bool = False, reply_to: str | None = None, callback: str | None = None
) -> TextMessage:
    """A text reply (ValidationError if Meta would refuse it, e.g. a body over 4,096 characters)."""
    return TextMessage(
        to=to,
        type="text",
        text=TextContent(body=body, preview_url=preview_url),
        **_reply_fields(reply_to, callback),
    )


def buttons_message(
    to: str,
    body: str,
    buttons: Sequence[tuple[str, str]],
    *,
    reply_to: str | None = None,
    callback: str | None = None,
) -> InteractiveMessage:
    """Up to three reply buttons given as (id, title); the id comes back in the lead's button_reply."""
    reply_buttons = [ReplyButton(type="reply", reply=Reply(id=button_id, title=title)) for button_id, title in buttons]
    return InteractiveMessage(
        to=to,
        type="interactive",
        interactive=ButtonInteractive(
            type="button", body=InteractiveBody(text=body), action=ButtonAction(buttons=reply_buttons)
        ),
        **_reply_fields(reply_to, callback),
    )


def _reply_fields(reply_to: str | None, callback: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if reply_to:
        fields["context"] = ReplyContext(message_id=reply_to)
    if callback is not None:
        fields["biz_opaque_callback_data"] = callback
    return fields


def _clip(text: str) -> str:
    return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"


def readable_text(message: AnyMessage) -> str | None:
    """What the lead reads as text: body, caption, interactive body or location name."""
    if isinstance(message, TextMessage):
        return message.text.body
    if isinstance(message, ImageMessage | VideoMessage | DocumentMessage):
        content = getattr(message, message.type)
        return content.caption if isinstance(content.caption, str) else None
    if isinstance(message, InteractiveMessage):
        return message.interactive.body.text
    if isinstance(message, LocationMessage):
        return message.location.name
    if isinstance(message, ReactionMessage):
        return message.reaction.emoji or None
    return None


def preview(message: AnyMessage) -> str:
    """A one-line summary for the conversation list."""
    text = readable_text(message)
    if text:
        return _clip(text)
    if isinstance(message, TemplateMessage):
        return f"[template: {message.template.name}]"
    if isinstance(message, ContactsMessage):
        return f"[contact: {message.contacts[0].name.formatted_name}]"
    return f"[{message.type}]"


def media_id(message: AnyMessage) -> str | None:
    if isinstance(message, MEDIA_MESSAGES):
        content = getattr(message, message.type)
        return content.id if isinstance(content, _MediaSource) else None
    return None


def reply_to(message: AnyMessage) -> str | None:
    context = getattr(message, "context", None)
    return context.message_id if isinstance(context, ReplyContext) else None
