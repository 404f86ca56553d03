"""Outbound records (send API and responder) merging with statuses that may arrive first."""

from __future__ import annotations

from typing import Any

from conftest import AwsStack
from local import meta_payloads as meta
from whatsapp_crm.records import OutboundRecord, SentBy

LEAD = "972525551234"


def _outbound(wamid: str, *, timestamp: str = "2026-11-25T10:00:00Z", sent_by: SentBy = SentBy.HUMAN) -> OutboundRecord:
    return OutboundRecord(
        wamid=wamid,
        wa_id=LEAD,
        phone_number_id=meta.DEMO_PHONE_NUMBER_ID,
        message_type="text",
        timestamp=timestamp,
        sent_by=sent_by,
        text="הנכס עדיין זמין",
        preview="הנכס עדיין זמין",
        awaits_response=False,
    )


def test_a_status_that_beat_the_send_record_is_kept(webhook: Any, table: Any) -> None:
    # Given Meta's "delivered" status arrived before the sender stored its message
    wamid = meta.new_wamid("out")
    status = meta.status(wamid, "delivered", LEAD, timestamp=1_795_000_000)
    assert webhook(meta.envelope(meta.status_value([status]))).status == 200
    # When the sender records the accepted message
    assert table.record_outbound(_outbound(wamid)) is True
    # Then the message has its real type and text and still reads "delivered"
    item = table.get_message(wamid)
    assert item["message_type"] == "text"
    assert item["text"] == "הנכס עדיין זמין"
    assert item["status"] == "delivered"
    assert item["sent_by"] == "human"


def test_a_later_status_moves_a_recorded_send_forward(webhook: Any, table: Any) -> None:
    wamid = meta.new_wamid("out")
    table.record_outbound(_outbound(wamid))
    assert table.get_message(wamid)["status"] == "accepted"
    assert webhook(meta.envelope(meta.status_value([meta.status(wamid, "read", LEAD)]))).status == 200
    assert table.get_message(wamid)["status"] == "read"


def test_recording_the_same_send_twice_counts_it_once(aws: AwsStack, table: Any) -> None:
    wamid = meta.new_wamid("out")
    assert table.record_outbound(_outbound(wamid)) is True
    assert table.record_outbound(_outbound(wamid)) is False
    stats = [
        item
        for item in aws.client("dynamodb").scan(TableName=aws.ref("ConversationsTable"))["Items"]
        if item["PK"]["S"].startswith("STATS#")
    ]
    assert sum(int(item["sent"]["N"]) for item in stats) == 1


def test_a_human_send_marks_the_lead_handled_and_starts_takeover(webhook: Any, table: Any) -> None:
    inbound = meta.text_message(LEAD, "יש חניה?", timestamp=1_795_000_000)
    assert webhook(meta.envelope(meta.message_value([inbound]))).status == 200
    assert table.get_lead(LEAD)["awaits_response"] is True
    table.record_outbound(_outbound(meta.new_wamid("out"), timestamp="2026-11-25T10:00:00Z"))
    lead = table.get_lead(LEAD)
    assert lead["awaits_response"] is False
    assert lead["last_human_outbound_at"] == "2026-11-25T10:00:00Z"
    assert lead["last_message_preview"] == "הנכס עדיין זמין"
