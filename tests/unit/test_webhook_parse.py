"""Every message and status kind Meta documents parses; unknown kinds and broken parts never fail the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local import meta_payloads as meta
from whatsapp_crm.ingest import inbound_record, preference_change, status_update
from whatsapp_crm.webhook.models import InboundMessage, MessageType, StatusKind
from whatsapp_crm.webhook.parse import MalformedPayloadError, decode_body, parse_notification

DATA = Path(__file__).resolve().parent.parent / "data" / "webhooks"
MESSAGES: dict[str, dict[str, Any]] = json.loads((DATA / "message_kinds.json").read_text(encoding="utf-8"))
STATUSES: dict[str, dict[str, Any]] = json.loads((DATA / "status_kinds.json").read_text(encoding="utf-8"))

EXPECTED_MESSAGES = {
    "text": (MessageType.TEXT, "שלום, יש דירות 4 חדרים בחולון?"),
    "text_forwarded_reply": (MessageType.TEXT, "זה"),
    "text_from_ad": (MessageType.TEXT, "מעוניין בפרטים"),
    "image": (MessageType.IMAGE, "התמונה של הסלון"),
    "audio_voice": (MessageType.AUDIO, None),
    "video": (MessageType.VIDEO, None),
    "document": (MessageType.DOCUMENT, "חוזה"),
    "sticker": (MessageType.STICKER, None),
    "location": (MessageType.LOCATION, None),
    "contacts": (MessageType.CONTACTS, None),
    "interactive_button_reply": (MessageType.INTERACTIVE, "מחר 10:00"),
    "interactive_list_reply": (MessageType.INTERACTIVE, "4 חדרים"),
    "template_quick_reply": (MessageType.BUTTON, "הסר אותי"),
    "reaction": (MessageType.REACTION, "👍"),
    "reaction_removed": (MessageType.REACTION, None),
    "order": (MessageType.ORDER, "הזמנה"),
    "system_changed_number": (MessageType.SYSTEM, "User A changed from 972525551234 to 972525559999"),
    "unsupported": (MessageType.UNSUPPORTED, None),
    "legacy_unknown": (MessageType.UNKNOWN, None),
    "brand_new_type": (MessageType.UNKNOWN, None),
}


def _parse(document: dict[str, Any]) -> Any:
    return parse_notification(decode_body(meta.wire_bytes(document)))


def test_every_documented_kind_has_an_expectation() -> None:
    assert set(MESSAGES) == set(EXPECTED_MESSAGES)


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_message_kind_parses_with_its_type_and_readable_text(kind: str) -> None:
    # Given one message of this kind in Meta's envelope
    notification = _parse(meta.envelope(meta.message_value([MESSAGES[kind]], name="דנה")))
    # Then it is parsed, typed, and what a person would read is extracted
    assert notification.unusable_parts == 0
    [event] = notification.messages
    expected_type, expected_text = EXPECTED_MESSAGES[kind]
    assert event.message.type is expected_type
    assert event.message.text_content == expected_text
    assert event.profile_name == "דנה"
    assert event.metadata.phone_number_id == meta.DEMO_PHONE_NUMBER_ID


def test_media_message_record_keeps_media_id_and_mime_type() -> None:
    [event] = _parse(meta.envelope(meta.message_value([MESSAGES["document"]]))).messages
    record = inbound_record(event, "2026-11-25T10:00:00Z")
    assert (record.media_id, record.mime_type, record.text) == ("1004", "application/pdf", "חוזה")
    assert record.timestamp == "2025-11-24T16:00:06Z"


def test_reply_context_and_inbound_errors_are_kept() -> None:
    [reply] = _parse(meta.envelope(meta.message_value([MESSAGES["text_forwarded_reply"]]))).messages
    assert inbound_record(reply, "2026-11-25T10:00:00Z").reply_to == "wamid.ours1"
    [unsupported] = _parse(meta.envelope(meta.message_value([MESSAGES["unsupported"]]))).messages
    record = inbound_record(unsupported, "2026-11-25T10:00:00Z")
    assert record.errors[0].code == 131051
    assert record.preview == "[unsupported]"


def test_raw_message_is_kept_as_sent_including_fields_we_do_not_model() -> None:
    [event] = _parse(meta.envelope(meta.message_value([MESSAGES["brand_new_type"]]))).messages
    assert json.loads(inbound_record(event, "2026-11-25T10:00:00Z").raw_json)["hologram"] == {"id": "9"}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("sent", StatusKind.SENT),
        ("delivered", StatusKind.DELIVERED),
        ("read", StatusKind.READ),
        ("played", StatusKind.PLAYED),
        ("failed", StatusKind.FAILED),
        ("brand_new_status", StatusKind.UNKNOWN),
    ],
)
def test_status_kinds(kind: str, expected: StatusKind) -> None:
    [event] = _parse(meta.envelope(meta.status_value([STATUSES[kind]]))).statuses
    assert event.status.status is expected


def test_failed_status_carries_its_error_and_unknown_status_is_not_applied() -> None:
    notification = _parse(meta.envelope(meta.status_value([STATUSES["failed"], STATUSES["brand_new_status"]])))
    failed, unknown = (status_update(event, "2026-11-25T10:00:00Z") for event in notification.statuses)
    assert failed is not None and failed.error is not None
    assert (failed.error.code, failed.error.title, failed.error.details) == (
        131026,
        "Message undeliverable",
        "Message Undeliverable.",
    )
    assert unknown is None


def test_read_status_keeps_pricing_and_callback_data() -> None:
    notification = _parse(meta.envelope(meta.status_value([STATUSES["sent"], STATUSES["read"]])))
    sent, read = (status_update(event, "2026-11-25T10:00:00Z") for event in notification.statuses)
    assert sent is not None and sent.pricing_category == "service"
    assert read is not None and read.biz_opaque_callback_data == "crm-42"


def test_user_preferences_stop_and_resume() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": meta.metadata(),
        "contacts": [{"profile": {"name": "דנה"}, "wa_id": "972525551234"}],
        "user_preferences": [
            {
                "wa_id": "972525551234",
                "detail": "User requested to stop marketing messages",
                "category": "marketing_messages",
                "value": "stop",
                "timestamp": 1764000200,
            },
            {
                "wa_id": "972525551234",
                "detail": "resumed",
                "category": "marketing_messages",
                "value": "resume",
                "timestamp": 1764000300,
            },
            {"wa_id": "972525551234", "category": "marketing_messages", "value": "maybe", "timestamp": 1764000400},
        ],
    }
    notification = _parse(meta.envelope(value, field="user_preferences"))
    changes = [preference_change(event, "2026-11-25T10:00:00Z") for event in notification.preferences]
    assert [change.opted_out if change else None for change in changes] == [True, False, None]


def test_value_level_errors_are_collected() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": meta.metadata(),
        "errors": [{"code": 131000, "title": "Something went wrong", "error_data": {"details": "x"}}],
    }
    notification = _parse(meta.envelope(value))
    assert [error.code for error in notification.value_errors] == [131000]


def test_unknown_fields_are_ignored_not_failed() -> None:
    document = meta.envelope({"new_score": "GREEN"}, field="message_template_quality_update")
    notification = _parse(document)
    assert notification.ignored_fields == ["message_template_quality_update"]
    assert notification.messages == [] and notification.unusable_parts == 0


def test_a_template_status_update_is_read_with_its_account_and_time() -> None:
    document = meta.template_status_update("property_update", "he", "PAUSED", template_id=1003, at=1_765_000_000)
    notification = _parse(document)
    (event,) = notification.template_updates
    assert (event.waba_id, event.time) == (meta.DEMO_WABA_ID, 1_765_000_000)
    assert event.value["message_template_name"] == "property_update"
    assert notification.ignored_fields == [] and notification.unusable_parts == 0


@pytest.mark.parametrize("field", [[], {"name": "messages"}, None, 7])
def test_a_field_name_that_is_not_a_string_is_ignored_and_its_neighbours_kept(field: Any) -> None:
    # Given a delivery with a change whose `field` is not a name, next to a normal message change
    document = meta.envelope(meta.message_value([MESSAGES["text"]]))
    document["entry"][0]["changes"].insert(0, {"field": field, "value": meta.message_value([MESSAGES["image"]])})
    # When it is parsed
    notification = _parse(document)
    # Then the odd change is ignored (not a crash, which Meta would redeliver for a week) and the message kept
    assert [event.message.id for event in notification.messages] == [MESSAGES["text"]["id"]]
    assert notification.ignored_fields == [str(field)]


@pytest.mark.parametrize(
    "broken",
    [
        {"from": "972525551234", "id": "wamid.x", "timestamp": "yesterday", "type": "text"},
        {"from": "972525551234", "timestamp": "1764000000", "type": "text"},
        {"id": "wamid.y", "timestamp": "1764000000", "type": "text"},
        {"from": "972525551234", "id": "wamid.z", "timestamp": True, "type": "text"},
        {"from": 972525551234, "id": "wamid.w", "timestamp": "1764000000", "type": "text", "text": {"body": 5}},
        None,
        "message",
        [],
    ],
)
def test_an_unusable_message_is_skipped_and_its_neighbours_kept(broken: Any) -> None:
    good = MESSAGES["text"]
    value = meta.message_value([good])
    value["messages"] = [broken, good]
    notification = _parse(meta.envelope(value))
    assert [event.message.id for event in notification.messages] == ["wamid.text1"]
    assert notification.unusable_parts == 1


@pytest.mark.parametrize(
    "document",
    [
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": "x"},
        {"object": "whatsapp_business_account", "entry": [None, {"changes": None}, {"changes": [None, {}]}]},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {}}]}]},
    ],
)
def test_well_formed_envelope_with_unusable_parts_yields_nothing(document: dict[str, Any]) -> None:
    notification = _parse(document)
    assert notification.messages == [] and notification.statuses == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'{"object":"whatsapp_business_account","x":Infinity}', "not strict JSON"),
        (b'{"object":"whatsapp_business_account","x":-Infinity}', "not strict JSON"),
        (b"\xc3\x28", "not valid UTF-8"),
        (b'"whatsapp_business_account"', "not a JSON object"),
        (b'{"object":"instagram"}', "object is not"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nests too deeply"),
        (b"[" * 100_000, "nests too deeply"),
    ],
)
def test_bodies_that_are_not_a_whatsapp_json_object_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayloadError, match=reason):
        decode_body(body)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    body = meta.wire_bytes(meta.envelope(meta.message_value([meta.text_message("972525551234", "[" * 500)])))
    assert len(parse_notification(decode_body(body)).messages) == 1


def test_queue_body_validates_as_the_responders_contract() -> None:
    # The webhook queues QueuedInbound's own JSON; the responder reads it back with the same model.
    from whatsapp_crm.handoff import QueuedInbound
    from whatsapp_crm.ingest import _handoff

    [event] = _parse(meta.envelope(meta.message_value([MESSAGES["text_from_ad"]], name='דנה "הבונה"'))).messages
    queued = QueuedInbound.model_validate_json(_handoff(event, "2026-11-25T10:00:00Z").body())
    assert queued.message == InboundMessage.model_validate(MESSAGES["text_from_ad"])
    assert queued.message.referral is not None and queued.message.referral.source_id == "120"
    assert (queued.wamid, queued.wa_id, queued.profile_name) == ("wamid.text3", "972525551234", 'דנה "הבונה"')
    assert (queued.phone_number_id, queued.timestamp) == (meta.DEMO_PHONE_NUMBER_ID, 1764000002)


@pytest.mark.parametrize("kind", sorted(EXPECTED_MESSAGES))
def test_every_message_kind_crosses_the_queue_as_the_same_typed_message(kind: str) -> None:
    # Given any kind of message Meta sends, including a type it adds later
    from whatsapp_crm.handoff import QueuedInbound
    from whatsapp_crm.ingest import _handoff

    [event] = _parse(meta.envelope(meta.message_value([MESSAGES[kind]]))).messages
    # When the webhook queues it and the responder reads the record back
    queued = QueuedInbound.model_validate_json(_handoff(event, "2026-11-25T10:00:00Z").body())
    # Then the responder holds the message the webhook validated, type and text included
    assert queued.message == event.message
    assert (queued.message.type, queued.message.text_content) == EXPECTED_MESSAGES[kind]


def test_a_record_queued_in_the_old_format_with_metas_raw_message_is_still_read() -> None:
    # Given a record queued before the contract was typed: `message` is Meta's object as it sent it
    from whatsapp_crm.handoff import QueuedInbound

    old_body = json.dumps(
        {
            "wamid": "wamid.new",
            "wa_id": "972525551234",
            "phone_number_id": meta.DEMO_PHONE_NUMBER_ID,
            "display_phone_number": None,
            "profile_name": None,
            "timestamp": 1764000019,
            "received_at": "2026-11-25T10:00:00Z",
            "message": MESSAGES["brand_new_type"],
        },
        ensure_ascii=False,
    )
    # When the responder reads it
    queued = QueuedInbound.model_validate_json(old_body)
    # Then it is a message of unknown type from the lead, not an error
    assert (queued.message.id, queued.message.from_, queued.message.type) == (
        "wamid.new",
        "972525551234",
        MessageType.UNKNOWN,
    )
