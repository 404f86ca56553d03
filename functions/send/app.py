"""SendFunction: POST /messages, an authenticated send of any WhatsApp message kind from the CRM.

Thin by design: request validation (pydantic, through the resolver), one domain call, the HTTP mapping of
its refusals. The rules live in whatsapp_crm.outbound; Graph errors are mapped in whatsapp_crm.api_errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Unpack

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_crm import idempotency
from whatsapp_crm.api_errors import TEMPLATE_HINT, install_error_handlers, invalid_field, rate_limited
from whatsapp_crm.api_models import SendAcceptedBody, body_doc, error_doc
from whatsapp_crm.http_responses import compact_json, error_response
from whatsapp_crm.observability import MetricUnit, logger, mask_phone, metrics
from whatsapp_crm.outbound import (
    ForeignSenderError,
    InvalidRecipientError,
    RecipientOptedOutError,
    WindowClosedError,
    send_message,
)
from whatsapp_crm.ratelimit import RateLimitedError
from whatsapp_crm.send_models import AnyMessage, SendRequest
from whatsapp_crm.settings import SendSettings, load
from whatsapp_crm.templates import TemplateMismatchError
from whatsapp_crm.wiring import SendDoubles, SendPorts, invoke

app = APIGatewayHttpResolver(enable_validation=True, serializer=compact_json)
install_error_handlers(app, body_type=SendRequest)


@app.post(
    "/messages",
    summary="Send a WhatsApp message",
    description=(
        "Meta's send-message object without messaging_product. Free-form kinds need the 24-hour window the "
        "lead opened; templates go any time. Never to a lead who opted out. Rate limited per recipient and "
        "per sending number."
    ),
    tags=["messages"],
    operation_id="sendMessage",
    responses={
        201: body_doc("Meta accepted the message (delivery is reported later by status webhooks)", SendAcceptedBody),
        400: error_doc("validation_error: the body, `to` or the Idempotency-Key is invalid (`field` names it)"),
        409: error_doc(
            "recipient_opted_out; or idempotency_key_in_use: the key's first request is still running or its "
            "outcome is awaited (see Retry-After)"
        ),
        422: error_doc(
            "outside_customer_service_window: send a template (also Meta's 131047); template_mismatch: the "
            "template is unknown in that language, not APPROVED, or given other parameters (`differences`); "
            "idempotency_key_reused: the key came with another body in the last 24 hours"
        ),
        429: error_doc("rate_limited: see Retry-After (ours, or Meta's 130429/131056)"),
        502: error_doc("whatsapp_error: Meta refused the request (graph_error says why)"),
        503: error_doc("whatsapp_unavailable: Meta kept failing after retries"),
    },
)
def send(
    message: Annotated[SendRequest, Body(description="Meta's send object")],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x20-\x7e]+$",
            description="Any unique string (a UUID): a retry with the same key and body within 24 hours gets "
            "the first answer and never a second send; the same key with another body is 422",
        ),
    ] = None,
) -> Response[SendAcceptedBody]:
    outgoing: AnyMessage = message
    ports = SendPorts(load(SendSettings))
    if idempotency_key is None:
        return _accepted(_send(outgoing, ports, None), replayed=False)
    body = message.model_dump(mode="json", exclude_unset=True)
    started = idempotency.begin(idempotency_key, body, ports.keys, ports.clock)
    if isinstance(started, idempotency.IdempotentAnswer):
        logger.info("idempotent replay: answered from the first request with this key")
        metrics.add_metric(name="IdempotentReplays", unit=MetricUnit.Count, value=1)
        return _accepted(SendAcceptedBody.model_validate(started.body), replayed=True)
    # The key keeps the answer's JSON, so a replay answers the very same body.
    answer = idempotency.run(started, lambda attempt: _send(outgoing, ports, attempt).model_dump(mode="json"))
    return _accepted(SendAcceptedBody.model_validate(answer.body), replayed=False)


def _send(outgoing: AnyMessage, ports: SendPorts, attempt: idempotency.Attempt | None) -> SendAcceptedBody:
    accepted = send_message(
        outgoing,
        policy=ports.policy,
        store=ports.store,
        sender=ports.sender,
        limiter=ports.limiter,
        clock=ports.clock,
        refusals=ports.refusals,
        templates=ports.templates,
        callback=attempt.callback if attempt else None,
        before_send=attempt.before_send if attempt else None,
    )
    metrics.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=1)
    if not accepted.recorded:
        metrics.add_metric(name="SendsNotRecorded", unit=MetricUnit.Count, value=1)
    logger.info(
        "message accepted by WhatsApp",
        extra={"wamid": accepted.message_id, "wa_id": mask_phone(accepted.wa_id), "type": outgoing.type},
    )
    return SendAcceptedBody.model_validate(accepted, from_attributes=True)


def _accepted(body: SendAcceptedBody, *, replayed: bool) -> Response[SendAcceptedBody]:
    # Stripe's header: the answer is the first request's, nothing was sent this time.
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )


@app.exception_handler(idempotency.IdempotencyKeyReusedError)
def _key_reused(error: idempotency.IdempotencyKeyReusedError) -> Response[str]:
    return error_response(422, "idempotency_key_reused", str(error), field="Idempotency-Key")


@app.exception_handler(idempotency.IdempotencyKeyInUseError)
def _key_in_use(error: idempotency.IdempotencyKeyInUseError) -> Response[str]:
    return error_response(
        409,
        "idempotency_key_in_use",
        str(error),
        headers={"Retry-After": str(error.retry_after_seconds)},
        retry_after_seconds=error.retry_after_seconds,
    )


@app.exception_handler(InvalidRecipientError)
def _invalid_recipient(error: InvalidRecipientError) -> Response[str]:
    return invalid_field("to", str(error))


@app.exception_handler(ForeignSenderError)
def _foreign_sender(error: ForeignSenderError) -> Response[str]:
    return invalid_field("from_phone_number_id", str(error))


@app.exception_handler(RecipientOptedOutError)
def _opted_out(error: RecipientOptedOutError) -> Response[str]:
    metrics.add_metric(name="SendsRefusedOptedOut", unit=MetricUnit.Count, value=1)
    return error_response(
        409,
        "recipient_opted_out",
        "the recipient opted out of messages from this business",
        opted_out_at=error.opted_out_at,
    )


@app.exception_handler(WindowClosedError)
def _window_closed(error: WindowClosedError) -> Response[str]:
    metrics.add_metric(name="SendsRefusedWindowClosed", unit=MetricUnit.Count, value=1)
    return error_response(
        422,
        "outside_customer_service_window",
        "free-form messages need a message from the lead in the last 24 hours",
        hint=TEMPLATE_HINT,
        last_inbound_at=error.last_inbound_at,
        window_closed_at=error.window_closed_at,
    )


@app.exception_handler(TemplateMismatchError)
def _template_mismatch(error: TemplateMismatchError) -> Response[str]:
    metrics.add_metric(name="SendsRefusedTemplateMismatch", unit=MetricUnit.Count, value=1)
    return error_response(
        422,
        "template_mismatch",
        str(error),
        template={"name": error.name, "language": error.language, "status": error.status},
        differences=[difference.as_json() for difference in error.differences],
    )


@app.exception_handler(RateLimitedError)
def _rate_limited(error: RateLimitedError) -> Response[str]:
    metrics.add_metric(name="SendsRateLimited", unit=MetricUnit.Count, value=1)
    return rate_limited(
        f"at most {error.limit} messages per {error.window_seconds} s per {error.scope}",
        error.retry_after_seconds,
        scope=error.scope,
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


def handle(event: dict[str, Any], context: LambdaContext, **doubles: Unpack[SendDoubles]) -> dict[str, Any]:
    """Entry point for tests: the same routing with test doubles handed in (whatsapp_crm.wiring)."""
    return invoke(lambda_handler, event, context, doubles)
