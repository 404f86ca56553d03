"""Signed webhook → InboundQueue → the real responder handler → exactly these requests on the Graph fake.

Each test plays Lambda's SQS event source mapping by hand: receive from the FIFO queue (moto's server),
build the event the way Lambda does, invoke the handler, delete what succeeded. A failed record stays in
flight; `retry` makes it visible again, which is what the visibility timeout does in AWS.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import AwsStack
from integration.api_client import ApiClient
from local import meta_payloads as meta
from local.apigw import lambda_context
from local.graph_simulator import GraphSimulator
from local.handlers import load_function_module
from whatsapp_crm.clock import iso
from whatsapp_crm.intent import Intent, Language, detect_intent
from whatsapp_crm.records import OutboundRecord, SentBy
from whatsapp_crm.sqs.redelivery import SqsRedelivery

LEAD = "972525551234"
OTHER_LEAD = "972545550199"
SECOND_NUMBER_ID = "110022003300"


@dataclass
class Delays:
    """The real SQS adapter, with the delays it was asked for remembered."""

    adapter: SqsRedelivery
    calls: list[tuple[int, int]] = field(default_factory=list)  # (records, seconds)

    def delay(self, receipt_handles: list[str], seconds: int) -> None:
        self.calls.append((len(receipt_handles), seconds))
        self.adapter.delay(receipt_handles, seconds)


@dataclass
class Run:
    response: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def failed_ids(self) -> set[str]:
        return {item["itemIdentifier"] for item in self.response["batchItemFailures"]}

    def failed_wamids(self) -> list[str]:
        return [json.loads(r["body"])["wamid"] for r in self.records if r["messageId"] in self.failed_ids]


class Responder:
    """Lambda's event source mapping for ResponderFunction, one batch at a time."""

    def __init__(self, aws: AwsStack, module: Any) -> None:
        self.aws = aws
        self.module = module
        self.sqs = aws.client("sqs")
        self.queue_url = aws.ref("InboundQueue")
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.delays = Delays(SqsRedelivery(self.queue_url, client=self.sqs))
        self.in_flight: list[dict[str, Any]] = []

    def _receive(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        return [self._lambda_record(message) for message in messages]

    def _lambda_record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message["Attributes"]),
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "eu-west-1",
        }

    def invoke(self, records: list[dict[str, Any]], *, now: datetime | None = None) -> Run:
        clock = (lambda: now) if now is not None else None
        response = self.module.handle(
            {"Records": records},
            lambda_context("ResponderFunction"),
            clock=clock,
            redelivery=self.delays,
        )
        return Run(response, records)

    def run(self, *, now: datetime | None = None) -> Run:
        """Receive one batch, invoke, delete the successes (the failures stay in flight)."""
        records = self._receive()
        assert records, "nothing on the inbound queue"
        result = self.invoke(records, now=now)
        done = [record for record in records if record["messageId"] not in result.failed_ids]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)],
            )
        self.in_flight = [record for record in records if record["messageId"] in result.failed_ids]
        return result

    def retry(self) -> None:
        """The visibility timeout passing for every failed record."""
        for record in self.in_flight:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
            )
        self.in_flight = []

    def queue_is_empty(self) -> bool:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


@pytest.fixture
def responder(
    aws: AwsStack, webhook: Any, graph_fake: GraphSimulator, function_env: Callable[..., dict[str, str]]
) -> Iterator[Responder]:
    # The webhook fixture applied WebhookFunction's environment; the responder's goes on top of it.
    function_env("ResponderFunction", **graph_fake.environment())
    yield Responder(aws, load_function_module("ResponderFunction"))


@pytest.fixture
def api(function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
    """The CRM's side: the real SendFunction and ConversationsFunction, each with its own environment."""
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)


def _back_to_the_responder(function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> None:
    """The API client applied its function's environment; the responder runs in its own again."""
    function_env("ResponderFunction", **graph_fake.environment())


def _deliver(webhook: Any, *messages: dict[str, Any], phone_number_id: str = meta.DEMO_PHONE_NUMBER_ID) -> None:
    assert webhook(meta.envelope(meta.message_value(list(messages), phone_number_id=phone_number_id))).status == 200


def _text(body: str, *, wa_id: str = LEAD, at: datetime | None = None) -> dict[str, Any]:
    timestamp = int((at or datetime.now(UTC)).timestamp())
    return meta.text_message(wa_id, body, timestamp=timestamp)


def _has_hebrew(text: str) -> bool:
    return any("\u05d0" <= char <= "\u05ea" for char in text)


def _sends(graph_fake: GraphSimulator) -> list[Any]:
    return [record for record in graph_fake.recorded() if record.accepted and not record.is_read]


class TestReply:
    def test_a_hebrew_greeting_is_read_then_answered_once_in_hebrew_from_the_receiving_number(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given a lead greets the business on its second number
        message = _text("שלום, מה נשמע?")
        _deliver(webhook, message, phone_number_id=SECOND_NUMBER_ID)
        # When the responder runs on the queued message
        run = responder.run()
        # Then Meta saw a read receipt with typing, then one Hebrew text quoting the message, from that number
        assert run.failed_ids == set()
        assert graph_fake.reads() == [
            {
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": message["id"],
                "typing_indicator": {"type": "text"},
            }
        ]
        [send] = _sends(graph_fake)
        assert send.phone_number_id == SECOND_NUMBER_ID
        assert send.body["to"] == f"+{LEAD}"
        assert send.body["context"] == {"message_id": message["id"]}
        assert send.body["type"] == "text"
        assert _has_hebrew(send.body["text"]["body"])
        # And the conversation shows the intent and the auto-reply
        inbound = table.get_message(message["id"])
        assert (inbound["intent"], inbound["language"], inbound["reply_status"]) == ("greeting", "he", "sent")
        reply = table.get_message(send.response["messages"][0]["id"])
        assert (reply["auto_reply"], reply["intent"], reply["reply_to"]) == (True, "greeting", message["id"])
        assert reply["phone_number_id"] == SECOND_NUMBER_ID
        assert table.get_lead(LEAD)["awaits_response"] is False
        assert responder.queue_is_empty()

    def test_the_thread_shows_intent_language_and_the_auto_reply(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, api: ApiClient
    ) -> None:
        # Given a lead greets the business in Hebrew, then sends a photo with a caption
        greeting = _text("שלום, מה נשמע?")
        photo = {
            "from": LEAD,
            "id": meta.new_wamid(),
            "timestamp": str(int(time.time())),
            "type": "image",
            "image": {"id": "5512", "mime_type": "image/jpeg", "sha256": "x", "caption": "הסלון מהמודעה, יש עוד?"},
        }
        _deliver(webhook, greeting, photo)
        # And the responder answered the greeting
        assert responder.run().failed_ids == set()
        [send] = _sends(graph_fake)
        reply_wamid = send.response["messages"][0]["id"]
        # When the CRM reads the thread through the conversations API
        result = api.messages(LEAD)
        # Then the lead's greeting shows what the bot understood, in which language
        assert result.status == 200, result.body
        listed = {message["id"]: message for message in result.json()["messages"]}
        assert set(listed) == {greeting["id"], photo["id"], reply_wamid}
        inbound = listed[greeting["id"]]
        assert (inbound["direction"], inbound["intent"], inbound["language"]) == ("inbound", "greeting", "he")
        assert inbound["auto_reply"] is False
        # And the bot's answer is marked as an auto-reply to it, with the text the lead received
        reply = listed[reply_wamid]
        assert (reply["direction"], reply["auto_reply"], reply["intent"]) == ("outbound", True, "greeting")
        assert reply["reply_to"] == greeting["id"]
        assert reply["text"] == send.body["text"]["body"]
        # And the photo shows its caption as its text, with no intent (media is not classified)
        shown = listed[photo["id"]]
        assert (shown["type"], shown["text"]) == ("image", "הסלון מהמודעה, יש עוד?")
        assert shown["intent"] is None

    def test_an_english_message_is_answered_in_english_and_left_open_for_a_human(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        message = _text("Does the apartment on Herzl street have parking?")
        _deliver(webhook, message)
        responder.run()
        [send] = _sends(graph_fake)
        assert not _has_hebrew(send.body["text"]["body"])
        assert table.get_message(message["id"])["intent"] == "default"
        assert table.get_lead(LEAD)["awaits_response"] is True

    def test_mark_as_read_off_sends_only_the_reply(
        self,
        responder: Responder,
        webhook: Any,
        graph_fake: GraphSimulator,
        function_env: Callable[..., dict[str, str]],
    ) -> None:
        function_env("ResponderFunction", MARK_AS_READ="false", **graph_fake.environment())
        _deliver(webhook, _text("היי"))
        responder.run()
        assert graph_fake.reads() == []
        assert len(_sends(graph_fake)) == 1

    def test_media_gets_no_reply_and_no_read_receipt(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        image = {
            "from": LEAD,
            "id": meta.new_wamid(),
            "timestamp": str(int(time.time())),
            "type": "image",
            "image": {"id": "1234", "mime_type": "image/jpeg", "sha256": "x", "caption": "שלום"},
        }
        _deliver(webhook, image)
        assert responder.run().failed_ids == set()
        assert graph_fake.recorded() == []
        assert table.get_message(image["id"])["reply_status"] == "no_intent"

    def test_a_message_older_than_24_hours_is_not_answered(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        message = _text("שלום", at=datetime.now(UTC) - timedelta(hours=24, minutes=5))
        _deliver(webhook, message)
        responder.run()
        assert graph_fake.recorded() == []
        assert table.get_message(message["id"])["reply_status"] == "outside_window"


class TestExactlyOnce:
    def test_redelivered_webhooks_and_a_retried_batch_still_send_one_reply(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, aws: AwsStack
    ) -> None:
        # Given a message delivered by Meta twice
        message = _text("היי")
        _deliver(webhook, message)
        _deliver(webhook, message)
        records = responder._receive()
        # When the same batch is invoked twice (Lambda retrying after a crash that lost the response),
        # the second time after the cool-down, so only the claim can stop a second reply
        first = responder.invoke(records)
        second = responder.invoke(records, now=datetime.now(UTC) + timedelta(minutes=40))
        # and the hand-off arrives once more after FIFO's dedup window (as a fresh SQS message)
        body = records[0]["body"]
        aws.client("sqs").send_message(
            QueueUrl=responder.queue_url, MessageBody=body, MessageGroupId=LEAD, MessageDeduplicationId="later"
        )
        responder.sqs.delete_message(QueueUrl=responder.queue_url, ReceiptHandle=records[0]["receiptHandle"])
        third = responder.run(now=datetime.now(UTC) + timedelta(minutes=80))
        # Then every invocation succeeded and exactly one reply (and one read receipt) reached Meta
        assert first.failed_ids == second.failed_ids == third.failed_ids == set()
        assert len(_sends(graph_fake)) == 1
        assert len(graph_fake.reads()) == 1

    def test_a_transient_error_fails_the_record_and_the_retry_sends_once(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given Meta fails the reply (and the client's own retry) with "something went wrong"
        message = _text("שלום")
        _deliver(webhook, message)
        graph_fake.fail_next(131000, times=2)
        # When the responder runs
        run = responder.run()
        # Then the record is reported failed and nothing reached the lead
        assert run.failed_wamids() == [message["id"]]
        assert _sends(graph_fake) == []
        assert "reply_status" not in table.get_message(message["id"])
        # When SQS hands it out again
        responder.retry()
        retried = responder.run()
        # Then it is sent exactly once
        assert retried.failed_ids == set()
        assert len(_sends(graph_fake)) == 1
        assert retried.records[0]["attributes"]["ApproximateReceiveCount"] == "2"
        assert responder.queue_is_empty()

    def test_a_failure_holds_back_the_rest_of_that_lead_but_not_other_leads(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator
    ) -> None:
        # Given two messages from one lead and one from another, in one batch
        first, second = _text("שלום"), _text("מה המחיר של הדירה?")
        other = _text("hello", wa_id=OTHER_LEAD)
        _deliver(webhook, first, second, other)
        graph_fake.fail_next(131000, times=2)
        # When the first reply fails
        run = responder.run()
        # Then the lead's later message fails with it (order kept) and the other lead is answered
        assert sorted(run.failed_wamids()) == sorted([first["id"], second["id"]])
        assert [send.body["to"] for send in _sends(graph_fake)] == [f"+{OTHER_LEAD}"]
        # And on retry the lead's replies go out in order
        responder.retry()
        assert responder.run().failed_ids == set()
        contexts = [send.body["context"]["message_id"] for send in _sends(graph_fake) if send.body["to"] == f"+{LEAD}"]
        assert contexts == [first["id"], second["id"]]

    def test_a_pair_rate_limit_delays_the_record_instead_of_sleeping(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator
    ) -> None:
        _deliver(webhook, _text("שלום"))
        graph_fake.fail_next(131056)
        started = time.monotonic()
        run = responder.run()
        assert time.monotonic() - started < 5
        assert len(run.failed_ids) == 1
        assert responder.delays.calls == [(1, 6)]
        assert _sends(graph_fake) == []


class TestPermanentErrors:
    @pytest.mark.parametrize("code", [131047, 131026, 131050, 132001, 100])
    def test_a_permanent_refusal_is_recorded_and_not_retried(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any, code: int
    ) -> None:
        message = _text("שלום")
        _deliver(webhook, message)
        graph_fake.fail_next(code)
        run = responder.run()
        assert run.failed_ids == set()
        assert responder.queue_is_empty()
        inbound = table.get_message(message["id"])
        assert inbound["reply_status"] == "failed"
        assert inbound["reply_error"]["code"] == code
        # Meta saying the user stopped marketing messages opts the lead out here too
        assert table.get_lead(LEAD).get("opted_out", False) is (code == 131050)

    def test_a_rejected_token_fails_the_record_and_is_counted(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _deliver(webhook, _text("שלום"))
        graph_fake.fail_next(190, times=2, include_reads=True)
        capsys.readouterr()
        run = responder.run()
        assert len(run.failed_ids) == 1
        assert _sends(graph_fake) == []
        metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
        assert any(entry.get("TokenErrors") in (1, [1], [1.0]) for entry in metrics)


class TestLeadState:
    def test_opt_out_is_confirmed_once_then_silence_until_start(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given a lead who writes "הסר"
        _deliver(webhook, _text("הסר"))
        responder.run()
        # Then one confirmation went out and the lead is opted out by those words
        assert len(_sends(graph_fake)) == 1
        lead = table.get_lead(LEAD)
        assert lead["opted_out"] is True
        assert lead["opt_state_source"].startswith("text:")
        # When they write again, even asking for a meeting
        _deliver(webhook, _text("שלום"), _text("אפשר לקבוע פגישה?"))
        responder.run()
        # Then nothing is sent
        assert len(_sends(graph_fake)) == 1
        # When they write START
        _deliver(webhook, _text("START"))
        responder.run()
        # Then the opt-out is cleared and replies resume
        assert table.get_lead(LEAD)["opted_out"] is False
        _deliver(webhook, _text("אפשר לקבוע פגישה?"))
        responder.run()
        assert len(_sends(graph_fake)) == 3

    def test_meta_s_resume_event_lets_auto_replies_resume(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given a lead who opted out by text
        _deliver(webhook, _text("stop"))
        responder.run()
        assert table.get_lead(LEAD)["opted_out"] is True
        # When Meta reports that they resumed marketing messages
        resume = {
            "messaging_product": "whatsapp",
            "metadata": meta.metadata(),
            "user_preferences": [
                {
                    "wa_id": LEAD,
                    "detail": "User requested to resume marketing messages",
                    "category": "marketing_messages",
                    "value": "resume",
                    "timestamp": int(time.time()) + 1,
                }
            ],
        }
        assert webhook(meta.envelope(resume, field="user_preferences")).status == 200
        # Then their next message is answered again
        _deliver(webhook, _text("hello", at=datetime.now(UTC) + timedelta(seconds=2)))
        responder.run()
        assert table.get_lead(LEAD)["opted_out"] is False
        assert len(_sends(graph_fake)) == 2

    def test_a_human_reply_within_12_hours_silences_the_bot(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given an agent answered this lead through the send API an hour ago
        table.record_outbound(
            OutboundRecord(
                wamid=meta.new_wamid("out"),
                wa_id=LEAD,
                phone_number_id=meta.DEMO_PHONE_NUMBER_ID,
                message_type="text",
                timestamp=iso(datetime.now(UTC) - timedelta(hours=1)),
                sent_by=SentBy.HUMAN,
                text="הנכס עדיין זמין",
                awaits_response=False,
            )
        )
        message = _text("שלום")
        _deliver(webhook, message)
        responder.run()
        assert graph_fake.recorded() == []
        assert table.get_message(message["id"])["reply_status"] == "human_takeover"

    def test_a_send_api_message_silences_the_bot(
        self,
        responder: Responder,
        webhook: Any,
        graph_fake: GraphSimulator,
        table: Any,
        api: ApiClient,
        function_env: Callable[..., dict[str, str]],
    ) -> None:
        # Given a lead who greeted us and got the bot's greeting
        _deliver(webhook, _text("שלום"))
        responder.run()
        assert len(_sends(graph_fake)) == 1
        # And an agent then wrote to them from the CRM, through the send API
        sent = api.send({"to": "0525551234", "type": "text", "text": {"body": "היי, כאן דנה מהמשרד. מתי נוח לדבר?"}})
        assert sent.status == 201, sent.body
        # When the lead answers with a question the bot would otherwise answer itself
        question = _text("יש חניה בבניין?")
        _deliver(webhook, question)
        _back_to_the_responder(function_env, graph_fake)
        assert responder.run().failed_ids == set()
        # Then the bot stays out of the agent's conversation: nothing but the agent's message went out since
        assert [send.body["text"]["body"] for send in _sends(graph_fake)][1:] == ["היי, כאן דנה מהמשרד. מתי נוח לדבר?"]
        assert table.get_message(question["id"])["reply_status"] == "human_takeover"
        # And the CRM shows the lead waiting for the agent
        [conversation] = api.conversations().json()["conversations"]
        assert conversation["awaits_response"] is True

    def test_the_same_intent_is_not_answered_twice_within_the_cooldown(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        _deliver(webhook, _text("שלום"))
        responder.run()
        second = _text("היי שוב")
        _deliver(webhook, second)
        responder.run()
        assert len(_sends(graph_fake)) == 1
        assert table.get_message(second["id"])["reply_status"] == "cooldown"
        # And half an hour later it is answered again
        later = datetime.now(UTC) + timedelta(minutes=31)
        third = _text("הלו", at=later)
        _deliver(webhook, third)
        responder.run(now=later)
        assert len(_sends(graph_fake)) == 2


class TestMeetings:
    def test_a_meeting_request_gets_slots_and_a_tap_books_and_confirms(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any, api: ApiClient
    ) -> None:
        # Given a lead asking for a meeting
        ask = _text("שלום, אפשר לקבוע פגישה?")
        _deliver(webhook, ask)
        responder.run()
        # Then they get up to three slot buttons quoting their message
        [offer] = _sends(graph_fake)
        assert offer.body["type"] == "interactive"
        assert offer.body["context"] == {"message_id": ask["id"]}
        buttons = offer.body["interactive"]["action"]["buttons"]
        assert 1 <= len(buttons) <= 3
        assert all(len(button["reply"]["title"]) <= 20 for button in buttons)
        # When they tap the second slot
        chosen = buttons[min(1, len(buttons) - 1)]["reply"]
        offer_wamid = offer.response["messages"][0]["id"]
        tap = meta.button_reply(LEAD, chosen["id"], chosen["title"], context_id=offer_wamid)
        _deliver(webhook, tap)
        responder.run()
        # Then the meeting is recorded on the lead and confirmed in a reply to the tap
        meeting = table.get_lead(LEAD)["meeting_request"]
        assert (meeting["slot_id"], meeting["status"], meeting["source_wamid"]) == (
            chosen["id"],
            "requested",
            tap["id"],
        )
        confirmation = _sends(graph_fake)[1]
        assert confirmation.body["type"] == "text"
        assert confirmation.body["context"] == {"message_id": tap["id"]}
        assert table.get_message(tap["id"])["intent"] == "meeting"
        # And the confirmation names the tapped slot's date and hour, in the business's time zone
        start = datetime.fromisoformat(chosen["id"].removeprefix("slot:")).astimezone(ZoneInfo("Asia/Jerusalem"))
        body = confirmation.body["text"]["body"]
        assert re.search(rf"(?<![\d:]){start.hour}:{start.minute:02d}(?!\d)", body), body
        assert re.search(rf"(?<![\d.]){start.day}\.{start.month}(?![\d])", body), body
        # And the CRM's conversation list shows the lead's meeting request for that slot
        [conversation] = api.conversations().json()["conversations"]
        assert conversation["wa_id"] == LEAD
        assert (conversation["meeting"]["slot_id"], conversation["meeting"]["status"]) == (chosen["id"], "requested")

    @pytest.mark.parametrize("slot_id", ["slot:2020-01-05T10:00+02:00", "slot:not-a-time"], ids=["past", "unknown"])
    def test_a_stale_or_unknown_slot_gets_a_fresh_offer_and_books_nothing(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any, slot_id: str
    ) -> None:
        # Given a lead tapping a slot button that can no longer be booked
        tap = meta.button_reply(LEAD, slot_id, "יום א׳ 05.01 10:00", context_id=meta.new_wamid("out"))
        _deliver(webhook, tap)
        # When the responder runs
        run = responder.run()
        # Then no error, no meeting, and a polite re-offer with fresh slots in reply to the tap
        assert run.failed_ids == set()
        assert "meeting_request" not in table.get_lead(LEAD)
        [reoffer] = _sends(graph_fake)
        assert reoffer.body["context"] == {"message_id": tap["id"]}
        assert reoffer.body["type"] == "interactive"
        assert all(b["reply"]["id"] != slot_id for b in reoffer.body["interactive"]["action"]["buttons"])


# Phrasings near the line between "stop messaging me" and something else; which of them the engine is
# unsure about depends on its weights, so each test takes the first one it is unsure about.
HEBREW_BORDERLINE = [
    "מספיק עם הדירות האלה",
    "תפסיקו",
    "די כבר",
    "אני כבר לא מחפש, תודה",
    "לא רלוונטי לי יותר",
    "אפשר להפסיק?",
    "מספיק",
]
ENGLISH_BORDERLINE = [
    "enough already",
    "I'm not looking anymore, thanks",
    "not relevant for me anymore",
    "can this stop?",
    "stop it",
    "too many messages",
]


def _unclear(candidates: list[str], language: Language) -> str:
    for text in candidates:
        result = detect_intent(text)
        if result.confirm_opt_out and result.language is language:
            return text
    pytest.fail(f"none of {candidates} leaves the engine unsure: pick borderline phrasings again")


def _question_buttons(send: Any) -> dict[str, str]:
    assert send.body["type"] == "interactive"
    return {button["reply"]["id"]: button["reply"]["title"] for button in send.body["interactive"]["action"]["buttons"]}


def _tap(webhook: Any, question: Any, reply_id: str, title: str) -> dict[str, Any]:
    tap = meta.button_reply(LEAD, reply_id, title, context_id=question.response["messages"][0]["id"])
    _deliver(webhook, tap)
    return tap


class TestOptOutQuestion:
    def test_an_unclear_hebrew_message_gets_the_question_in_hebrew_and_nobody_is_removed(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given a lead whose message may or may not ask us to stop
        message = _text(_unclear(HEBREW_BORDERLINE, Language.HE))
        _deliver(webhook, message)
        # When the responder runs
        responder.run()
        # Then one reply asks, in Hebrew, with a "remove me" and a "stay" button, quoting the message
        [question] = _sends(graph_fake)
        assert question.body["context"] == {"message_id": message["id"]}
        assert _has_hebrew(question.body["interactive"]["body"]["text"])
        assert _question_buttons(question) == {"opt_out:remove": "הסר אותי", "opt_out:stay": "להישאר ברשימה"}
        # And nobody is removed on a guess; the message shows the engine was unsure
        assert table.get_lead(LEAD).get("opted_out", False) is False
        inbound = table.get_message(message["id"])
        assert inbound["opt_out_unclear"] is True
        assert inbound["intent"] != Intent.OPT_OUT.value

    def test_tapping_remove_me_opts_out_with_one_confirmation_then_silence(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given a lead who was asked
        _deliver(webhook, _text(_unclear(HEBREW_BORDERLINE, Language.HE)))
        responder.run()
        [question] = _sends(graph_fake)
        # When they tap "הסר אותי"
        tap = _tap(webhook, question, "opt_out:remove", "הסר אותי")
        responder.run()
        # Then they are opted out and get one confirmation, in Hebrew, quoting the tap
        lead = table.get_lead(LEAD)
        assert lead["opted_out"] is True
        confirmation = _sends(graph_fake)[1]
        assert confirmation.body["type"] == "text"
        assert confirmation.body["context"] == {"message_id": tap["id"]}
        assert _has_hebrew(confirmation.body["text"]["body"])
        # And nothing more is sent, whatever they write next
        _deliver(webhook, _text("אפשר לקבוע פגישה?"))
        responder.run()
        assert len(_sends(graph_fake)) == 2

    def test_tapping_stay_removes_nothing_and_later_messages_are_answered(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given a lead who was asked, in English
        _deliver(webhook, _text(_unclear(ENGLISH_BORDERLINE, Language.EN)))
        responder.run()
        [question] = _sends(graph_fake)
        assert _question_buttons(question) == {"opt_out:remove": "Remove me", "opt_out:stay": "Keep me on the list"}
        # When they tap "Keep me on the list"
        _tap(webhook, question, "opt_out:stay", "Keep me on the list")
        responder.run()
        # Then nothing is removed and they are told so, in English
        assert table.get_lead(LEAD).get("opted_out", False) is False
        kept = _sends(graph_fake)[1]
        assert kept.body["type"] == "text"
        assert not _has_hebrew(kept.body["text"]["body"])
        # And their next question gets its usual answer (meeting slots)
        _deliver(webhook, _text("Can we schedule a viewing tomorrow?"))
        responder.run()
        assert _sends(graph_fake)[2].body["type"] == "interactive"
        assert "opt_out:remove" not in _question_buttons(_sends(graph_fake)[2])

    def test_the_question_is_asked_once_and_a_later_clear_opt_out_decides(
        self, responder: Responder, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given a lead who was asked and did not tap
        text = _unclear(HEBREW_BORDERLINE, Language.HE)
        _deliver(webhook, _text(text))
        responder.run()
        # When they write another unclear message
        _deliver(webhook, _text(text + "!"))
        responder.run()
        # Then they are not asked again (the second reply has no opt-out buttons) and still not removed
        sends = _sends(graph_fake)
        assert len(sends) == 2
        assert sends[1].body["type"] != "interactive" or "opt_out:remove" not in _question_buttons(sends[1])
        assert table.get_lead(LEAD).get("opted_out", False) is False
        # When they then write a clear opt-out
        _deliver(webhook, _text("תורידו אותי מהרשימה בבקשה"))
        responder.run()
        # Then it decides as usual: removed at once, with one confirmation
        assert table.get_lead(LEAD)["opted_out"] is True
        assert len(_sends(graph_fake)) == 3
