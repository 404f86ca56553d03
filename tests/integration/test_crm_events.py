"""CRM events, end to end on moto: the webhook and the responder write the table, the table's stream feeds
the real EventsFunction handler (local.stream_poller plays Lambda's event source mapping), and a catch-all
rule on CrmEventBus delivers what was published to a queue the test reads.

What a CRM consuming the bus must be able to count on: each fact once (redelivered webhooks, retried
replies and late statuses add nothing), a stable detail.id, no message text by default, and nothing lost
when EventBridge refuses entries (retried, then set aside ready to put back).
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from conftest import AwsStack
from integration.api_client import ApiClient
from integration.test_responder import Responder
from local import meta_payloads as meta
from local.apigw import lambda_context
from local.graph_simulator import GraphSimulator
from local.handlers import load_function_module
from local.runtime import Invocation
from local.stream_poller import StreamPoller, stream_sources
from local.template import ROOT
from whatsapp_crm.eventbridge import EventBridgePublisher
from whatsapp_crm.sqs.event_dead_letters import SqsEventDeadLetters

LEAD = "972525551234"


class RefuseEntries:
    """EventBridge answering PutEvents with every entry refused (ThrottlingException), `times` calls long:
    a botocore handler on the client, as local/faults.py injects AWS faults."""

    def __init__(self, client: Any, times: int) -> None:
        self.remaining = times
        self.calls = 0
        client.meta.events.register("before-send.events.PutEvents", self._before_send)

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        self.calls += 1
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        entries = json.loads(request.body)["Entries"]
        body = {
            "FailedEntryCount": len(entries),
            "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"} for _ in entries],
        }
        raw = _RawBody(json.dumps(body).encode())
        return AWSResponse(request.url, 200, {"content-type": "application/x-amz-json-1.1"}, raw)


class _RawBody:
    def __init__(self, content: bytes) -> None:
        self.content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.content


@dataclass
class Feed:
    """The table's stream into EventsFunction, and what reached the bus."""

    aws: AwsStack
    poller: StreamPoller
    observer_url: str
    publisher: EventBridgePublisher
    dead_letters: Any = None
    env: dict[str, str] = field(default_factory=dict)  # EventsFunction's environment overrides
    responses: list[dict[str, Any]] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)

    def run(self) -> list[dict[str, Any]]:
        """Feed every new stream record to the function; the events published by this run."""
        self.poller.drain()
        published = _drain(self.aws, self.observer_url)
        self.seen.extend(published)
        return published

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [event for event in self.seen if event["detail-type"] == detail_type]


def _drain(aws: AwsStack, queue_url: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return bodies
        bodies.extend(json.loads(message["Body"]) for message in messages)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def _observer(aws: AwsStack, pattern: dict[str, Any]) -> str:
    """A queue receiving every event on CrmEventBus that matches `pattern` (a CRM's rule)."""
    sqs, events = aws.client("sqs"), aws.client("events")
    name = f"observer-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = aws.ref("CrmEventBus")
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "observer", "Arn": arn}])
    return str(url)


@pytest.fixture
def feed(aws: AwsStack, function_env: Callable[..., dict[str, str]]) -> Feed:
    function_env("EventsFunction")
    module = load_function_module("EventsFunction")
    publisher = EventBridgePublisher(aws.client("events"))
    holder: dict[str, Any] = {}

    def invoke(logical_id: str, event: dict[str, Any]) -> Invocation:
        # Other fixtures apply their functions' environments in between; the function runs in its own.
        function_env(logical_id, **holder["feed"].env)
        try:
            response = module.handle(
                event,
                lambda_context(logical_id),
                publisher=publisher,
                dead_letters=holder["feed"].dead_letters,
                sleep=lambda _seconds: None,
            )
        except Exception as error:  # a crash, as Lambda reports it to the event source mapping
            return Invocation(error={"errorType": type(error).__name__, "errorMessage": str(error)})
        holder["feed"].responses.append(response)
        return Invocation(payload=response)

    [source] = stream_sources(aws.template, aws.created)
    poller = StreamPoller(source, aws.client("dynamodbstreams"), aws.client("sqs"), invoke)
    holder["feed"] = Feed(aws, poller, _observer(aws, {"source": ["whatsapp-crm"]}), publisher)
    return holder["feed"]


@pytest.fixture
def responder(
    aws: AwsStack, webhook: Any, graph_fake: GraphSimulator, function_env: Callable[..., dict[str, str]]
) -> Responder:
    function_env("ResponderFunction", **graph_fake.environment())
    return Responder(aws, load_function_module("ResponderFunction"))


def _deliver(webhook: Any, *messages: dict[str, Any]) -> None:
    assert webhook(meta.envelope(meta.message_value(list(messages)))).status == 200


def _statuses(webhook: Any, *statuses: dict[str, Any]) -> None:
    assert webhook(meta.envelope(meta.status_value(list(statuses)), field="messages")).status == 200


def _text(body: str) -> dict[str, Any]:
    return meta.text_message(LEAD, body, timestamp=int(datetime.now(UTC).timestamp()))


def _redrive_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("redrive_events", ROOT / "scripts" / "redrive_events.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _deliver_letter_again(aws: AwsStack, letter: dict[str, Any]) -> None:
    """_dead_letters read (and deleted) the letter; put it back where the function had left it."""
    aws.client("sqs").send_message(QueueUrl=aws.ref("EventsDeadLetterQueue"), MessageBody=json.dumps(letter))


def _dead_letters(aws: AwsStack) -> list[dict[str, Any]]:
    return _drain(aws, aws.ref("EventsDeadLetterQueue"))


class TestExactlyOnce:
    def test_a_redelivered_webhook_publishes_its_message_once_without_its_text(self, feed: Feed, webhook: Any) -> None:
        # Given a lead's message, delivered by Meta three times
        message = _text("שלום, הדירה ברחוב הרצל עדיין פנויה?")
        for _ in range(3):
            _deliver(webhook, message)
        # When the table's stream is fed to EventsFunction
        published = feed.run()
        # Then the bus received one message.received, about this message and lead, from our number
        [received] = [event for event in published if event["detail-type"] == "message.received"]
        assert received["source"] == "whatsapp-crm"
        detail = received["detail"]
        assert (detail["wamid"], detail["wa_id"], detail["phone_number_id"]) == (
            message["id"],
            LEAD,
            meta.DEMO_PHONE_NUMBER_ID,
        )
        assert detail["message_type"] == "text" and detail["occurred_at"] and detail["committed_at"]
        # And not the lead's words (CrmEventsIncludeText is off by default)
        assert "text" not in detail and "הרצל" not in json.dumps(received, ensure_ascii=False)
        # And another redelivery later publishes nothing
        _deliver(webhook, message)
        assert feed.run() == []

    def test_the_text_is_published_only_when_the_stack_allows_it(self, feed: Feed, webhook: Any) -> None:
        feed.env["EVENTS_INCLUDE_TEXT"] = "true"  # CrmEventsIncludeText=true
        message = _text("Is the flat on Herzl street still available?")
        _deliver(webhook, message)
        [received] = [event for event in feed.run() if event["detail-type"] == "message.received"]
        assert received["detail"]["text"] == "Is the flat on Herzl street still available?"

    def test_a_retried_reply_and_its_statuses_publish_each_fact_once(
        self, feed: Feed, webhook: Any, responder: Responder, graph_fake: GraphSimulator
    ) -> None:
        # Given a stack publishing the auto-replies' statuses too (CrmEventsStatusChanges=all)
        feed.env["EVENTS_STATUS_CHANGES"] = "all"
        # And a lead asks for a meeting and the responder answers
        message = _text("I would like to schedule a meeting to see the apartment")
        _deliver(webhook, message)
        first = responder.run()
        assert first.failed_ids == set()
        # And SQS delivers the same record again (a retry after a lost acknowledgement), and Meta the webhook
        assert responder.invoke(first.records).failed_ids == set()
        _deliver(webhook, message)
        [send] = [r for r in graph_fake.recorded() if r.accepted and not r.is_read]
        reply_wamid = send.response["messages"][0]["id"]
        # And Meta reports the reply sent, delivered and read, then a late 'delivered' and a repeated 'read'
        now = int(datetime.now(UTC).timestamp())
        for name, offset in (("sent", 1), ("delivered", 2), ("read", 3), ("delivered", 2), ("read", 3)):
            _statuses(webhook, meta.status(reply_wamid, name, LEAD, timestamp=now + offset))
        # When the stream is fed
        feed.run()
        # Then each fact was published exactly once
        kinds = sorted(event["detail-type"] for event in feed.seen)
        assert kinds == [
            "auto_reply.sent",
            "meeting.requested",
            "message.received",
            "message.status_changed",
            "message.status_changed",
            "message.status_changed",
        ]
        [reply] = feed.of_type("auto_reply.sent")
        assert (reply["detail"]["wamid"], reply["detail"]["in_reply_to"]) == (reply_wamid, message["id"])
        assert reply["detail"]["intent"] == "meeting" and "text" not in reply["detail"]
        moves = [
            (e["detail"]["previous_status"] if "previous_status" in e["detail"] else None, e["detail"]["status"])
            for e in feed.of_type("message.status_changed")
        ]
        assert sorted(moves, key=lambda move: ["sent", "delivered", "read"].index(move[1])) == [
            ("accepted", "sent"),
            ("sent", "delivered"),
            ("delivered", "read"),
        ]
        assert len({event["detail"]["id"] for event in feed.seen}) == len(feed.seen)

    def test_a_failed_send_is_one_message_failed_event(self, feed: Feed, webhook: Any) -> None:
        wamid = meta.new_wamid("out")
        now = int(datetime.now(UTC).timestamp())
        _statuses(webhook, meta.status(wamid, "failed", LEAD, timestamp=now, error_code=131026))
        _statuses(webhook, meta.status(wamid, "failed", LEAD, timestamp=now, error_code=131026))
        feed.run()
        [failed] = feed.of_type("message.failed")
        assert failed["detail"]["wamid"] == wamid and failed["detail"]["error"]["code"] == 131026
        assert feed.of_type("message.status_changed") == []


class TestLeadFacts:
    def test_an_opt_out_is_published_and_reaches_the_example_rule_once_enabled(
        self, feed: Feed, webhook: Any, responder: Responder, aws: AwsStack
    ) -> None:
        # Given the template's example rule (shipped disabled) is enabled
        events = aws.client("events")
        events.enable_rule(Name=aws.ref("OptedOutLeadsRule"), EventBusName=aws.ref("CrmEventBus"))
        # When a lead asks to be removed and the responder records it
        _deliver(webhook, _text("תסירו אותי מהרשימה בבקשה"))
        assert responder.run().failed_ids == set()
        feed.run()
        # Then one lead.opted_out names the lead and the reason, and the example queue holds it
        [opted_out] = feed.of_type("lead.opted_out")
        assert opted_out["detail"]["wa_id"] == LEAD and opted_out["detail"]["source"].startswith("text:")
        [queued] = _drain(aws, aws.ref("OptedOutLeadsQueue"))
        assert queued["detail"]["id"] == opted_out["detail"]["id"]

    def test_the_example_rule_delivers_nothing_while_disabled(
        self, feed: Feed, webhook: Any, responder: Responder, aws: AwsStack
    ) -> None:
        _deliver(webhook, _text("תסירו אותי מהרשימה בבקשה"))
        responder.run()
        feed.run()
        assert len(feed.of_type("lead.opted_out")) == 1
        assert _drain(aws, aws.ref("OptedOutLeadsQueue")) == []


class TestNeverLost:
    def test_refused_entries_are_retried_and_published_once(self, feed: Feed, webhook: Any) -> None:
        # Given EventBridge refuses every entry of the first PutEvents call
        fault = RefuseEntries(feed.publisher.client, times=1)
        message = _text("שלום")
        _deliver(webhook, message)
        # When the stream is fed
        published = feed.run()
        # Then the function tried again and the message was published once, nothing set aside
        assert fault.calls == 2
        assert [event["detail"]["wamid"] for event in published if event["detail-type"] == "message.received"] == [
            message["id"]
        ]
        assert _dead_letters(feed.aws) == []

    def test_entries_refused_on_every_attempt_are_set_aside_then_put_back_with_the_same_id(
        self, feed: Feed, webhook: Any, aws: AwsStack
    ) -> None:
        # Given EventBridge refuses every attempt of this batch
        RefuseEntries(feed.publisher.client, times=3)
        message = _text("שלום")
        _deliver(webhook, message)
        # When the stream is fed
        assert feed.run() == []
        # Then nothing was published, the batch was not failed, and the event waits on the dead-letter queue
        assert feed.responses[-1] == {"batchItemFailures": []}
        [letter] = _dead_letters(aws)
        assert (letter["kind"], letter["error_code"]) == ("unpublished_event", "ThrottlingException")
        entry = letter["entry"]
        assert entry["DetailType"] == "message.received"
        # And scripts/redrive_events.py puts the kept entry back: the same fact, with the same detail.id
        _deliver_letter_again(aws, letter)
        counts = _redrive_script().redrive(aws.client("sqs"), aws.client("events"), aws.ref("EventsDeadLetterQueue"))
        assert counts == {"redriven": 1, "refused": 0, "left_for_a_person": 0, "stream_events_republished": 0}
        assert _dead_letters(aws) == []
        [published] = _drain(aws, feed.observer_url)
        assert published["detail"]["id"] == letter["detail_id"] == json.loads(entry["Detail"])["id"]
        assert published["detail"]["wamid"] == message["id"]

    def test_with_the_dead_letter_queue_down_too_the_batch_is_retried_from_the_first_unsafe_record(
        self, feed: Feed, webhook: Any, aws: AwsStack
    ) -> None:
        # Given EventBridge refuses everything and the dead-letter queue cannot be reached
        fault = RefuseEntries(feed.publisher.client, times=3)
        feed.dead_letters = SqsEventDeadLetters(aws.ref("EventsDeadLetterQueue") + "-gone", client=aws.client("sqs"))
        _deliver(webhook, _text("שלום"))
        # When the stream is fed once
        feed.poller.poll_once()
        # Then the function reported the record that carried the message as failed
        [failure] = feed.responses[-1]["batchItemFailures"]
        assert failure["itemIdentifier"]
        assert _drain(aws, feed.observer_url) == []
        # And when EventBridge recovers, Lambda's retry publishes it
        assert fault.remaining == 0
        feed.dead_letters = None
        published = feed.run()
        assert [event["detail-type"] for event in published].count("message.received") == 1

    def test_a_message_item_without_a_lead_is_set_aside_not_dropped(self, feed: Feed, aws: AwsStack) -> None:
        aws.client("dynamodb").put_item(
            TableName=aws.ref("ConversationsTable"),
            Item={"PK": {"S": "MSG#wamid.broken"}, "SK": {"S": "MSG"}, "wamid": {"S": "wamid.broken"}},
        )
        assert feed.run() == []
        [letter] = _dead_letters(aws)
        assert (letter["kind"], letter["reason"]) == ("unmappable_change", "message_without_wa_id")
        assert letter["keys"] == {"PK": "MSG#wamid.broken", "SK": "MSG"}


class TestStatusChangesByDefault:
    def test_a_crm_send_gets_its_status_events_and_an_auto_reply_only_its_own(
        self, feed: Feed, webhook: Any, responder: Responder, graph_fake: GraphSimulator
    ) -> None:
        # Given a lead whose message was answered by the responder (default CrmEventsStatusChanges)
        _deliver(webhook, _text("שלום"))
        assert responder.run().failed_ids == set()
        [send] = [r for r in graph_fake.recorded() if r.accepted and not r.is_read]
        reply_wamid = send.response["messages"][0]["id"]
        # And a message of the CRM's own (a status webhook first creates it, as when Meta is faster)
        crm_wamid = meta.new_wamid("out")
        now = int(datetime.now(UTC).timestamp())
        for wamid in (reply_wamid, crm_wamid):
            _statuses(
                webhook,
                meta.status(wamid, "sent", LEAD, timestamp=now),
                meta.status(wamid, "read", LEAD, timestamp=now + 1),
            )
        # When the stream is fed
        feed.run()
        # Then only the CRM's message has status events; the auto-reply is one auto_reply.sent
        assert {event["detail"]["wamid"] for event in feed.of_type("message.status_changed")} == {crm_wamid}
        assert len(feed.of_type("message.status_changed")) == 2
        assert [event["detail"]["wamid"] for event in feed.of_type("auto_reply.sent")] == [reply_wamid]


class TestTwoNumbers:
    def test_each_event_names_the_number_of_its_conversation_and_a_conversation_adds_no_message_event(
        self, feed: Feed, webhook: Any, responder: Responder
    ) -> None:
        first, second = meta.DEMO_PHONE_NUMBER_ID, "110022003300"
        # Given a lead who greets our first number, then our second, and asks the second to stop
        greetings = {first: _text("שלום"), second: _text("שלום, מה שלומכם?")}
        for number, message in greetings.items():
            assert webhook(meta.envelope(meta.message_value([message], phone_number_id=number))).status == 200
        stop = _text("תסירו אותי מהרשימה בבקשה")
        assert webhook(meta.envelope(meta.message_value([stop], phone_number_id=second))).status == 200
        assert responder.run().failed_ids == set()
        # When the table's stream is fed
        feed.run()
        # Then each message is received once, from the number it was written to (the conversations' own
        # changes add none)
        received = {
            event["detail"]["wamid"]: event["detail"]["phone_number_id"] for event in feed.of_type("message.received")
        }
        assert received == {greetings[first]["id"]: first, greetings[second]["id"]: second, stop["id"]: second}
        assert len(feed.of_type("message.received")) == 3
        # And each auto-reply names the number it went from: the one its message was written to
        sent = {
            event["detail"]["in_reply_to"]: event["detail"]["phone_number_id"]
            for event in feed.of_type("auto_reply.sent")
        }
        assert sent == {greetings[first]["id"]: first, greetings[second]["id"]: second, stop["id"]: second}
        # And the opt-out, the business's, names the number it came through
        [opted_out] = feed.of_type("lead.opted_out")
        assert (opted_out["detail"]["wa_id"], opted_out["detail"]["phone_number_id"]) == (LEAD, second)

    def test_a_takeover_is_the_conversation_s_and_names_its_number(
        self,
        feed: Feed,
        webhook: Any,
        graph_fake: GraphSimulator,
        function_env: Callable[..., dict[str, str]],
    ) -> None:
        first, second = meta.DEMO_PHONE_NUMBER_ID, "110022003300"
        # Given a lead who wrote to both numbers
        for number in (first, second):
            assert webhook(meta.envelope(meta.message_value([_text("שלום")], phone_number_id=number))).status == 200
        # When an agent answers from the second number through the CRM
        api = ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=f"{first},{second}")
        answer = {"to": LEAD, "type": "text", "text": {"body": "שלום, כאן דנה"}, "from_phone_number_id": second}
        assert api.send(answer).status == 201
        feed.run()
        # Then one takeover is published, of that conversation
        [takeover] = feed.of_type("lead.human_takeover")
        assert (takeover["detail"]["wa_id"], takeover["detail"]["phone_number_id"]) == (LEAD, second)
        assert len(feed.of_type("message.received")) == 2


def test_a_stream_range_lambda_gave_up_on_is_published_again_by_the_redrive(
    feed: Feed, webhook: Any, aws: AwsStack
) -> None:
    # Given a lead's message whose stream batch EventsFunction crashed on until Lambda gave up (its note, not
    # the records, on the dead-letter queue: the records stay on the stream for 24 hours)
    message = _text("שלום")
    _deliver(webhook, message)
    streams = aws.client("dynamodbstreams")
    arn = feed.poller.source.stream_arn
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    note = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "batchSize": len(records),
            "streamArn": arn,
        },
    }
    aws.client("sqs").send_message(QueueUrl=aws.ref("EventsDeadLetterQueue"), MessageBody=json.dumps(note))
    # When the redrive runs with the bus's name
    counts = _redrive_script().redrive(
        aws.client("sqs"),
        aws.client("events"),
        aws.ref("EventsDeadLetterQueue"),
        bus_name=aws.ref("CrmEventBus"),
        streams=streams,
    )
    # Then the message's event is published and the note is gone
    assert counts["stream_events_republished"] == 1 and counts["refused"] == 0
    [published] = _drain(aws, feed.observer_url)
    assert (published["detail-type"], published["detail"]["wamid"]) == ("message.received", message["id"])
    assert _dead_letters(aws) == []
