"""MediaFunction: archives what leads send (records of the media queue, fed by the responder) and answers
GET /conversations/{wa_id}/media/{media_id} with a 15-minute link to the archived file.

Thin by design: batch parsing and path validation, one domain call (whatsapp_crm.media_archive), the HTTP
mapping of its refusals.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Unpack

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_crm.api_errors import install_error_handlers, invalid_field, not_found
from whatsapp_crm.api_models import UploadBody, body_doc, error_doc
from whatsapp_crm.errors import ConfigurationError
from whatsapp_crm.http_responses import compact_json, error_response, json_response
from whatsapp_crm.media_archive import (
    DOWNLOAD_URL_SECONDS,
    ArchivePolicy,
    MediaNotArchivedError,
    MediaNotFoundError,
    archive_media,
    download_link,
)
from whatsapp_crm.media_upload import UploadRefusedError, header, read_upload, upload_media
from whatsapp_crm.numbers import is_ours, parse_phone_number_ids, sending_number
from whatsapp_crm.observability import MetricUnit, logger, mask_phone, metrics
from whatsapp_crm.read_api import InvalidWaIdError, resolve_wa_id
from whatsapp_crm.settings import MediaSettings, load
from whatsapp_crm.signature import raw_body
from whatsapp_crm.wiring import MediaDoubles, MediaPorts, invoke

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch import BatchProcessor

    from whatsapp_crm.sqs.media_records import MediaQueueRecord

app = APIGatewayHttpResolver(enable_validation=True, serializer=compact_json)
install_error_handlers(app)

WaId = Annotated[str, Path(min_length=1, max_length=64, description="The lead's WhatsApp id (international digits)")]
MediaId = Annotated[str, Path(pattern=r"^[0-9]{1,64}$", description="The media id shown in the thread's `media.id`")]


class ForeignNumberError(ValueError):
    """POST /media for a phone_number_id this deployment does not own."""

    def __init__(self) -> None:
        super().__init__("not one of this deployment's numbers (WhatsAppPhoneNumberIds)")


@cache
def _processor() -> BatchProcessor:
    """Built when the first batch arrives: an upload or a link never imports the batch utility (cold start)."""
    from whatsapp_crm.sqs.media_records import archive_processor

    return archive_processor()


# --- the archive ---------------------------------------------------------------------------------------


def _archive_record(record: MediaQueueRecord) -> str:
    request = record.body
    settings = load(MediaSettings)
    ports = MediaPorts(settings)
    outcome = archive_media(
        request,
        source=ports.source,
        objects=ports.objects,
        ledger=ports.ledger,
        policy=ArchivePolicy(max_bytes=settings.media_max_bytes),
        clock=ports.clock,
        last_attempt=int(record.attributes.ApproximateReceiveCount) >= settings.media_archive_attempts,
    )
    fields = {"media_id": request.media_id, "wamid": request.wamid, "lead": mask_phone(request.wa_id)}
    if outcome is None:
        logger.info("media already archived (a redelivered request)", extra=fields)
        return "already_done"
    metrics.add_metric(
        name="MediaArchived" if outcome.reason is None else "MediaUnavailable", unit=MetricUnit.Count, value=1
    )
    logger.info(
        "media archived" if outcome.reason is None else "media unavailable",
        extra={**fields, "status": outcome.status.value, "reason": outcome.reason, "size": outcome.size},
    )
    return outcome.status.value


# --- the file route ------------------------------------------------------------------------------------


@app.get(
    "/conversations/<wa_id>/media/<media_id>",
    summary="Download a file of a conversation",
    description=(
        "302 to a link valid 15 minutes to the archived file (never Meta's URL or our token); with "
        "`Accept: application/json`, 200 with that link as `url` (and `expires_in` seconds), for pages that "
        "call with a bearer token. A lead's file is found only under that lead; a file an agent uploaded "
        "(POST /media) under any lead."
    ),
    tags=["conversations"],
    operation_id="getConversationMedia",
    responses={
        200: {"description": "With Accept: application/json: {url, expires_in}, the same link"},
        302: {"description": "Location: the presigned link (15 minutes), served as an attachment"},
        400: error_doc("validation_error: {wa_id} or {media_id} is not usable"),
        404: error_doc("not_found: no such file in this conversation"),
        409: error_doc("media_not_archived: still `pending`, or `unavailable` (`reason` says why)"),
    },
)
def media_file(wa_id: WaId, media_id: MediaId) -> Response[str]:
    ports = MediaPorts(load(MediaSettings))
    lead = resolve_wa_id(wa_id, ports.settings.default_phone_region)
    url = download_link(lead, media_id, ledger=ports.ledger, objects=ports.objects)
    # A browser page signed in with a bearer token cannot follow the redirect with an <img>: it asks for
    # the link itself (Accept: application/json) and loads the file from it.
    if "application/json" in (header(app.current_event.headers, "accept") or ""):
        return json_response(200, {"url": url, "expires_in": DOWNLOAD_URL_SECONDS}, {"Cache-Control": "no-store"})
    return Response(status_code=302, headers={"Location": url, "Cache-Control": "no-store"}, body="")


@app.exception_handler(InvalidWaIdError)
def _invalid_wa_id(error: InvalidWaIdError) -> Response[str]:
    return invalid_field("wa_id", str(error))


@app.exception_handler(MediaNotFoundError)
def _no_media(error: MediaNotFoundError) -> Response[str]:
    return not_found("no such file in this conversation")


@app.exception_handler(MediaNotArchivedError)
def _not_archived(error: MediaNotArchivedError) -> Response[str]:
    return error_response(
        409, "media_not_archived", f"the file is {error.status}", media_status=error.status, reason=error.reason
    )


# --- uploads -------------------------------------------------------------------------------------------


@app.post(
    "/media",
    summary="Upload a file to send",
    description=(
        "The file as multipart/form-data (a part named `file`, with its Content-Type and filename) or as the raw "
        "body with its Content-Type (`?filename=` names it). Checked against Meta's media rules, uploaded to "
        'WhatsApp and kept in the media bucket; send it with POST /messages and `{"id": media_id}` '
        "(valid 30 days at Meta). API Gateway and Lambda carry at most about 6 MB of body (base64 included)."
    ),
    tags=["media"],
    operation_id="uploadMedia",
    responses={
        201: body_doc("WhatsApp holds the file; send it by this id", UploadBody),
        400: error_doc("empty_file, or validation_error: no `file` part, a bad query parameter"),
        413: error_doc("file_too_large: over Meta's limit for its kind (`limit_bytes`)"),
        415: error_doc("unsupported_media_type (`accepted` lists Meta's types), or content_mismatch"),
        502: error_doc("whatsapp_error: Meta refused the upload (graph_error says why)"),
        503: error_doc("whatsapp_unavailable: Meta kept failing after retries"),
    },
)
def upload(
    filename: Annotated[str | None, Query(max_length=240, description="The file's name (raw bodies)")] = None,
    phone_number_id: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,32}$", description="The business number to upload for (default: the stack's)"),
    ] = None,
) -> Response[UploadBody]:
    settings = load(MediaSettings)
    own = parse_phone_number_ids(settings.whatsapp_phone_number_ids)
    if phone_number_id is not None and not is_ours(phone_number_id, own):
        # Media is uploaded for the number that will send it, and nothing is ever sent from another's.
        raise ForeignNumberError()
    number = phone_number_id or sending_number(None, own)
    if not number:
        raise ConfigurationError("no WHATSAPP_PHONE_NUMBER_IDS to upload media for")
    event = app.current_event
    body = raw_body(event.body, bool(event.is_base64_encoded))
    ports = MediaPorts(settings)
    result = upload_media(
        read_upload(body, header(event.headers, "content-type"), filename),
        phone_number_id=number,
        uploader=ports.source,
        objects=ports.objects,
        ledger=ports.ledger,
        max_bytes=settings.media_upload_max_bytes,
        clock=ports.clock,
    )
    metrics.add_metric(name="MediaUploaded", unit=MetricUnit.Count, value=1)
    logger.info(
        "media uploaded", extra={"media_id": result.media_id, "mime_type": result.mime_type, "size": result.size}
    )
    return Response(
        status_code=201, content_type=content_types.APPLICATION_JSON, body=UploadBody.model_validate(result.as_json())
    )


@app.exception_handler(ForeignNumberError)
def _foreign_number(error: ForeignNumberError) -> Response[str]:
    return invalid_field("phone_number_id", str(error))


@app.exception_handler(UploadRefusedError)
def _refused(error: UploadRefusedError) -> Response[str]:
    metrics.add_metric(name="MediaUploadsRefused", unit=MetricUnit.Count, value=1)
    return error_response(error.status, error.code, str(error), **error.details)


# --- entry points ---------------------------------------------------------------------------------------


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        from aws_lambda_powertools.utilities.batch import process_partial_response

        return dict(process_partial_response(event, _archive_record, _processor(), context))
    return app.resolve(event, context)


def handle(event: dict[str, Any], context: LambdaContext, **doubles: Unpack[MediaDoubles]) -> dict[str, Any]:
    """Entry point for tests: the same routing with test doubles handed in (whatsapp_crm.wiring)."""
    return invoke(lambda_handler, event, context, doubles)
