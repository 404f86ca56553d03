"""WebhookFunction: Meta's GET verification handshake and signed POST events on /webhook.

Thin by design: routing, mapping outcomes to HTTP, metrics. The use case lives in whatsapp_crm.ingest.
"""

from __future__ import annotations

from typing import Any, Unpack

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_crm.credentials import load_credentials
from whatsapp_crm.errors import ConfigurationError, QueueUnavailableError, StoreUnavailableError
from whatsapp_crm.http_responses import error_response, json_response
from whatsapp_crm.ingest import (
    IngestReport,
    PayloadTooLargeError,
    SignatureRejectedError,
    authenticate,
    record_notification,
    verify_subscription,
)
from whatsapp_crm.numbers import parse_phone_number_ids
from whatsapp_crm.observability import MetricUnit, logger, metrics
from whatsapp_crm.settings import WebhookSettings, load
from whatsapp_crm.signature import SignatureVerdict, UndecodableBodyError, header, raw_body
from whatsapp_crm.webhook.parse import MalformedPayloadError
from whatsapp_crm.wiring import WebhookDoubles, WebhookPorts, invoke

app = APIGatewayHttpResolver()


@app.get("/webhook")
def handshake() -> Response[str]:
    verify_token = load_credentials(load(WebhookSettings)).verify_token.get_secret_value()
    challenge = verify_subscription(app.current_event.query_string_parameters, verify_token)
    if challenge is None:
        metrics.add_metric(name="VerificationRejected", unit=MetricUnit.Count, value=1)
        return error_response(403, "verification_failed", "hub.mode or hub.verify_token does not match")
    metrics.add_metric(name="VerificationSucceeded", unit=MetricUnit.Count, value=1)
    return Response(status_code=200, content_type=content_types.TEXT_PLAIN, body=challenge)


@app.post("/webhook")
def receive() -> Response[str]:
    settings = load(WebhookSettings)
    event = app.current_event
    body = raw_body(event.body, bool(event.is_base64_encoded))
    app_secret = load_credentials(settings).app_secret.get_secret_value()
    notification = authenticate(body, header(event.headers), app_secret, max_body_bytes=settings.max_body_bytes)
    logger.set_correlation_id(notification.correlation_id)
    own = parse_phone_number_ids(settings.whatsapp_phone_number_ids)
    ports = WebhookPorts(settings)
    report = record_notification(
        notification, ports.store, ports.queue, dead_letters=ports.dead_letters, own_phone_number_ids=own
    )
    _publish(report)
    return json_response(200, {"status": "ok"})


def _publish(report: IngestReport) -> None:
    metrics.add_metric(name="MessagesReceived", unit=MetricUnit.Count, value=report.new_messages)
    metrics.add_metric(name="DuplicateMessages", unit=MetricUnit.Count, value=report.duplicate_messages)
    for outcome, count in report.statuses.items():
        metrics.add_metric(name=f"Statuses{outcome.title()}", unit=MetricUnit.Count, value=count)
    if report.unusable_parts:
        metrics.add_metric(name="ParseErrors", unit=MetricUnit.Count, value=report.unusable_parts)
    if report.template_updates:
        metrics.add_metric(name="TemplateStatusUpdates", unit=MetricUnit.Count, value=report.template_updates)
    if report.skipped_template_updates:
        metrics.add_metric(
            name="TemplateStatusUpdatesSkipped", unit=MetricUnit.Count, value=len(report.skipped_template_updates)
        )
    for skipped in report.skipped_template_updates:
        logger.warning(
            "template status update skipped: a template the cache does not hold (or an older event)",
            extra={"template": skipped.name, "language": skipped.language, "event": skipped.event},
        )
    if report.foreign_parts:
        metrics.add_metric(name="ForeignNumberParts", unit=MetricUnit.Count, value=report.foreign_parts)
        # Not ours to store or answer (another deployment on the same WABA, a test number): say which.
        logger.warning(
            "messages or statuses to a phone_number_id this deployment does not own were dropped",
            extra={"phone_number_ids": sorted(report.foreign_phone_number_ids), "parts": report.foreign_parts},
        )
    if report.unstorable:
        metrics.add_metric(name="UnstorableParts", unit=MetricUnit.Count, value=len(report.unstorable))
    for part, dead_letter_id in zip(report.unstorable, report.dead_letter_ids, strict=True):
        # What and why, never the content: the dead letter holds the part itself.
        logger.error(
            "a part DynamoDB cannot store was set aside in the dead-letter queue",
            extra={
                "kind": part.kind,
                "reason": part.reason,
                "part_bytes": len(part.raw_json.encode("utf-8")),
                "dead_letter_id": dead_letter_id,
            },
        )
    for error in report.value_errors:
        logger.warning("Meta reported an error in a webhook", extra={"graph_code": error.code, "title": error.title})
    logger.info(
        "webhook recorded",
        extra={
            "new_messages": report.new_messages,
            "duplicate_messages": report.duplicate_messages,
            "statuses": report.statuses,
            "preferences": report.preferences,
            "template_updates": report.template_updates,
            "unusable_parts": report.unusable_parts,
            "unstorable_parts": len(report.unstorable),
            "ignored_fields": report.ignored_fields,
        },
    )


@app.exception_handler(SignatureRejectedError)
def _signature_rejected(error: SignatureRejectedError) -> Response[str]:
    metrics.add_metric(name="SignatureFailures", unit=MetricUnit.Count, value=1)
    logger.warning("webhook signature rejected", extra={"verdict": error.verdict.value})
    if error.verdict is SignatureVerdict.MISSING:
        return error_response(401, "signature_missing", "X-Hub-Signature-256 header is required")
    return error_response(403, "signature_mismatch", "X-Hub-Signature-256 does not match the body")


@app.exception_handler(PayloadTooLargeError)
def _too_large(error: PayloadTooLargeError) -> Response[str]:
    metrics.add_metric(name="PayloadTooLarge", unit=MetricUnit.Count, value=1)
    return error_response(413, "payload_too_large", f"body exceeds {error.limit} bytes")


@app.exception_handler(MalformedPayloadError)
def _malformed(error: MalformedPayloadError) -> Response[str]:
    metrics.add_metric(name="ParseErrors", unit=MetricUnit.Count, value=1)
    return error_response(400, "malformed_payload", error.reason)


@app.exception_handler(UndecodableBodyError)
def _undecodable(error: UndecodableBodyError) -> Response[str]:
    return error_response(400, "malformed_payload", str(error))


@app.exception_handler([StoreUnavailableError, QueueUnavailableError])
def _not_durable(error: Exception) -> Response[str]:
    # 500 makes Meta redeliver; every write is idempotent, so the retry completes what this one did not.
    metrics.add_metric(name="WebhookNotDurable", unit=MetricUnit.Count, value=1)
    logger.exception("webhook not durably recorded; asking Meta to retry")
    return error_response(500, "temporarily_unavailable", "the event was not recorded; retry later")


@app.exception_handler(ConfigurationError)
def _misconfigured(error: ConfigurationError) -> Response[str]:
    logger.error("webhook misconfigured", extra={"problem": str(error)})
    return error_response(500, "configuration_error", "the service is not configured")


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[str]:
    logger.exception("unexpected webhook failure")
    return error_response(500, "internal_error", "unexpected error; retry later")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


def handle(event: dict[str, Any], context: LambdaContext, **doubles: Unpack[WebhookDoubles]) -> dict[str, Any]:
    """Entry point for tests: the same routing with test doubles handed in (whatsapp_crm.wiring)."""
    return invoke(lambda_handler, event, context, doubles)
