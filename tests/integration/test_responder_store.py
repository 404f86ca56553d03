"""The responder's DynamoDB adapter against moto's server: the reply claim is strict, the records merge."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import AwsStack
from local import meta_payloads as meta
from whatsapp_crm.clock import iso
from whatsapp_crm.errors import StoreUnavailableError
from whatsapp_crm.records import MessageError, OutboundRecord, SentBy
from whatsapp_crm.responder_records import CALLBACK_PREFIX, ClaimStatus, MeetingRequest, PendingReply
from whatsapp_crm.store.responder import DynamoReplyStore

LEAD = "972525551234"
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
LEASE = timedelta(seconds=90)


@pytest.fixture
def replies(aws: AwsStack) -> DynamoReplyStore:
    return DynamoReplyStore(aws.ref("ConversationsTable"), client=aws.client("dynamodb"))


def _reply(wamid: str, inbound: str, *, intent: str = "greeting", at: datetime = NOW) -> OutboundRecord:
    return OutboundRecord(
        wamid=wamid,
        wa_id=LEAD,
        phone_number_id=meta.DEMO_PHONE_NUMBER_ID,
        message_type="text",
        timestamp=iso(at),
        sent_by=SentBy.AUTO_REPLY,
        text="שלום! תודה על הפנייה.",
        preview="שלום! תודה על הפנייה.",
        intent=intent,
        reply_to=inbound,
        awaits_response=False,
    )


def _claim_item(aws: AwsStack, wamid: str) -> dict[str, Any]:
    from whatsapp_crm.store.toolkit import from_item

    item = aws.client("dynamodb").get_item(
        TableName=aws.ref("ConversationsTable"), Key={"PK": {"S": f"MSG#{wamid}"}, "SK": {"S": "REPLY"}}
    )["Item"]
    return from_item(item)


def _hour_counts(aws: AwsStack) -> dict[str, int]:
    """Every hourly counter of the table, summed over hours and shards."""
    totals: dict[str, int] = {}
    for item in aws.client("dynamodb").scan(TableName=aws.ref("ConversationsTable"))["Items"]:
        if item["PK"]["S"].startswith("STATS#"):
            for name in ("received", "sent", "auto_replies", "failed", "refused"):
                if name in item:
                    totals[name] = totals.get(name, 0) + int(item[name]["N"])
    return totals


class TestClaim:
    def test_only_one_of_many_concurrent_consumers_wins_the_claim(self, replies: DynamoReplyStore) -> None:
        # Given eight consumers racing for the same inbound message
        wamid = meta.new_wamid()
        start = threading.Barrier(8)
        statuses: list[ClaimStatus] = []
        lock = threading.Lock()

        def claim(owner: str) -> None:
            start.wait()
            result = replies.claim_reply(wamid, LEAD, owner=owner, now=NOW, lease=LEASE)
            with lock:
                statuses.append(result.status)

        threads = [threading.Thread(target=claim, args=(f"owner-{i}",)) for i in range(8)]
        # When they all claim at once
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Then exactly one holds it; the others see a live lease
        assert sorted(statuses) == sorted([ClaimStatus.ACQUIRED] + [ClaimStatus.HELD] * 7)

    def test_a_finished_claim_is_handled_for_everyone_after(self, replies: DynamoReplyStore, table: Any) -> None:
        wamid = meta.new_wamid()
        claim = replies.claim_reply(wamid, LEAD, owner="a", now=NOW, lease=LEASE)
        replies.finish_reply_skipped(claim, "cooldown", NOW)
        later = replies.claim_reply(wamid, LEAD, owner="b", now=NOW + timedelta(days=2), lease=LEASE)
        assert (later.status, later.outcome) == (ClaimStatus.HANDLED, "cooldown")

    def test_an_expired_lease_is_resumed_with_what_was_about_to_be_sent(
        self, replies: DynamoReplyStore, aws: AwsStack
    ) -> None:
        # Given a holder that wrote its pending reply and then vanished
        wamid = meta.new_wamid()
        first = replies.claim_reply(wamid, LEAD, owner="a", now=NOW, lease=LEASE)
        pending = PendingReply("buttons", "מתי נוח?", "meeting", "he", (("slot:1", "מחר 10:00"),))
        assert replies.mark_reply_sending(first, pending, NOW) is True
        # When another consumer claims before and after the lease ran out
        early = replies.claim_reply(wamid, LEAD, owner="b", now=NOW + timedelta(seconds=60), lease=LEASE)
        late = replies.claim_reply(wamid, LEAD, owner="b", now=NOW + timedelta(seconds=91), lease=LEASE)
        # Then it waits while the lease lives, and then takes over with the pending reply in hand
        assert early.status is ClaimStatus.HELD
        assert early.lease_expires_at == int((NOW + LEASE).timestamp())
        assert late.status is ClaimStatus.RESUMED
        assert late.pending == pending
        assert late.sending_at == iso(NOW)  # when that holder called Graph: the evidence wait runs from here
        assert late.first_claimed_at == iso(NOW)
        assert _claim_item(aws, wamid)["attempts"] == 2
        # And the vanished holder can no longer write to it
        assert replies.mark_reply_sending(first, pending, NOW) is False

    def test_a_released_claim_can_be_taken_at_once(self, replies: DynamoReplyStore, aws: AwsStack) -> None:
        wamid = meta.new_wamid()
        first = replies.claim_reply(wamid, LEAD, owner="a", now=NOW, lease=LEASE)
        replies.release_reply(first, "TransientError", NOW, MessageError(131000, "Something went wrong"))
        again = replies.claim_reply(wamid, LEAD, owner="b", now=NOW + timedelta(seconds=1), lease=LEASE)
        assert again.status is ClaimStatus.ACQUIRED
        assert again.pending is None
        assert _claim_item(aws, wamid)["last_error"] == {"code": 131000, "title": "Something went wrong"}

    def test_only_the_holder_can_release(self, replies: DynamoReplyStore) -> None:
        wamid = meta.new_wamid()
        holder = replies.claim_reply(wamid, LEAD, owner="a", now=NOW, lease=LEASE)
        impostor = replace(holder, owner="b")
        replies.release_reply(impostor, "x", NOW)
        assert replies.claim_reply(wamid, LEAD, owner="c", now=NOW, lease=LEASE).status is ClaimStatus.HELD


class TestFinish:
    def test_a_sent_reply_is_recorded_with_the_lead_and_closes_the_claim(
        self, replies: DynamoReplyStore, table: Any, webhook: Any, aws: AwsStack
    ) -> None:
        # Given a stored inbound greeting and a claim on it
        inbound = meta.text_message(LEAD, "שלום", timestamp=int(NOW.timestamp()) - 5)
        assert webhook(meta.envelope(meta.message_value([inbound]))).status == 200
        claim = replies.claim_reply(inbound["id"], LEAD, owner="a", now=NOW, lease=LEASE)
        # When the reply is finished
        assert replies.finish_reply_sent(claim, _reply("wamid.R1", inbound["id"])) is True
        # Then the reply, the lead, the inbound message and the claim all say so
        reply = table.get_message("wamid.R1")
        assert (reply["auto_reply"], reply["intent"], reply["reply_to"]) == (True, "greeting", inbound["id"])
        lead = table.get_lead(LEAD)
        assert lead["awaits_response"] is False
        assert lead["last_auto_reply_at_greeting"] == iso(NOW)
        assert "last_human_outbound_at" not in lead
        message = table.get_message(inbound["id"])
        assert (message["reply_status"], message["reply_wamid"]) == ("sent", "wamid.R1")
        assert _claim_item(aws, inbound["id"])["state"] == "done"
        assert replies.get_lead_snapshot(LEAD, meta.DEMO_PHONE_NUMBER_ID).auto_reply_at == {"greeting": iso(NOW)}

    def test_a_reply_whose_status_arrived_first_keeps_that_status(
        self, replies: DynamoReplyStore, table: Any, webhook: Any
    ) -> None:
        # Given Meta's "delivered" for the reply, carrying our callback data, arrived before we recorded it
        inbound = meta.new_wamid()
        status = meta.status("wamid.R2", "delivered", LEAD, timestamp=int(NOW.timestamp()) + 2)
        status["biz_opaque_callback_data"] = f"{CALLBACK_PREFIX}{inbound}"
        assert webhook(meta.envelope(meta.status_value([status]))).status == 200
        # Then it is found as evidence of a send
        evidence = replies.find_sent_reply(LEAD, meta.DEMO_PHONE_NUMBER_ID, inbound, iso(NOW - timedelta(minutes=10)))
        assert evidence is not None
        assert (evidence.wamid, evidence.recorded) == ("wamid.R2", False)
        # When the reply is recorded
        claim = replies.claim_reply(inbound, LEAD, owner="a", now=NOW, lease=LEASE)
        assert replies.finish_reply_sent(claim, _reply("wamid.R2", inbound)) is True
        # Then it merges with the status and is now evidence of a recorded send
        assert table.get_message("wamid.R2")["status"] == "delivered"
        since = iso(NOW - timedelta(minutes=10))
        assert replies.find_sent_reply(LEAD, meta.DEMO_PHONE_NUMBER_ID, inbound, since).recorded is True

    def test_a_reply_sent_before_threads_were_keyed_by_number_is_still_found(
        self, replies: DynamoReplyStore, aws: AwsStack
    ) -> None:
        # Given a reply recorded by the version before issue 14 (the lead's thread named no number), its
        # attempt interrupted by the deploy
        inbound = meta.new_wamid()
        aws.client("dynamodb").put_item(
            TableName=aws.ref("ConversationsTable"),
            Item={
                "PK": {"S": "MSG#wamid.OLDREPLY"},
                "SK": {"S": "MSG"},
                "GSI1PK": {"S": f"THREAD#{LEAD}"},
                "GSI1SK": {"S": f"{iso(NOW)}#wamid.OLDREPLY"},
                "wamid": {"S": "wamid.OLDREPLY"},
                "wa_id": {"S": LEAD},
                "direction": {"S": "outbound"},
                "sent_at": {"S": iso(NOW)},
                "biz_opaque_callback_data": {"S": f"{CALLBACK_PREFIX}{inbound}"},
            },
        )
        # When the retry looks for evidence in the conversation's thread
        evidence = replies.find_sent_reply(LEAD, meta.DEMO_PHONE_NUMBER_ID, inbound, iso(NOW - timedelta(minutes=1)))
        # Then the old thread's record answers: no second reply
        assert evidence is not None and (evidence.wamid, evidence.recorded) == ("wamid.OLDREPLY", True)

    def test_recording_an_already_recorded_reply_only_closes_the_claim(
        self, replies: DynamoReplyStore, table: Any, aws: AwsStack
    ) -> None:
        inbound = meta.new_wamid()
        table.record_outbound(_reply("wamid.R3", inbound))
        claim = replies.claim_reply(inbound, LEAD, owner="a", now=NOW, lease=LEASE)
        assert replies.finish_reply_sent(claim, _reply("wamid.R3", inbound)) is True
        assert _claim_item(aws, inbound)["state"] == "done"
        stats = [
            item
            for item in aws.client("dynamodb").scan(TableName=aws.ref("ConversationsTable"))["Items"]
            if item["PK"]["S"].startswith("STATS#")
        ]
        assert sum(int(item["sent"]["N"]) for item in stats) == 1

    def test_a_reply_sent_after_losing_the_claim_is_still_recorded(self, replies: DynamoReplyStore, table: Any) -> None:
        inbound = meta.new_wamid()
        lost = replies.claim_reply(inbound, LEAD, owner="a", now=NOW, lease=LEASE)
        replies.claim_reply(inbound, LEAD, owner="b", now=NOW + timedelta(minutes=5), lease=LEASE)
        assert replies.finish_reply_sent(lost, _reply("wamid.R4", inbound)) is False
        assert table.get_message("wamid.R4")["auto_reply"] is True

    def test_a_permanent_failure_is_recorded_on_the_inbound_message(
        self, replies: DynamoReplyStore, table: Any, webhook: Any, aws: AwsStack
    ) -> None:
        inbound = meta.text_message(LEAD, "שלום")
        assert webhook(meta.envelope(meta.message_value([inbound]))).status == 200
        claim = replies.claim_reply(inbound["id"], LEAD, owner="a", now=NOW, lease=LEASE)
        replies.finish_reply_failed(claim, MessageError(131047, "Re-engagement message"), NOW)
        message = table.get_message(inbound["id"])
        assert message["reply_status"] == "failed"
        assert message["reply_error"] == {"code": 131047, "title": "Re-engagement message"}
        assert _claim_item(aws, inbound["id"])["state"] == "failed_permanent"

    @pytest.mark.parametrize("outcome", ["sent", "cooldown", "failed"])
    def test_the_claim_never_closes_without_the_decision_on_the_inbound_message(
        self, replies: DynamoReplyStore, table: Any, webhook: Any, aws: AwsStack, outcome: str
    ) -> None:
        # Given a stored inbound message and a claim on it
        inbound = meta.text_message(LEAD, "שלום", timestamp=int(NOW.timestamp()) - 5)
        assert webhook(meta.envelope(meta.message_value([inbound]))).status == 200
        claim = replies.claim_reply(inbound["id"], LEAD, owner="a", now=NOW, lease=LEASE)
        finish = {
            "sent": lambda: replies.finish_reply_sent(claim, _reply("wamid.R5", inbound["id"])),
            "cooldown": lambda: replies.finish_reply_skipped(claim, "cooldown", NOW),
            "failed": lambda: replies.finish_reply_failed(claim, MessageError(131026, "Undeliverable"), NOW),
        }[outcome]

        # When DynamoDB fails every write to the message's reply record (where claim and decision live)
        def refuse_inbound_writes(params: dict[str, Any], **_: Any) -> None:
            if f"MSG#{inbound['id']}" in str(params) and '"SK": {"S": "REPLY"}' in json.dumps(params):
                raise StoreUnavailableError("injected: the reply record's partition is unavailable")

        events = replies.table.client.meta.events
        events.register("provide-client-params.dynamodb.*", refuse_inbound_writes, unique_id="refuse-inbound")
        try:
            with pytest.raises(StoreUnavailableError):
                finish()
        finally:
            events.unregister("provide-client-params.dynamodb.*", unique_id="refuse-inbound")

        # Then nothing is half-written: the claim is still open, so the retry will record the decision
        assert _claim_item(aws, inbound["id"])["state"] == "in_progress"
        assert "reply_status" not in table.get_message(inbound["id"])
        # And once DynamoDB is back, the claim and the decision land together (one write), and a reply
        # recorded by the first attempt is not recorded or counted again
        finish()
        assert table.get_message(inbound["id"])["reply_status"] == outcome
        assert _claim_item(aws, inbound["id"])["state"] in ("done", "failed_permanent")
        if outcome == "sent":
            assert table.get_message("wamid.R5")["reply_to"] == inbound["id"]
            assert _hour_counts(aws).get("sent") == 1


class TestLead:
    def test_a_decision_about_a_message_never_stored_creates_no_message(
        self, replies: DynamoReplyStore, table: Any
    ) -> None:
        # The decision lives on the reply record; it never makes up a message the webhook did not store
        assert replies.annotate_inbound("wamid.MISSING", {"reply_status": "no_intent"}) is True
        assert table.get_message("wamid.MISSING") is None

    def test_the_latest_meeting_request_wins(self, replies: DynamoReplyStore, table: Any) -> None:
        def request(minute: int) -> MeetingRequest:
            return MeetingRequest(
                slot_id=f"slot:{minute}",
                slot_start="2026-11-25T08:00:00Z",
                requested_at=iso(NOW + timedelta(minutes=minute)),
                source_wamid=f"wamid.{minute}",
            )

        assert replies.record_meeting_request(LEAD, meta.DEMO_PHONE_NUMBER_ID, request(5)) is True
        assert replies.record_meeting_request(LEAD, meta.DEMO_PHONE_NUMBER_ID, request(1)) is False
        meeting = table.get_lead(LEAD)["meeting_request"]
        assert (meeting["slot_id"], meeting["status"]) == ("slot:5", "requested")

    def test_a_missing_lead_reads_as_a_fresh_one(self, replies: DynamoReplyStore) -> None:
        snapshot = replies.get_lead_snapshot("972500000000", meta.DEMO_PHONE_NUMBER_ID)
        assert (snapshot.opted_out, snapshot.last_human_outbound_at, dict(snapshot.auto_reply_at)) == (False, None, {})
