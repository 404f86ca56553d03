"""Response bodies of the send and read APIs. They shape the JSON and document it in docs/openapi.json.

The domain answers in its own types (read_api, health, outbound); the handlers map those to these models
(`Model.model_validate(answer, from_attributes=True)`) and return them from their routes.
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    # defer_build: a function answers one or two of these bodies; the others' validators are never built.
    model_config = ConfigDict(frozen=True, defer_build=True)


# --- errors --------------------------------------------------------------------------------------


def _absent_when_none(value: Any) -> bool:
    return value is None


# Fields marked so are left out of the JSON when they have no value (a null would say "known to be empty").
_OMITTED_WHEN_NONE: Any = _absent_when_none


class GraphErrorBody(_Body):
    code: int | None = Field(description="Meta's error code, e.g. 131047", exclude_if=_OMITTED_WHEN_NONE)
    title: str | None = Field(default=None, exclude_if=_OMITTED_WHEN_NONE)
    details: str | None = Field(default=None, exclude_if=_OMITTED_WHEN_NONE)
    fbtrace_id: str | None = Field(default=None, description="Quote it to Meta support", exclude_if=_OMITTED_WHEN_NONE)


class FieldProblem(_Body):
    field: str
    message: str


class TemplateDifference(_Body):
    field: str = Field(
        description="template.name, template.language.code, template.status, template.components.body..."
    )
    message: str
    expected: Any = None
    given: Any = None


class ErrorDetail(_Body):
    code: str = Field(
        description="validation_error, not_found, recipient_opted_out, outside_customer_service_window, "
        "template_mismatch, rate_limited, whatsapp_error, whatsapp_unavailable, temporarily_unavailable, "
        "configuration_error, internal_error, idempotency_key_reused, idempotency_key_in_use"
    )
    message: str
    field: str | None = Field(default=None, description="validation_error: the offending field, e.g. text.body")
    errors: list[FieldProblem] | None = Field(default=None, description="validation_error: every problem found")
    hint: str | None = None
    retry_after_seconds: int | None = Field(default=None, description="rate_limited: same as Retry-After")
    scope: str | None = Field(default=None, description="rate_limited: recipient, number or whatsapp")
    graph_error: GraphErrorBody | None = Field(default=None, description="Present whenever Meta answered")
    differences: list[TemplateDifference] | None = Field(
        default=None, description="template_mismatch: each way the send differs from the template Meta holds"
    )


class ErrorBody(_Body):
    error: ErrorDetail


def body_doc(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    """An OpenAPI response entry whose JSON body is `model`."""
    return {"description": description, "content": {"application/json": {"model": model}}}


def error_doc(description: str) -> OpenAPIResponse:
    return body_doc(description, ErrorBody)


# --- POST /messages ------------------------------------------------------------------------------


class SendAcceptedBody(_Body):
    message_id: str = Field(description="Meta's wamid; statuses for it arrive on the webhook")
    wa_id: str = Field(description="The recipient's WhatsApp id (international digits)", examples=["972525551234"])
    to: str = Field(description="The number as sent to Meta, E.164 with '+'", examples=["+972525551234"])
    status: Literal["accepted"] = "accepted"
    message_status: str | None = Field(
        default=None,
        description="Templates only: accepted, held_for_quality_assessment or paused",
        exclude_if=_OMITTED_WHEN_NONE,
    )


# --- conversations -------------------------------------------------------------------------------


class ConversationSummary(_Body):
    wa_id: str
    name: str | None = Field(default=None, description="The lead's WhatsApp profile name")
    lead_id: str | None = Field(default=None, description="The CRM's id, as last given to POST /messages")
    last_message_at: str | None = None
    last_message_preview: str | None = None
    unread_count: int = 0
    awaits_response: bool = False
    opted_out: bool = False
    window_expires_at: str | None = Field(
        default=None, description="When free-form messages stop being allowed (24 h after the lead's last message)"
    )
    meeting: dict[str, Any] | None = Field(
        default=None,
        description="The lead's latest meeting request (slot_id, slot_start, requested_at, status), if any",
    )
    last_human_outbound_at: str | None = Field(
        default=None, description="When an agent last messaged this lead through POST /messages"
    )
    human_takeover_until: str | None = Field(
        default=None,
        description="Until when the bot stays silent because an agent took the conversation over "
        "(last_human_outbound_at + HumanTakeoverHours); in the past once the bot may answer again",
    )
    phone_number_id: str | None = Field(
        default=None,
        description="The business number (Meta's phone number id) the conversation is with (a lead who wrote "
        "to two numbers has two conversations, each with its own window and unread count); the first of "
        "WhatsAppPhoneNumberIds for a lead who never wrote",
    )


class ConversationsPage(_Body):
    conversations: list[ConversationSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class StatusEntry(_Body):
    status: str
    timestamp: str


class OfferedButton(_Body):
    id: str = Field(description="The reply button's id (a meeting slot's id for offered slots)")
    title: str


class MediaView(_Body):
    id: str | None = Field(description="The media id: GET /conversations/{wa_id}/media/{id} downloads the file")
    mime_type: str | None = Field(description="As Meta labels it (a label only; files are served as attachments)")
    size: int | None = Field(description="Bytes, once archived")
    sha256: str | None = Field(description="Hex; checked against Meta's before the file was kept")
    caption: str | None = None
    filename: str | None = None
    status: Literal["pending", "archived", "unavailable"]
    reason: str | None = Field(
        default=None,
        description="unavailable: too_large, empty, gone_at_meta, meta_download_failed, checksum_mismatch, "
        "type_mismatch, not_kept (an outbound file sent by link, never held here)",
    )


class MessageView(_Body):
    id: str = Field(description="wamid")
    direction: Literal["inbound", "outbound"]
    type: str = Field(description="Meta's message type; 'unknown' for a send known only from its statuses")
    text: str | None = Field(default=None, description="Text body or caption")
    timestamp: str
    status: str | None = Field(default=None, description="Outbound: accepted, sent, delivered, read, played, failed")
    status_history: list[StatusEntry] = Field(default_factory=list)
    error: dict[str, Any] | None = None
    intent: str | None = None
    language: str | None = None
    auto_reply: bool = False
    reply_to: str | None = Field(default=None, description="The wamid this message quotes")
    sent_by: Literal["human", "auto_reply"] | None = Field(
        default=None, description="Outbound sends made here: an agent (POST /messages) or the auto-reply bot"
    )
    buttons: list[OfferedButton] = Field(
        default_factory=list, description="Reply buttons this message offered (e.g. meeting slots)"
    )
    template_name: str | None = Field(default=None, description="Template sends: the template's name")
    media: MediaView | None = Field(default=None, description="Image, document, audio, video and sticker messages")


class MessagesPage(_Body):
    wa_id: str
    phone_number_id: str | None = Field(
        default=None, description="The business number whose conversation with the lead this thread is"
    )
    messages: list[MessageView]
    next_cursor: str | None


class ReadReceipt(_Body):
    message_id: str | None = Field(
        description="The lead's last inbound wamid, marked read on WhatsApp", exclude_if=_OMITTED_WHEN_NONE
    )
    status: Literal["sent", "failed", "none"]
    graph_error: GraphErrorBody | None = Field(default=None, exclude_if=_OMITTED_WHEN_NONE)


class ReadBody(_Body):
    wa_id: str
    phone_number_id: str | None = Field(default=None, description="The business number whose conversation was read")
    unread_count: int
    read_receipt: ReadReceipt


# --- health --------------------------------------------------------------------------------------


class Check(_Body):
    ok: bool
    detail: str | None = None


class ErrorRateCheck(_Body):
    ok: bool
    last_hour: float
    sent_last_hour: float = Field(description="sends attempted in the last hour: accepted by Meta or refused")
    threshold: float


class HealthChecks(_Body):
    table: Check
    secret: Check
    error_rate: ErrorRateCheck


class Last24h(_Body):
    received: int
    sent: int = Field(description="sends Meta accepted")
    failed: int = Field(description="sends Meta refused, plus accepted ones later reported failed")
    error_rate: float = Field(description="failed / (accepted + refused) over the last 24 hourly buckets")


HealthStatus = Literal["healthy", "degraded", "unhealthy"]


class HealthBody(_Body):
    status: HealthStatus = Field(
        description="healthy (200); degraded (200): the last hour's send error rate passed the threshold; "
        "unhealthy (503): the table or the WhatsApp secret cannot be read"
    )
    checks: HealthChecks
    last_24h: Last24h
    last_activity: str | None


# --- GET /templates ------------------------------------------------------------------------------


class TemplateButton(_Body):
    index: str = Field(description="The button's index in a send's button component")
    sub_type: str = Field(description="url, quick_reply, copy_code, flow, phone_number, ...")
    parameters: int = Field(description="Parameters a send must give (a quick reply's payload is optional)")


class TemplateParametersBody(_Body):
    header: int | list[str] | None = Field(
        description="null: no header; a count (positional), or the parameter names of a NAMED template"
    )
    header_format: str | None = Field(description="TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION (media: 1 parameter)")
    body: int | list[str]
    buttons: list[TemplateButton]


class TemplateEntry(_Body):
    name: str
    language: str
    status: str = Field(description="APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ... (only APPROVED can be sent)")
    category: str | None = Field(description="MARKETING, UTILITY or AUTHENTICATION")
    parameter_format: str = Field(description="POSITIONAL ({{1}}) or NAMED ({{first_name}})")
    parameters: TemplateParametersBody
    id: str | None = Field(description="Meta's template id")
    status_at: str = Field(description="When the status was last known true (a sync, or Meta's status webhook)")


class TemplatesBody(_Body):
    templates: list[TemplateEntry]
    synced_at: str | None = Field(description="When Graph was last listed in full (null: never)")
    last_error: str | None = Field(default=None, description="Why the last sync failed, if it did")


# --- POST /media ---------------------------------------------------------------------------------


class UploadBody(_Body):
    media_id: str = Field(description='Send it as image/document/audio/video/sticker {"id": ...} (30 days at Meta)')
    mime_type: str
    size: int = Field(description="Bytes")
    sha256: str = Field(description="Hex")
    filename: str | None = None
    kind: str = Field(description="The message type it can be sent as: image, document, audio, video or sticker")
