"""The local SQS event source against moto's server: what Lambda's event source mapping would do."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import AwsStack
from local.poller import SqsPoller, SqsSource, sqs_sources
from local.runtime import Invocation
from local.template import create_resources, load_template

TEMPLATE = """
Resources:
  DeadLetters:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
  Inbound:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
      VisibilityTimeout: 1
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt DeadLetters.Arn
        maxReceiveCount: 2
  Consumer:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/none/
      Handler: app.handler
      Events:
        Inbound:
          Type: SQS
          Properties:
            Queue: !GetAtt Inbound.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
"""


class FakeFunction:
    """Stands in for the worker pool: records each batch and answers as told."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.answer: Callable[[list[dict[str, Any]]], Invocation] = lambda records: Invocation(payload=None)

    def __call__(self, logical_id: str, event: dict[str, Any]) -> Invocation:
        self.batches.append(event["Records"])
        return self.answer(event["Records"])

    def fail_bodies(self, *bodies: str) -> None:
        def answer(records: list[dict[str, Any]]) -> Invocation:
            failed = [{"itemIdentifier": r["messageId"]} for r in records if r["body"] in bodies]
            return Invocation(payload={"batchItemFailures": failed})

        self.answer = answer


@dataclass
class Queues:
    sqs: Any
    source: SqsSource
    dead_letters_url: str


@pytest.fixture
def queues(moto_endpoint: str, tmp_path: Path) -> Queues:
    import boto3

    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    template = load_template(path)
    session = boto3.session.Session(region_name="eu-west-1")
    created = create_resources(session, f"p{uuid.uuid4().hex[:8]}", template)
    (source,) = sqs_sources(template, created)
    return Queues(session.client("sqs"), source, created.refs["DeadLetters"])


@pytest.fixture
def function() -> FakeFunction:
    return FakeFunction()


@pytest.fixture
def poller(queues: Queues, function: FakeFunction) -> SqsPoller:
    return SqsPoller(queues.source, queues.sqs, function, wait_seconds=1)


def _send(sqs: Any, source: SqsSource, body: str, group: str) -> None:
    sqs.send_message(
        QueueUrl=source.queue_url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=uuid.uuid4().hex
    )


def _poll_until(poller: SqsPoller, wanted: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not wanted():
        assert time.monotonic() < deadline, "the queue never got there"
        poller.poll_once()


def _queue_bodies(sqs: Any, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    return [message["Body"] for message in messages]


def test_records_are_lambda_shaped_with_fifo_attributes(
    queues: Queues, function: FakeFunction, poller: SqsPoller
) -> None:
    # Given two messages of one lead on the FIFO queue
    sqs, source = queues.sqs, queues.source
    _send(sqs, source, "first", "972525551234")
    _send(sqs, source, "second", "972525551234")
    # When the poller feeds the function
    result = poller.poll_once()
    # Then one batch arrives in order, shaped as Lambda shapes SQS records, and the queue is empty after
    assert result is not None and result.deleted == 2
    (batch,) = function.batches
    assert [record["body"] for record in batch] == ["first", "second"]
    record = batch[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == source.queue_arn
    assert record["awsRegion"] == "eu-west-1"
    assert record["receiptHandle"] and record["messageId"]
    attributes = record["attributes"]
    assert attributes["MessageGroupId"] == "972525551234"
    assert attributes["ApproximateReceiveCount"] == "1"
    assert {"MessageDeduplicationId", "SequenceNumber", "SentTimestamp"} <= set(attributes)
    assert poller.poll_once() is None


def test_only_reported_failures_stay_and_come_back_after_the_visibility_timeout(
    queues: Queues, function: FakeFunction, poller: SqsPoller
) -> None:
    # Given two leads' messages, and a function that fails one of them
    sqs, source = queues.sqs, queues.source
    _send(sqs, source, "ok", "lead-1")
    _send(sqs, source, "fails", "lead-2")
    function.fail_bodies("fails")
    # When a batch is processed
    result = poller.poll_once()
    # Then only the successful record is deleted
    assert result is not None
    assert (result.received, result.deleted) == (2, 1)
    # And the failed one comes back, alone, once its visibility timeout (1 s) has passed
    function.answer = lambda records: Invocation(payload={"batchItemFailures": []})
    _poll_until(poller, lambda: len(function.batches) == 2)
    retried = function.batches[1]
    assert [record["body"] for record in retried] == ["fails"]
    assert retried[0]["attributes"]["ApproximateReceiveCount"] == "2"


def test_a_record_failing_max_receive_count_times_lands_in_the_dead_letter_queue(
    queues: Queues, function: FakeFunction, poller: SqsPoller
) -> None:
    # Given a message the function always fails, and maxReceiveCount 2
    sqs, source = queues.sqs, queues.source
    _send(sqs, source, "poison", "lead-1")
    function.fail_bodies("poison")
    # When the poller keeps going
    _poll_until(poller, lambda: len(function.batches) == 2)
    for _ in range(3):
        poller.poll_once()
    # Then the function saw it exactly twice, and SQS moved it to the dead-letter queue
    assert len(function.batches) == 2
    assert _queue_bodies(sqs, queues.dead_letters_url) == ["poison"]


def test_a_function_error_returns_the_whole_batch(queues: Queues, function: FakeFunction, poller: SqsPoller) -> None:
    sqs, source = queues.sqs, queues.source
    _send(sqs, source, "a", "lead-1")
    _send(sqs, source, "b", "lead-2")
    function.answer = lambda records: Invocation(error={"errorType": "Sandbox.Timedout", "errorMessage": "late"})
    result = poller.poll_once()
    assert result is not None and result.deleted == 0
    function.answer = lambda records: Invocation(payload=None)
    _poll_until(poller, lambda: sum(len(batch) for batch in function.batches) >= 4)
    assert sorted(record["body"] for batch in function.batches[1:] for record in batch) == ["a", "b"]


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": "not-a-message-of-this-batch"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        "not an object",
    ],
)
def test_a_malformed_partial_response_fails_the_whole_batch(
    queues: Queues, function: FakeFunction, poller: SqsPoller, response: Any
) -> None:
    sqs, source = queues.sqs, queues.source
    _send(sqs, source, "a", "lead-1")
    function.answer = lambda records: Invocation(payload=response)
    result = poller.poll_once()
    assert result is not None
    assert result.deleted == 0
    assert result.error == "invalid batchItemFailures response"


def test_the_templates_responder_is_fed_from_the_inbound_queue(aws: AwsStack) -> None:
    # Given template.yaml as it is
    sources = {source.function: source for source in sqs_sources(aws.template, aws.created)}
    if "ResponderFunction" not in sources:
        pytest.skip("ResponderFunction is not in template.yaml yet")
    # Then the responder's event source is read from it, resolved to the local queue
    responder = sources["ResponderFunction"]
    event = aws.template["Resources"]["ResponderFunction"]["Properties"]["Events"]
    (properties,) = [e["Properties"] for e in event.values() if e["Type"] == "SQS"]
    assert responder.queue_url == aws.ref("InboundQueue")
    assert responder.batch_size == properties.get("BatchSize", 10)
    assert responder.report_batch_item_failures is (
        "ReportBatchItemFailures" in properties.get("FunctionResponseTypes", [])
    )
