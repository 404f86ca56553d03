"""The real webhook handler against moto's server: what Meta's deliveries leave in DynamoDB and SQS."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from conftest import TEST_VERIFY_TOKEN, AwsStack
from integration.conftest import drain
from local import meta_payloads as meta
from whatsapp_crm.handoff import QueuedInbound
from whatsapp_crm.webhook.models import InboundMessage

LEAD = "972525551234"


def _count_sqs_sends() -> list[str]:
    """Dedup ids the webhook's own SQS client sends from now on (FIFO dedup would hide a repeat from the queue)."""
    import os

    from whatsapp_crm import wiring
    from whatsapp_crm.sqs.inbound_queue import SqsInboundQueue

    sent: list[str] = []
    queue = wiring.inbound_queue(os.environ["INBOUND_QUEUE_URL"])
    assert isinstance(queue, SqsInboundQueue)

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.extend(entry["MessageDeduplicationId"] for entry in params["Entries"])

    queue.client.meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
    return sent


def _all_items(aws: AwsStack) -> list[dict[str, Any]]:
    return aws.client("dynamodb").scan(TableName=aws.ref("ConversationsTable"))["Items"]


class TestHandshake:
    def test_echoes_the_challenge_verbatim_as_text(self, webhook_get: Any) -> None:
        # Given Meta's verification request with our verify token
        query = f"hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={TEST_VERIFY_TOKEN}"
        # When it reaches the webhook
        result = webhook_get(query)
        # Then the challenge comes back exactly, as plain text
        assert result.status == 200
        assert result.body == "1158201444"
        assert result.headers["Content-Type"].startswith("text/plain")

    @pytest.mark.parametrize(
        "query",
        [
            "hub.mode=subscribe&hub.challenge=42&hub.verify_token=wrong",
            "hub.mode=unsubscribe&hub.challenge=42&hub.verify_token=" + TEST_VERIFY_TOKEN,
            "hub.challenge=42",
        ],
    )
    def test_refuses_a_wrong_token_or_mode(self, webhook_get: Any, query: str) -> None:
        result = webhook_get(query)
        assert result.status == 403
        assert "42" not in result.body


class TestInboundMessages:
    def test_hebrew_message_is_stored_once_with_its_lead_and_enqueued(
        self, aws: AwsStack, webhook: Any, table: Any
    ) -> None:
        # Given a signed Hebrew text message in Meta's wire encoding
        sent_at = int(time.time()) - 60
        message = meta.text_message(LEAD, "שלום, אפשר לקבוע פגישה מחר? 🙂", timestamp=sent_at)
        document = meta.envelope(meta.message_value([message], name="דנה"))
        # When Meta delivers it
        result = webhook(document)
        # Then it is acknowledged, stored with its lead, and handed to the responder
        assert result.status == 200
        assert result.json() == {"status": "ok"}
        stored = table.get_message(message["id"])
        assert stored["text"] == "שלום, אפשר לקבוע פגישה מחר? 🙂"
        assert stored["direction"] == "inbound"
        assert stored["wa_id"] == LEAD
        assert stored["timestamp"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent_at))
        assert json.loads(stored["raw"]) == message
        lead = table.get_lead(LEAD)
        assert lead["profile_name"] == "דנה"
        assert lead["unread_count"] == 1
        assert lead["last_inbound_at"] == stored["timestamp"]
        queued = drain(aws)
        assert len(queued) == 1
        assert queued[0]["Attributes"]["MessageGroupId"] == LEAD
        assert queued[0]["Attributes"]["MessageDeduplicationId"] == message["id"]
        handed_off = QueuedInbound.model_validate_json(queued[0]["Body"])
        assert handed_off.message == InboundMessage.model_validate(message)
        assert handed_off.message.text_content == "שלום, אפשר לקבוע פגישה מחר? 🙂"

    def test_redelivery_is_stored_once_but_enqueued_again(self, aws: AwsStack, webhook: Any, table: Any) -> None:
        # Given a message Meta has already delivered once
        message = meta.text_message(LEAD, "hello")
        document = meta.envelope(meta.message_value([message]))
        assert webhook(document).status == 200
        first = drain(aws)
        handed_off = _count_sqs_sends()
        # When Meta delivers the same bytes again
        result = webhook(document)
        # Then it is acknowledged, the lead's unread count did not double, and the hand-off was repeated
        # (FIFO dedup drops it inside five minutes; the responder's claim covers later redeliveries)
        assert result.status == 200
        assert table.get_lead(LEAD)["unread_count"] == 1
        messages = [item for item in _all_items(aws) if item["SK"]["S"] == "MSG"]
        assert len(messages) == 1
        assert len(first) == 1
        assert handed_off == [message["id"]]

    def test_every_message_of_a_batched_post_is_stored(self, aws: AwsStack, webhook: Any, table: Any) -> None:
        # Given one POST carrying 12 messages from 3 leads over two entries
        leads = ["972525550001", "972525550002", "14155550142"]
        messages = [meta.text_message(leads[i % 3], f"message {i}", timestamp=1_764_000_000 + i) for i in range(12)]
        document = meta.envelope(meta.message_value(messages[:7]))
        document["entry"].append(meta.envelope(meta.message_value(messages[7:]))["entry"][0])
        # When it is delivered
        assert webhook(document).status == 200
        # Then all 12 are stored and queued, grouped by lead
        for message in messages:
            assert table.get_message(message["id"]) is not None
        queued = drain(aws)
        assert sorted(json.loads(item["Body"])["wamid"] for item in queued) == sorted(m["id"] for m in messages)
        assert {item["Attributes"]["MessageGroupId"] for item in queued} == set(leads)
        assert table.get_lead("972525550001")["unread_count"] == 4

    def test_an_older_message_delivered_late_does_not_move_the_window_back(self, webhook: Any, table: Any) -> None:
        newer = meta.text_message(LEAD, "second", timestamp=1_764_000_100)
        older = meta.text_message(LEAD, "first", timestamp=1_764_000_000)
        assert webhook(meta.envelope(meta.message_value([newer]))).status == 200
        assert webhook(meta.envelope(meta.message_value([older]))).status == 200
        lead = table.get_lead(LEAD)
        assert lead["last_inbound_at"] == "2025-11-24T16:01:40Z"
        assert lead["last_inbound_wamid"] == newer["id"]
        assert lead["last_message_preview"] == "second"
        assert lead["unread_count"] == 2


class TestStatuses:
    def _outbound(self, table: Any, wamid: str) -> dict[str, Any]:
        item = table.get_message(wamid)
        assert item is not None
        return item

    def test_a_send_failed_because_the_lead_stopped_marketing_opts_them_out(self, webhook: Any, table: Any) -> None:
        # Given a lead who wrote to us
        assert webhook(meta.envelope(meta.message_value([meta.text_message(LEAD, "שלום")]))).status == 200
        # When Meta reports a template to them `failed` with 131050 (they stopped marketing messages)
        failed = meta.status(meta.new_wamid("out"), "failed", LEAD, error_code=131050)
        assert webhook(meta.envelope(meta.status_value([failed]))).status == 200
        # Then they are opted out here too: no auto-reply, and the send API refuses them
        lead = table.get_lead(LEAD)
        assert (lead["opted_out"], lead["opt_state_source"]) == (True, "graph:131050")

    def test_other_failures_leave_the_lead_subscribed(self, webhook: Any, table: Any) -> None:
        assert webhook(meta.envelope(meta.message_value([meta.text_message(LEAD, "שלום")]))).status == 200
        failed = meta.status(meta.new_wamid("out"), "failed", LEAD, error_code=131026)
        assert webhook(meta.envelope(meta.status_value([failed]))).status == 200
        assert table.get_lead(LEAD).get("opted_out") is not True

    def test_statuses_out_of_order_end_at_the_highest(self, webhook: Any, table: Any) -> None:
        wamid = meta.new_wamid("out")
        # Given read, then sent, then delivered arrive in that order (and read twice)
        for name, ts in (("read", 30), ("sent", 10), ("delivered", 20), ("read", 30)):
            body = meta.envelope(meta.status_value([meta.status(wamid, name, LEAD, timestamp=1_764_000_000 + ts)]))
            assert webhook(body).status == 200
        # Then the message reads "read", with each status's time kept
        item = self._outbound(table, wamid)
        assert item["status"] == "read"
        assert item["status_ts_sent"] == "2025-11-24T16:00:10Z"
        assert item["status_ts_delivered"] == "2025-11-24T16:00:20Z"
        assert item["status_ts_read"] == "2025-11-24T16:00:30Z"

    def test_status_before_the_message_creates_an_unknown_outbound_record(self, webhook: Any, table: Any) -> None:
        wamid = meta.new_wamid("out")
        assert webhook(meta.envelope(meta.status_value([meta.status(wamid, "sent", LEAD)]))).status == 200
        item = self._outbound(table, wamid)
        assert item["direction"] == "outbound"
        assert item["message_type"] == "unknown"
        assert item["wa_id"] == LEAD
        assert item["GSI1PK"] == f"THREAD#{meta.DEMO_PHONE_NUMBER_ID}#{LEAD}"  # the thread with that number

    def test_failed_is_terminal_and_keeps_the_error(self, webhook: Any, table: Any) -> None:
        wamid = meta.new_wamid("out")
        failed = meta.status(
            wamid,
            "failed",
            LEAD,
            timestamp=1_764_000_050,
            error_code=131047,
            error_title="Re-engagement message",
        )
        assert webhook(meta.envelope(meta.status_value([failed]))).status == 200
        late = meta.status(wamid, "delivered", LEAD, timestamp=1_764_000_040)
        assert webhook(meta.envelope(meta.status_value([late]))).status == 200
        item = self._outbound(table, wamid)
        assert item["status"] == "failed"
        assert item["error"] == {
            "code": 131047,
            "title": "Re-engagement message",
            "details": "Re-engagement message",
        }


class TestRejections:
    def test_missing_signature_is_401_and_nothing_is_kept(self, aws: AwsStack, webhook: Any) -> None:
        document = meta.envelope(meta.message_value([meta.text_message(LEAD, "hi")]))
        result = webhook(document, sign=False)
        assert result.status == 401
        assert result.json()["error"]["code"] == "signature_missing"
        assert _all_items(aws) == []
        assert drain(aws) == []

    def test_tampered_body_is_403_and_nothing_is_kept(self, aws: AwsStack, webhook: Any) -> None:
        body = meta.wire_bytes(meta.envelope(meta.message_value([meta.text_message(LEAD, "hi")])))
        headers = meta.signed_headers(body, "test-app-secret-not-for-production")
        result = webhook(raw=body.replace(b'"hi"', b'"ho"'), headers=headers, sign=False)
        assert result.status == 403
        assert result.json()["error"]["code"] == "signature_mismatch"
        assert _all_items(aws) == []

    @pytest.mark.parametrize(
        "raw",
        [
            b"not json",
            b'{"object":"whatsapp_business_account","entry":NaN}',
            b"\xff\xfe{}",
            b'{"object":"page","entry":[]}',
            b"[" * 100_000,
            b"[]",
            b'{"object":"whatsapp_business_account","entry":[' + b"7" * 5000 + b"]}",
        ],
        ids=["text", "nan", "invalid-utf8", "other-object", "deep-nesting", "array", "5000-digit-number"],
    )
    def test_signed_garbage_is_400_json(self, aws: AwsStack, webhook: Any, raw: bytes) -> None:
        result = webhook(raw=raw)
        assert result.status == 400
        assert result.json()["error"]["code"] == "malformed_payload"
        assert _all_items(aws) == []

    def test_oversized_body_is_413(self, aws: AwsStack, webhook: Any) -> None:
        result = webhook(raw=b" " * (4 * 1024 * 1024 + 1))
        assert result.status == 413
        assert _all_items(aws) == []

    def test_base64_encoded_body_is_verified_on_the_decoded_bytes(self, webhook: Any, table: Any) -> None:
        message = meta.text_message(LEAD, "caf\u00e9 / שלום")
        result = webhook(meta.envelope(meta.message_value([message])), base64_body=True)
        assert result.status == 200
        assert table.get_message(message["id"])["text"] == "caf\u00e9 / שלום"

    def test_unusable_parts_are_skipped_and_the_rest_is_stored(self, aws: AwsStack, webhook: Any, table: Any) -> None:
        good = meta.text_message(LEAD, "ok")
        value = meta.message_value([good])
        value["messages"] = [None, {"id": "x"}, good, {"from": LEAD, "id": "wamid.bad", "timestamp": "soon"}]
        document = meta.envelope(value)
        document["entry"].append({"id": "1", "changes": "nope"})
        document["entry"].append(
            {
                "id": "2",
                "changes": [{"field": "message_template_status_update", "value": {"event": "APPROVED"}}],
            }
        )
        result = webhook(document)
        assert result.status == 200
        assert table.get_message(good["id"]) is not None
        assert table.get_message("wamid.bad") is None

    def test_a_number_no_json_can_hold_skips_that_message_only(self, aws: AwsStack, webhook: Any, table: Any) -> None:
        # Given a location whose latitude overflows to infinity (1e400), next to a normal message
        good = meta.text_message(LEAD, "ok")
        odd = {"from": LEAD, "id": "wamid.odd", "timestamp": "1764000000", "type": "location"}
        value = meta.message_value([good])
        value["messages"].insert(0, odd)
        body = meta.wire_bytes(meta.envelope(value)).replace(
            b'"type":"location"', b'"type":"location","location":{"latitude":1e400,"longitude":34.78}'
        )
        assert b"1e400" in body
        # When it arrives signed, then it is answered 200 (not a 5xx Meta would retry for a week)
        assert webhook(raw=body).status == 200
        # And the neighbour is stored and handed on, the unstorable message is not
        assert table.get_message(good["id"]) is not None
        assert table.get_message("wamid.odd") is None
        assert [json.loads(item["Body"])["wamid"] for item in drain(aws)] == [good["id"]]


class TestInfrastructureFailure:
    def test_dynamodb_failure_answers_500_so_meta_retries(self, aws: AwsStack, webhook: Any) -> None:
        # Given the table is gone (DynamoDB answers ResourceNotFound)
        aws.client("dynamodb").delete_table(TableName=aws.ref("ConversationsTable"))
        # When a message arrives
        result = webhook(meta.envelope(meta.message_value([meta.text_message(LEAD, "hi")])))
        # Then Meta is told to retry and nothing was queued
        assert result.status == 500
        assert result.json()["error"]["code"] == "temporarily_unavailable"
        assert drain(aws) == []

    def test_queue_failure_answers_500(self, aws: AwsStack, webhook: Any, table: Any) -> None:
        aws.client("sqs").delete_queue(QueueUrl=aws.ref("InboundQueue"))
        message = meta.text_message(LEAD, "hi")
        result = webhook(meta.envelope(meta.message_value([message])))
        assert result.status == 500


class TestLogs:
    def test_logs_never_hold_the_full_number_the_text_or_a_secret(
        self, webhook: Any, log_output: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # Given a delivery with a message, a status with a failure, and a tampered one
        message = meta.text_message(LEAD, "סוד: הכתובת שלי היא הרצל 5")
        failed = meta.status(meta.new_wamid("out"), "failed", LEAD, error_code=131026)
        assert webhook(meta.envelope(meta.message_value([message]), meta.status_value([failed]))).status == 200
        assert webhook(meta.envelope(meta.message_value([message])), sign=False).status == 401
        # Then what the functions printed is JSON log lines without personal data or credentials
        output = log_output.getvalue() + capsys.readouterr().out
        assert output
        for secret in (LEAD, "הרצל", "test-app-secret-not-for-production", "EAAG-test-token"):
            assert secret not in output
        assert message["id"] in output  # the correlation id (a wamid is not personal data)


def _metrics(printed: str) -> dict[str, float]:
    """The CloudWatch EMF metrics the handler flushed to stdout, summed by name."""
    totals: dict[str, float] = {}
    for line in printed.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                values = document[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(
                    values if isinstance(values, list) else [values]
                )
    return totals


class TestMetrics:
    def test_received_duplicates_statuses_and_parse_errors_are_counted(
        self, webhook: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # Given a message, its redelivery, a status, and an unusable message next to them
        message = meta.text_message(LEAD, "שלום")
        status = meta.status(meta.new_wamid("out"), "delivered", LEAD)
        value = meta.message_value([message])
        value["messages"].append({"type": "text"})  # no id, no sender
        document = meta.envelope(value, meta.status_value([status]))
        capsys.readouterr()
        # When Meta delivers it twice
        assert webhook(document).status == 200
        assert webhook(document).status == 200
        # Then the operator's dashboards see one message received, one duplicate, the statuses, the bad part
        metrics = _metrics(capsys.readouterr().out)
        assert metrics["MessagesReceived"] == 1
        assert metrics["DuplicateMessages"] == 1
        assert metrics["ParseErrors"] == 2
        assert sum(count for name, count in metrics.items() if name.startswith("Statuses")) == 2

    def test_signature_failures_are_counted_for_the_alarm(
        self, webhook: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        document = meta.envelope(meta.message_value([meta.text_message(LEAD, "hi")]))
        capsys.readouterr()
        assert webhook(document, sign=False).status == 401
        assert webhook(document, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}, sign=False).status == 403
        metrics = _metrics(capsys.readouterr().out)
        assert metrics["SignatureFailures"] == 2
        assert "MessagesReceived" not in metrics
