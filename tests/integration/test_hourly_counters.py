"""The hourly counters behind /health count each event at most once, whatever happens to DynamoDB's answer.

An ADD is not idempotent: sent again after its answer was lost, it counts twice. The faults here reach the
store's own boto3 client the way real ones would (a botocore `before-send` handler on the default session),
and only the counter's UpdateItem is hit; everything runs against moto's server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session

from conftest import AwsStack
from local import meta_payloads as meta
from whatsapp_crm.records import OutboundRecord, SentBy

LEAD = "972525551234"

Fault = Callable[[Any], Any]


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _answer_lost(request: Any) -> Any:
    """DynamoDB receives and applies the write; its answer never arrives."""
    URLLib3Session().send(request)
    raise ReadTimeoutError(endpoint_url=request.url)


def _refused(status: int, code: str) -> Fault:
    def refuse(request: Any) -> Any:
        document = f'{{"__type": "com.amazonaws.dynamodb.v20120810#{code}", "message": "test"}}'.encode()
        return AWSResponse(request.url, status, {"content-type": "application/x-amz-json-1.0"}, _Body(document))

    return refuse


@pytest.fixture
def counter_faults(aws: AwsStack, function_env: Callable[..., dict[str, str]]) -> Iterator[list[Fault]]:
    """Faults for the next attempts at a counter write, in order (an empty list: attempts go through)."""
    import boto3

    function_env("SendFunction")
    planned: list[Fault] = []

    def before_send(request: Any = None, **_: Any) -> Any:
        if planned and b"STATS#" in (request.body or b""):
            return planned.pop(0)(request)
        return None

    session = boto3._get_default_session()._session
    session.register("before-send.dynamodb.UpdateItem", before_send, unique_id="test-counter-faults")
    yield planned
    session.unregister("before-send.dynamodb.UpdateItem", unique_id="test-counter-faults")


def _send_recorded(aws: AwsStack) -> bool:
    from whatsapp_crm.store.dynamodb import DynamoConversationStore

    # No client handed in: the store builds its own, as in Lambda.
    store = DynamoConversationStore(aws.ref("ConversationsTable"))
    record = OutboundRecord(
        wamid=meta.new_wamid("out"),
        wa_id=LEAD,
        phone_number_id=meta.DEMO_PHONE_NUMBER_ID,
        message_type="text",
        timestamp="2026-11-25T10:00:00Z",
        sent_by=SentBy.HUMAN,
        text="הנכס עדיין זמין",
        preview="הנכס עדיין זמין",
        awaits_response=False,
    )
    return store.record_outbound(record)


def _sent_this_hour(aws: AwsStack) -> int:
    items = aws.client("dynamodb").scan(TableName=aws.ref("ConversationsTable"))["Items"]
    return sum(int(item["sent"]["N"]) for item in items if item["PK"]["S"].startswith("STATS#2026-11-25T10#"))


def test_a_counter_whose_answer_was_lost_counts_once(aws: AwsStack, counter_faults: list[Fault]) -> None:
    # Given DynamoDB applies the first counter write but its answer is lost
    counter_faults.append(_answer_lost)
    # When a send is recorded
    assert _send_recorded(aws) is True
    # Then the hour shows one send, not two (a retried ADD would have counted it again)
    assert _sent_this_hour(aws) == 1


def test_a_throttled_counter_write_is_tried_again(aws: AwsStack, counter_faults: list[Fault]) -> None:
    # Given DynamoDB throttles the first two counter writes (a refusal: nothing was applied)
    counter_faults.extend([_refused(400, "ProvisionedThroughputExceededException")] * 2)
    assert _send_recorded(aws) is True
    # Then the send is counted once all the same
    assert _sent_this_hour(aws) == 1
    assert counter_faults == []


def test_a_counter_that_cannot_be_written_falls_short_and_the_send_stays_recorded(
    aws: AwsStack, counter_faults: list[Fault], log_output: Any
) -> None:
    # Given DynamoDB answers the counter write with a server error (it may or may not have applied it)
    counter_faults.append(_refused(500, "InternalServerError"))
    # When a send is recorded, the record stands and nothing is sent again
    assert _send_recorded(aws) is True
    assert counter_faults == []
    # Then the hour may show one send fewer, never one more, and the shortfall is logged
    assert _sent_this_hour(aws) == 0
    assert "hourly counter not written" in log_output.getvalue()
