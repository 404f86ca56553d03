"""ConversationsFunction: the CRM's read API (conversations, a thread, mark read) and GET /health.

Thin by design: query and path validation (through the resolver), one domain call per route, the HTTP
mapping of its refusals. Reads only, apart from resetting a thread's unread count on POST .../read.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Unpack
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_crm.api_errors import install_error_handlers, invalid_field, not_found
from whatsapp_crm.api_models import (
    ConversationsPage,
    HealthBody,
    MessagesPage,
    ReadBody,
    body_doc,
    error_doc,
)
from whatsapp_crm.clock import iso
from whatsapp_crm.credentials import load_credentials
from whatsapp_crm.errors import ConfigurationError
from whatsapp_crm.health import HealthPolicy, check_health
from whatsapp_crm.http_responses import compact_json
from whatsapp_crm.numbers import parse_phone_number_ids, sending_number
from whatsapp_crm.observability import logger, metrics
from whatsapp_crm.read_api import (
    ForeignNumberError,
    InvalidCursorError,
    InvalidWaIdError,
    LeadNotFoundError,
    list_conversations,
    list_messages,
    mark_conversation_read,
    resolve_wa_id,
)
from whatsapp_crm.settings import ConversationsSettings, load
from whatsapp_crm.wiring import ConversationsDoubles, ConversationsPorts, invoke

app = APIGatewayHttpResolver(enable_validation=True, serializer=compact_json)
install_error_handlers(app)

Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1-100")]
Cursor = Annotated[str | None, Query(max_length=2048, description="next_cursor of the previous page")]
NumberId = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description=(
            "Only the conversations with this business number (one of the deployment's "
            "WhatsAppPhoneNumberIds); the next_cursor stays bound to it"
        ),
    ),
]
ThreadNumber = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description=(
            "The business number whose conversation with the lead is meant (one of the deployment's "
            "WhatsAppPhoneNumberIds); default: the number the lead last wrote to"
        ),
    ),
]
WaId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="The lead's WhatsApp id: international digits (a leading + is tolerated; 0... is national)",
    ),
]
_INVALID = error_doc("validation_error (`field` names the parameter; a tampered cursor also lands here)")


def _wa_id(raw: str) -> str:
    # The resolver reads path parameters from the raw path, where a '+' may arrive as %2B.
    return resolve_wa_id(unquote(raw), load(ConversationsSettings).default_phone_region)


@app.get(
    "/conversations",
    summary="List conversations",
    description=(
        "Conversations by last activity, newest first: one per lead and business number (a lead who wrote to "
        "two of our numbers is listed twice); `phone_number_id` keeps one number's conversations."
    ),
    tags=["conversations"],
    operation_id="listConversations",
    responses={200: body_doc("One page of conversations", ConversationsPage), 400: _INVALID},
)
def conversations(limit: Limit = 50, cursor: Cursor = None, phone_number_id: NumberId = None) -> ConversationsPage:
    settings = load(ConversationsSettings)
    ports = ConversationsPorts(settings)
    own = parse_phone_number_ids(settings.whatsapp_phone_number_ids)
    page = list_conversations(
        ports.store,
        ports.signer,
        limit=limit,
        cursor=cursor,
        takeover=timedelta(hours=settings.human_takeover_hours),
        default_phone_number_id=sending_number(None, own),
        phone_number_id=phone_number_id,
        own_phone_number_ids=own,
    )
    return ConversationsPage.model_validate(page, from_attributes=True)


@app.get(
    "/conversations/<wa_id>/messages",
    summary="List a conversation's messages",
    description=(
        "Inbound and outbound messages of one conversation (the lead with one business number: "
        "`phone_number_id`, default the number the lead last wrote to), newest first, with delivery statuses."
    ),
    tags=["conversations"],
    operation_id="listMessages",
    responses={
        200: body_doc("One page of messages", MessagesPage),
        400: _INVALID,
        404: error_doc("not_found: no conversation with this WhatsApp id"),
    },
)
def messages(
    wa_id: WaId, limit: Limit = 50, cursor: Cursor = None, phone_number_id: ThreadNumber = None
) -> MessagesPage:
    settings = load(ConversationsSettings)
    ports = ConversationsPorts(settings)
    thread = list_messages(
        ports.store,
        ports.signer,
        wa_id=_wa_id(wa_id),
        limit=limit,
        cursor=cursor,
        phone_number_id=phone_number_id,
        own_phone_number_ids=parse_phone_number_ids(settings.whatsapp_phone_number_ids),
    )
    return MessagesPage.model_validate(thread, from_attributes=True)


@app.post(
    "/conversations/<wa_id>/read",
    summary="Mark a conversation read",
    description=(
        "Resets one conversation's unread count (`phone_number_id`, default the number the lead last wrote "
        "to) and marks the lead's last inbound message to that number as read on WhatsApp (blue ticks). "
        "The WhatsApp receipt is best effort; its outcome is in read_receipt."
    ),
    tags=["conversations"],
    operation_id="markConversationRead",
    responses={
        200: body_doc("Unread count reset", ReadBody),
        400: _INVALID,
        404: error_doc("not_found: no conversation with this WhatsApp id"),
    },
)
def mark_read(wa_id: WaId, phone_number_id: ThreadNumber = None) -> ReadBody:
    settings = load(ConversationsSettings)
    ports = ConversationsPorts(settings)
    marked = mark_conversation_read(
        ports.store,
        lambda: ports.sender,
        wa_id=_wa_id(wa_id),
        own_phone_number_ids=parse_phone_number_ids(settings.whatsapp_phone_number_ids),
        at=iso(ports.clock()),
        phone_number_id=phone_number_id,
    )
    return ReadBody.model_validate(marked, from_attributes=True)


@app.get(
    "/health",
    summary="Service health",
    description=(
        "Figures of the last 24 hours from the table's hourly counters. 503 (unhealthy) when the table or "
        "the secret cannot be read, so status checks and load balancers can read the code; 200 otherwise, "
        "with status degraded when the last hour's send error rate passes the threshold."
    ),
    tags=["health"],
    operation_id="getHealth",
    responses={
        200: body_doc("Healthy or degraded", HealthBody),
        503: body_doc("Unhealthy: the table or the secret cannot be read", HealthBody),
    },
)
def health() -> Response[HealthBody]:
    settings = load(ConversationsSettings)
    ports = ConversationsPorts(settings)

    def check_secret() -> None:
        credentials = load_credentials(settings)
        if not credentials.access_token.get_secret_value() or not credentials.app_secret.get_secret_value():
            raise ConfigurationError("the WhatsApp secret lacks access_token or app_secret")

    report = check_health(
        ports.store,
        check_secret,
        clock=ports.clock,
        policy=HealthPolicy(
            error_rate_threshold=settings.health_error_rate_threshold, min_sends=settings.health_min_sends
        ),
    )
    return Response(
        status_code=503 if report.status == "unhealthy" else 200,
        content_type=content_types.APPLICATION_JSON,
        body=HealthBody.model_validate(report, from_attributes=True),
    )


@app.exception_handler(InvalidCursorError)
def _bad_cursor(error: InvalidCursorError) -> Response[str]:
    logger.warning("refused a pagination cursor that does not verify")
    return invalid_field("cursor", str(error))


@app.exception_handler(ForeignNumberError)
def _foreign_number(error: ForeignNumberError) -> Response[str]:
    return invalid_field("phone_number_id", str(error))


@app.exception_handler(InvalidWaIdError)
def _bad_wa_id(error: InvalidWaIdError) -> Response[str]:
    return invalid_field("wa_id", str(error))


@app.exception_handler(LeadNotFoundError)
def _no_lead(error: LeadNotFoundError) -> Response[str]:
    return not_found(str(error))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


def handle(event: dict[str, Any], context: LambdaContext, **doubles: Unpack[ConversationsDoubles]) -> dict[str, Any]:
    """Entry point for tests: the same routing with test doubles handed in (whatsapp_crm.wiring)."""
    return invoke(lambda_handler, event, context, doubles)
