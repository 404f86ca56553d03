#!/usr/bin/env python3
"""Regenerate events/: one event per function and payload kind, for `sam local invoke <Function> -e events/<file>`.

HTTP events are built exactly as the local stack builds them (local.http_api.build_event over the route in
template.yaml, so routeKey, pathParameters and the authorizer context match); webhook bodies come from
local.meta_payloads in Meta's wire encoding and are signed with the local app secret (local/defaults.py).
The SQS event is built by the local poller's own record builder around a real handoff.QueuedInbound body.

    python scripts/generate_events.py                  # rewrite events/ (deterministic: fixed ids and times)
    python scripts/generate_events.py --check          # exit 1 if events/ is not what this would write
    python scripts/generate_events.py --now --secret S --out /tmp/events   # fresh times, your app secret

Events of a function that is not in template.yaml are skipped (and reported).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local.defaults import LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN
from local.runtime import use_layers

use_layers()

from local import meta_payloads as meta
from local.http_api import build_event, find_route, routes
from local.poller import SqsSource, lambda_record
from local.template import load_template

EVENTS_DIR = ROOT / "events"
FIXED_EPOCH = 1764000000  # 2025-11-24T16:00:00Z
LEAD = "972525551234"
OTHER_LEAD = "972545550000"
HEBREW_TEXT = "שלום, אפשר לקבוע פגישה מחר?"
INBOUND_WAMID = "wamid.HBgMOTcyNTI1NTUxMjM0FQIAEhgUM0FFQjVDNTJBRDQ4QjJDNjAwMDAA"
OUTBOUND_WAMID = "wamid.HBgMOTcyNTI1NTUxMjM0FQIAERgSQjI0RkI2MUQ0RTlGRDlFQzk4AA=="
TAP_WAMID = "wamid.HBgMOTcyNTI1NTUxMjM0FQIAEhgUM0FFQjVDNTJBRDQ4QjJDNjAwMDEA"
OTHER_WAMID = "wamid.HBgMOTcyNTQ1NTUwMDAwFQIAEhgUM0FFQjhGMjE5QTE3RDA1NzAwMDAA"
PHOTO_WAMID = "wamid.HBgMOTcyNTI1NTUxMjM0FQIAEhgUM0FFQjVDNTJBRDQ4QjJDNjAwMDIA"
MEDIA_ID = "1013859600285441"
API_HOST = "abc123defg.execute-api.eu-west-1.amazonaws.com"


@dataclass(frozen=True)
class Settings:
    epoch: int
    secret: str
    verify_token: str


@dataclass(frozen=True)
class HttpEventSpec:
    name: str
    function: str
    method: str
    target: str  # path and query, as a client sends them
    body: Callable[[Settings], bytes | None] = lambda _settings: None
    headers: Callable[[Settings, bytes | None], dict[str, str]] = lambda _settings, _body: {}


def _webhook_headers(settings: Settings, body: bytes | None) -> dict[str, str]:
    return meta.signed_headers(body or b"", settings.secret)


def _bad_signature_headers(settings: Settings, body: bytes | None) -> dict[str, str]:
    return meta.signed_headers(body or b"", "not-the-app-secret")


def _json_headers(_settings: Settings, _body: bytes | None) -> dict[str, str]:
    return {"content-type": "application/json", "user-agent": "crm-backend/1.0"}


def _hebrew_text(settings: Settings) -> bytes:
    message = meta.text_message(LEAD, HEBREW_TEXT, wamid=INBOUND_WAMID, timestamp=settings.epoch)
    return meta.wire_bytes(meta.envelope(meta.message_value([message], name="דנה")))


def _slot_tap(settings: Settings) -> bytes:
    tap = meta.button_reply(
        LEAD,
        "slot:2025-11-25T10:00",
        "מחר 10:00",
        context_id=OUTBOUND_WAMID,
        wamid=TAP_WAMID,
        timestamp=settings.epoch + 60,
    )
    return meta.wire_bytes(meta.envelope(meta.message_value([tap], name="דנה")))


def _statuses(settings: Settings) -> bytes:
    status = meta.status(OUTBOUND_WAMID, "delivered", LEAD, timestamp=settings.epoch + 5)
    return meta.wire_bytes(meta.envelope(meta.status_value([status])))


def _json(document: Any) -> Callable[[Settings], bytes]:
    return lambda _settings: json.dumps(document, ensure_ascii=False).encode("utf-8")


HANDSHAKE_QUERY = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token="

HTTP_EVENTS: list[HttpEventSpec] = [
    HttpEventSpec("webhook_get_handshake", "WebhookFunction", "GET", "/webhook?" + HANDSHAKE_QUERY),
    HttpEventSpec("webhook_post_text_he", "WebhookFunction", "POST", "/webhook", _hebrew_text, _webhook_headers),
    HttpEventSpec("webhook_post_button_reply", "WebhookFunction", "POST", "/webhook", _slot_tap, _webhook_headers),
    HttpEventSpec("webhook_post_status", "WebhookFunction", "POST", "/webhook", _statuses, _webhook_headers),
    HttpEventSpec(
        "webhook_post_bad_signature", "WebhookFunction", "POST", "/webhook", _hebrew_text, _bad_signature_headers
    ),
    HttpEventSpec(
        "send_text",
        "SendFunction",
        "POST",
        "/messages",
        _json(
            {
                "to": "+972525551234",
                "type": "text",
                "text": {
                    "body": "שלום דנה, הדירה ברחוב הרצל עדיין פנויה. מתי נוח לך לבוא לראות?",
                    "preview_url": False,
                },
                "lead_id": "crm-1042",
            }
        ),
        _json_headers,
    ),
    HttpEventSpec(
        "send_template",
        "SendFunction",
        "POST",
        "/messages",
        _json(
            {
                "to": "052-555-1234",
                "type": "template",
                "template": {
                    "name": "property_update",
                    "language": {"code": "he"},
                    "components": [
                        {
                            "type": "body",
                            "parameters": [{"type": "text", "text": "דנה"}, {"type": "text", "text": "הרצל 10"}],
                        }
                    ],
                },
            }
        ),
        _json_headers,
    ),
    HttpEventSpec(
        "send_buttons",
        "SendFunction",
        "POST",
        "/messages",
        _json(
            {
                "to": "+972525551234",
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "מתי נוח לך לראות את הדירה?"},
                    "action": {
                        "buttons": [
                            {"type": "reply", "reply": {"id": "visit:today", "title": "היום"}},
                            {"type": "reply", "reply": {"id": "visit:tomorrow", "title": "מחר"}},
                            {"type": "reply", "reply": {"id": "visit:call", "title": "תתקשרו אליי"}},
                        ]
                    },
                },
            }
        ),
        _json_headers,
    ),
    HttpEventSpec("conversations_list", "ConversationsFunction", "GET", "/conversations?limit=20"),
    HttpEventSpec("conversation_messages", "ConversationsFunction", "GET", f"/conversations/{LEAD}/messages?limit=50"),
    HttpEventSpec("conversation_mark_read", "ConversationsFunction", "POST", f"/conversations/{LEAD}/read"),
    HttpEventSpec("health", "ConversationsFunction", "GET", "/health"),
    HttpEventSpec("templates_list", "TemplatesFunction", "GET", "/templates?status=APPROVED"),
    HttpEventSpec("templates_refresh", "TemplatesFunction", "GET", "/templates?refresh=true"),
    HttpEventSpec(
        "webhook_post_template_status",
        "WebhookFunction",
        "POST",
        "/webhook",
        lambda settings: meta.wire_bytes(
            meta.template_status_update("property_update", "he", "PAUSED", template_id=1003, at=settings.epoch)
        ),
        _webhook_headers,
    ),
    HttpEventSpec("conversation_media", "MediaFunction", "GET", f"/conversations/{LEAD}/media/{MEDIA_ID}"),
    HttpEventSpec(
        "media_upload",
        "MediaFunction",
        "POST",
        "/media?filename=brochure.pdf",
        lambda _settings: b"%PDF-1.7\n" + b"Gefen project brochure" * 20 + b"\n%%EOF",
        lambda _settings, _body: {"content-type": "application/pdf"},
    ),
    HttpEventSpec("inbox_page", "InboxFunction", "GET", "/inbox"),
    HttpEventSpec("inbox_config", "InboxFunction", "GET", "/inbox/config.json"),
]


def _fixed_context(event: dict[str, Any], name: str, settings: Settings) -> dict[str, Any]:
    """Replace what API Gateway makes up per request (ids, times, host) with stable values."""
    context = event["requestContext"]
    context["requestId"] = hashlib.sha1(name.encode()).hexdigest()[:16]
    context["domainName"] = API_HOST
    context["domainPrefix"] = API_HOST.split(".", 1)[0]
    context["apiId"] = API_HOST.split(".", 1)[0]
    context["http"]["sourceIp"] = "203.0.113.10"
    context["timeEpoch"] = settings.epoch * 1000
    context["time"] = "24/Nov/2025:16:00:00 +0000" if settings.epoch == FIXED_EPOCH else context["time"]
    return event


def http_event(spec: HttpEventSpec, template: dict[str, Any], settings: Settings) -> dict[str, Any] | None:
    target = spec.target + (settings.verify_token if spec.target.endswith("hub.verify_token=") else "")
    found = find_route(routes(template), spec.method, target.split("?", 1)[0])
    if found is None or found[0].function != spec.function:
        return None
    route, parameters = found
    body = spec.body(settings)
    headers = {
        "host": API_HOST,
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        **spec.headers(settings, body),
    }
    if body is not None:
        headers["content-length"] = str(len(body))
    event = build_event(route, parameters, spec.method, target, list(headers.items()), body)
    return _fixed_context(event, spec.name, settings)


def sqs_event(template: dict[str, Any], settings: Settings) -> dict[str, Any] | None:
    """A FIFO batch for ResponderFunction: two messages of one lead in order, then another lead's."""
    from whatsapp_crm.handoff import QueuedInbound

    resource = template.get("Resources", {}).get("ResponderFunction")
    if resource is None:
        return None
    messages = [
        (LEAD, meta.text_message(LEAD, HEBREW_TEXT, wamid=INBOUND_WAMID, timestamp=settings.epoch), "דנה"),
        (
            LEAD,
            meta.button_reply(
                LEAD,
                "slot:2025-11-25T10:00",
                "מחר 10:00",
                context_id=OUTBOUND_WAMID,
                wamid=TAP_WAMID,
                timestamp=settings.epoch + 60,
            ),
            "דנה",
        ),
        (
            OTHER_LEAD,
            meta.text_message(
                OTHER_LEAD,
                "Hi, is the flat on Herzl St still available?",
                wamid=OTHER_WAMID,
                timestamp=settings.epoch + 30,
            ),
            "Noa",
        ),
    ]
    source = SqsSource(
        function="ResponderFunction",
        event_name="Inbound",
        queue_url="",
        queue_arn="arn:aws:sqs:eu-west-1:123456789012:whatsapp-crm-InboundQueue.fifo",
        batch_size=10,
        batching_window_seconds=0,
        report_batch_item_failures=True,
    )
    records = []
    for index, (wa_id, message, name) in enumerate(messages):
        body = QueuedInbound(
            wamid=message["id"],
            wa_id=wa_id,
            phone_number_id=meta.DEMO_PHONE_NUMBER_ID,
            display_phone_number=meta.DEMO_DISPLAY_NUMBER,
            profile_name=name,
            timestamp=int(message["timestamp"]),
            received_at=_iso(int(message["timestamp"]) + 1),
            message=message,
        ).body()
        sent_ms = str((int(message["timestamp"]) + 1) * 1000)
        sqs_message = {
            "MessageId": f"0c6f6e5e-4a1b-4f3e-9d1a-00000000000{index + 1}",
            "ReceiptHandle": f"AQEBlocal{index + 1}" + "x" * 40,
            "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),  # SQS's own checksum, not security
            "Body": body,
            "Attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": sent_ms,
                "SequenceNumber": f"1886960000000000000{index + 1:02d}",
                "MessageGroupId": wa_id,
                "SenderId": "AROAEXAMPLE:WebhookFunction",
                "MessageDeduplicationId": message["id"],
                "ApproximateFirstReceiveTimestamp": str(int(sent_ms) + 20),
            },
        }
        records.append(lambda_record(sqs_message, source))
    return {"Records": records}


def media_sqs_event(template: dict[str, Any], settings: Settings) -> dict[str, Any] | None:
    """A media queue batch for MediaFunction: the archive request the responder makes for a lead's photo."""
    from whatsapp_crm.media_archive import archive_request
    from whatsapp_crm.webhook.models import InboundMessage

    if "MediaFunction" not in template.get("Resources", {}):
        return None
    photo = {
        "from": LEAD,
        "id": PHOTO_WAMID,
        "timestamp": str(settings.epoch),
        "type": "image",
        "image": {"id": MEDIA_ID, "mime_type": "image/jpeg", "caption": "תלוש שכר"},
    }
    request = archive_request(PHOTO_WAMID, LEAD, meta.DEMO_PHONE_NUMBER_ID, InboundMessage.model_validate(photo))
    assert request is not None
    body = request.model_dump_json(exclude_none=True)
    source = SqsSource(
        function="MediaFunction",
        event_name="Archive",
        queue_url="",
        queue_arn="arn:aws:sqs:eu-west-1:123456789012:whatsapp-crm-MediaQueue",
        batch_size=5,
        batching_window_seconds=0,
        report_batch_item_failures=True,
    )
    sent_ms = str((settings.epoch + 2) * 1000)
    message = {
        "MessageId": "6d1f0a2e-5b7c-4e3d-8a9b-000000000001",
        "ReceiptHandle": "AQEBlocalmedia" + "x" * 40,
        "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),  # SQS's own checksum, not security
        "Body": body,
        "Attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": sent_ms,
            "SenderId": "AROAEXAMPLE:ResponderFunction",
            "ApproximateFirstReceiveTimestamp": str(int(sent_ms) + 20),
        },
    }
    return {"Records": [lambda_record(message, source)]}


def stream_event(template: dict[str, Any], settings: Settings) -> dict[str, Any] | None:
    """A table stream batch for EventsFunction: a lead's message stored (message and lead), then the lead opting
    out, as DynamoDB Streams delivers them (NEW_AND_OLD_IMAGES, typed attribute values, epoch seconds)."""
    if "EventsFunction" not in template.get("Resources", {}):
        return None
    wamid = "wamid.HBgMOTcyNTI1NTUxMjM0FQIAEhgUM0FFQjVDNTJBRDQ4QjJDNjAwMDMA"
    at = _iso(settings.epoch)
    message = {
        "PK": {"S": f"MSG#{wamid}"},
        "SK": {"S": "MSG"},
        "wamid": {"S": wamid},
        "wa_id": {"S": LEAD},
        "direction": {"S": "inbound"},
        "message_type": {"S": "text"},
        "timestamp": {"S": at},
        "received_at": {"S": at},
        "phone_number_id": {"S": meta.DEMO_PHONE_NUMBER_ID},
        "text": {"S": "תסירו אותי מהרשימה"},
    }
    lead = {
        "PK": {"S": f"LEAD#{LEAD}"},
        "SK": {"S": "LEAD"},
        "wa_id": {"S": LEAD},
        "last_phone_number_id": {"S": meta.DEMO_PHONE_NUMBER_ID},
        "last_inbound_at": {"S": at},
    }
    opted_out = {
        **lead,
        "opted_out": {"BOOL": True},
        "opt_state_at": {"S": at},
        "opt_state_source": {"S": "text:opt_out"},
        "opted_out_at": {"S": at},
    }
    table_arn = "arn:aws:dynamodb:il-central-1:123456789012:table/whatsapp-crm-ConversationsTable"
    stream_arn = f"{table_arn}/stream/2025-11-24T16:00:00.000"
    changes: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
        ("INSERT", message, None),
        ("INSERT", lead, None),
        ("MODIFY", opted_out, lead),
    ]
    records = []
    for index, (name, new, old) in enumerate(changes):
        body: dict[str, Any] = {
            "ApproximateCreationDateTime": settings.epoch + 1,
            "Keys": {"PK": new["PK"], "SK": new["SK"]},
            "NewImage": new,
            "SequenceNumber": f"1100000000017454423{index:03d}",
            "SizeBytes": len(json.dumps(new)),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if old is not None:
            body["OldImage"] = old
        records.append(
            {
                "eventID": hashlib.md5(f"{name}{index}".encode()).hexdigest(),  # a stable id, not security
                "eventName": name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "il-central-1",
                "dynamodb": body,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": records}


def _iso(epoch: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def generate(settings: Settings | None = None, template: dict[str, Any] | None = None) -> dict[str, str]:
    """File name -> file text for every event whose function is in the template."""
    settings = settings or Settings(FIXED_EPOCH, LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN)
    template = template or load_template()
    files: dict[str, str] = {}
    for spec in HTTP_EVENTS:
        event = http_event(spec, template, settings)
        if event is not None:
            files[f"{spec.name}.json"] = json.dumps(event, indent=2, ensure_ascii=False) + "\n"
    responder = sqs_event(template, settings)
    if responder is not None:
        files["responder_sqs_fifo_batch.json"] = json.dumps(responder, indent=2, ensure_ascii=False) + "\n"
    archive = media_sqs_event(template, settings)
    if archive is not None:
        files["media_sqs_archive_batch.json"] = json.dumps(archive, indent=2, ensure_ascii=False) + "\n"
    stream = stream_event(template, settings)
    if stream is not None:
        files["events_table_stream_batch.json"] = json.dumps(stream, indent=2, ensure_ascii=False) + "\n"
    if "TemplatesFunction" in template.get("Resources", {}):
        schedule = schedule_event("TemplatesFunction", settings)
        files["templates_sync_schedule.json"] = json.dumps(schedule, indent=2, ensure_ascii=False) + "\n"
    return files


def schedule_event(function: str, settings: Settings) -> dict[str, Any]:
    """What EventBridge's schedule hands the function (a `Schedule` event of the template)."""
    return {
        "version": "0",
        "id": hashlib.sha1(function.encode()).hexdigest()[:8] + "-0000-4000-8000-000000000000",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": _iso(settings.epoch),
        "region": "il-central-1",
        "resources": [f"arn:aws:events:il-central-1:123456789012:rule/whatsapp-crm-{function}Sync"],
        "detail": {},
    }


def skipped(template: dict[str, Any] | None = None) -> list[str]:
    template = template or load_template()
    names = {name.removesuffix(".json") for name in generate(template=template)}
    return [spec.name for spec in HTTP_EVENTS if spec.name not in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate events/ from template.yaml and local.meta_payloads.")
    parser.add_argument("--out", type=Path, default=EVENTS_DIR)
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    parser.add_argument("--now", action="store_true", help="current timestamps (the responder skips old messages)")
    parser.add_argument("--secret", default=LOCAL_APP_SECRET, help="app secret to sign webhooks with")
    parser.add_argument("--verify-token", default=LOCAL_VERIFY_TOKEN)
    args = parser.parse_args(argv)
    import time

    settings = Settings(int(time.time()) if args.now else FIXED_EPOCH, args.secret, args.verify_token)
    files = generate(settings)
    existing = {path.name for path in args.out.glob("*.json")} if args.out.is_dir() else set()
    if args.check:
        stale = sorted(
            name
            for name, text in files.items()
            if not (args.out / name).is_file() or (args.out / name).read_text(encoding="utf-8") != text
        )
        extra = sorted(existing - set(files))
        for name in stale:
            print(f"out of date: {args.out / name}")
        for name in extra:
            print(f"not generated: {args.out / name}")
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in sorted(existing - set(files)):
        print(f"left alone (not generated): {args.out / name}")
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} events to {args.out}")
    for name in skipped():
        print(f"skipped {name}: its function or route is not in template.yaml yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
