"""Issue 10, points 1-3 as behaviour: the real webhook, read, send and responder handlers against moto's
server, with values at Meta's and DynamoDB's limits."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from conftest import AwsStack
from integration.api_client import ApiClient
from integration.conftest import drain
from integration.test_responder import Responder
from local import meta_payloads as meta
from local.graph_simulator import GraphSimulator
from local.handlers import load_function_module
from whatsapp_crm.sqs.dead_letters import read_dead_letter

LEAD = "972525551234"
OTHER_LEAD = "972545550199"
LAST_DAY_OF_9999 = 253_402_250_000


@pytest.fixture
def responder(
    aws: AwsStack, webhook: Any, graph_fake: GraphSimulator, function_env: Callable[..., dict[str, str]]
) -> Responder:
    function_env("ResponderFunction", **graph_fake.environment())
    return Responder(aws, load_function_module("ResponderFunction"))


@pytest.fixture
def api(function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)


def _dead_letters(aws: AwsStack) -> list[dict[str, Any]]:
    return [read_dead_letter(message["Body"]) for message in drain(aws, "WebhookDeadLetterQueue")]


class TestTimestampsAtTheCalendarsEnds:
    def test_a_message_dated_in_the_last_day_of_9999_breaks_no_read_and_no_send(
        self, aws: AwsStack, webhook: Any, table: Any, api: ApiClient
    ) -> None:
        # Given a lead whose message Meta dated in the last day before 9999-12-31
        message = meta.text_message(LEAD, "שלום", timestamp=LAST_DAY_OF_9999)
        assert webhook(meta.envelope(meta.message_value([message]))).status == 200
        stored = table.get_message(message["id"])
        # Then it is stored with Meta's value kept and dated when it arrived
        assert stored["meta_timestamp"] == LAST_DAY_OF_9999
        assert stored["timestamp"] == stored["received_at"]
        # And the lead list reads, with a window of 24 hours from its arrival
        listed = api.conversations()
        assert listed.status == 200, listed.body
        [lead] = listed.json()["conversations"]
        assert lead["window_expires_at"] > stored["received_at"]
        assert lead["window_expires_at"] < "2100"
        # And a free-form reply inside that window is sent
        sent = api.send({"to": LEAD, "type": "text", "text": {"body": "כן"}})
        assert sent.status == 201, sent.body

    def test_a_lead_stored_in_the_year_9999_by_an_older_version_reads_and_heals(
        self, aws: AwsStack, webhook: Any, table: Any, api: ApiClient
    ) -> None:
        # Given a lead stored before the webhook checked timestamps: its timeline pinned in 9999
        assert webhook(meta.envelope(meta.message_value([meta.text_message(LEAD, "שלום")]))).status == 200
        aws.client("dynamodb").update_item(
            TableName=aws.ref("ConversationsTable"),
            Key={"PK": {"S": f"LEAD#{LEAD}"}, "SK": {"S": f"CONV#{meta.DEMO_PHONE_NUMBER_ID}"}},
            UpdateExpression="SET last_inbound_at = :far, last_message_at = :far, last_human_outbound_at = :far",
            ExpressionAttributeValues={":far": {"S": "9999-12-31T20:00:00Z"}},
        )
        # When the CRM reads and writes
        listed = api.conversations()
        thread = api.messages(LEAD)
        refused = api.send({"to": LEAD, "type": "text", "text": {"body": "כן"}})
        # Then nothing is a 500: the window is unusable, so a free-form send is refused as outside it
        assert listed.status == 200, listed.body
        assert listed.json()["conversations"][0]["window_expires_at"] is None
        assert thread.status == 200
        assert refused.status == 422, refused.body
        assert refused.error["code"] == "outside_customer_service_window"
        # And the lead's next message puts the timeline back on the calendar
        assert webhook(meta.envelope(meta.message_value([meta.text_message(LEAD, "עדיין פנוי?")]))).status == 200
        lead = table.get_lead(LEAD)
        assert lead["last_inbound_at"] < "2100" and lead["last_message_at"] < "2100"
        assert api.send({"to": LEAD, "type": "text", "text": {"body": "כן"}}).status == 201


class TestPartsThatCanNeverBeStored:
    def test_parts_over_dynamodbs_limits_are_set_aside_and_the_good_message_is_stored_and_queued(
        self, aws: AwsStack, webhook: Any, table: Any
    ) -> None:
        # Given one POST: a 300 KB text, a 3,000-character wamid, a 3,000-character sender, a good message
        huge = meta.text_message(LEAD, "א" * 300_000)
        long_id = meta.text_message(LEAD, "hi", wamid="wamid." + "A" * 3000)
        long_sender = meta.text_message("9" * 3000, "hi")
        good = meta.text_message(OTHER_LEAD, "שלום, הדירה פנויה?")
        document = meta.envelope(meta.message_value([huge, long_id, long_sender, good]))
        # When Meta delivers it
        result = webhook(document)
        # Then it is acknowledged once and for all: no 500 for Meta to retry for a week
        assert result.status == 200, result.body
        # And the good message is stored and handed to the responder
        assert table.get_message(good["id"])["text"] == "שלום, הדירה פנויה?"
        assert [json.loads(m["Body"])["wamid"] for m in drain(aws)] == [good["id"]]
        # And the three others are nowhere in the table, but kept whole in the dead letter
        assert table.get_message(huge["id"]) is None
        letters = _dead_letters(aws)
        assert sorted(letter["part"]["id"] for letter in letters) == sorted(
            [huge["id"], long_id["id"], long_sender["id"]]
        )
        assert all(letter["kind"] == "message" for letter in letters)
        assert next(letter for letter in letters if letter["part"]["id"] == huge["id"])["part"] == huge

    def test_a_status_for_an_unstorable_wamid_is_set_aside_not_retried(self, aws: AwsStack, webhook: Any) -> None:
        status = meta.status("wamid." + "B" * 3000, "delivered", LEAD)
        result = webhook(meta.envelope(meta.status_value([status])))
        assert result.status == 200, result.body
        [letter] = _dead_letters(aws)
        assert (letter["kind"], letter["part"]) == ("status", status)

    @pytest.mark.parametrize("char", ["ש", "😀", "a"])
    def test_a_text_at_metas_4096_character_limit_is_stored_whole(self, webhook: Any, table: Any, char: str) -> None:
        body = char * 4096
        message = meta.text_message(LEAD, body)
        assert webhook(meta.envelope(meta.message_value([message]))).status == 200
        assert table.get_message(message["id"])["text"] == body


class TestOneDecoderOneLimit:
    def test_an_unparseable_record_goes_to_the_dead_letter_queue_alone_and_the_rest_is_answered(
        self, aws: AwsStack, webhook: Any, responder: Responder, graph_fake: GraphSimulator
    ) -> None:
        # Given a queued record nested deeper than any parser here reads (the old webhook let such records
        # through), then a greeting from the same lead and one from another lead
        sqs = aws.client("sqs")
        deep: Any = "x"
        for _ in range(300):
            deep = [deep]
        bad_body = json.dumps({"wamid": "wamid.deep", "wa_id": LEAD, "message": deep})
        sqs.send_message(
            QueueUrl=aws.ref("InboundQueue"), MessageBody=bad_body, MessageGroupId=LEAD, MessageDeduplicationId="d1"
        )
        now = int(time.time())
        same_lead = meta.text_message(LEAD, "שלום", timestamp=now)
        other_lead = meta.text_message(OTHER_LEAD, "שלום", timestamp=now)
        assert webhook(meta.envelope(meta.message_value([same_lead, other_lead]))).status == 200
        # When the responder gets the batch
        run = responder.run()
        # Then nothing fails: both greetings are answered in this invocation
        assert len(run.records) == 3
        assert run.failed_ids == set()
        answered = {
            record.body["context"]["message_id"]
            for record in graph_fake.recorded()
            if record.accepted and not record.is_read
        }
        assert answered == {same_lead["id"], other_lead["id"]}
        # And the unparseable record sits in the dead-letter queue, alone, with its reason
        letters = aws.client("sqs").receive_message(
            QueueUrl=aws.ref("InboundDeadLetterQueue"), MessageAttributeNames=["All"], MaxNumberOfMessages=10
        )["Messages"]
        assert [letter["Body"] for letter in letters] == [bad_body]
        assert "nests" in letters[0]["MessageAttributes"]["dead_letter_reason"]["StringValue"]
        assert responder.queue_is_empty()

    def test_a_body_the_responder_could_not_read_is_refused_at_the_door(self, aws: AwsStack, webhook: Any) -> None:
        message = meta.text_message(LEAD, "hi")
        deep: Any = "x"
        for _ in range(230):
            deep = {"n": deep}
        message["deep"] = deep
        result = webhook(meta.envelope(meta.message_value([message])))
        assert result.status == 400
        assert result.json()["error"]["code"] == "malformed_payload"
        assert drain(aws) == []
