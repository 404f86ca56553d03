"""What a lost or refused DynamoDB answer does to a recorded send: counted at most once, never half-recorded.

An ADD is not idempotent: sent again after its answer was lost, it counts twice. A conditional record is:
retried after a lost answer, it finds itself already written. The faults reach the store's own boto3 client
the way real ones would (a botocore `before-send` handler on the default session), only on the UpdateItem a
test names; everything runs against moto's server.
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


def _faults_on(marker: bytes, function_env: Callable[..., dict[str, str]]) -> Iterator[list[Fault]]:
    """Faults for the next UpdateItem attempts whose body holds `marker`, in order (empty: they go through)."""
    import boto3

    function_env("SendFunction")
    planned: list[Fault] = []

    def before_send(request: Any = None, **_: Any) -> Any:
        if planned and marker in (request.body or b""):
            return planned.pop(0)(request)
        return None

    session = boto3._get_default_session()._session
    session.register("before-send.dynamodb.UpdateItem", before_send, unique_id=f"test-faults-{marker!r}")
    yield planned
    session.unregister("before-send.dynamodb.UpdateItem", unique_id=f"test-faults-{marker!r}")


@pytest.fixture
def counter_faults(aws: AwsStack, function_env: Callable[..., dict[str, str]]) -> Iterator[list[Fault]]:
    yield from _faults_on(b"STATS#", function_env)


@pytest.fixture
def send_record_faults(aws: AwsStack, function_env: Callable[..., dict[str, str]]) -> Iterator[list[Fault]]:
    yield from _faults_on(b'"MSG#', function_env)


def _send_recorded(aws: AwsStack, wamid: str | None = None) -> bool:
    from whatsapp_crm.store.dynamodb import DynamoConversationStore

    # No client handed in: the store builds its own, as in Lambda.
    store = DynamoConversationStore(aws.ref("ConversationsTable"))
    record = OutboundRecord(
        wamid=wamid or meta.new_wamid("out"),
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


def test_a_send_record_whose_answer_was_lost_still_moves_the_conversation(
    aws: AwsStack, send_record_faults: list[Fault], counter_faults: list[Fault]
) -> None:
    # Given DynamoDB writes the send's record but its answer is lost, and botocore's retry finds it written
    send_record_faults.append(_answer_lost)
    wamid = meta.new_wamid("out")
    # When the send is recorded
    assert _send_recorded(aws, wamid) is False
    # Then the conversation shows the send as its latest message all the same
    from whatsapp_crm.store.dynamodb import DynamoConversationStore

    lead = DynamoConversationStore(aws.ref("ConversationsTable")).get_lead(LEAD)
    assert lead is not None
    assert lead["last_outbound_at"] == "2026-11-25T10:00:00Z"
    assert lead["last_message_direction"] == "outbound"
    assert lead["last_message_preview"] == "הנכס עדיין זמין"
    # And the hour does not count it (the store cannot tell a lost answer from a retried call): short, never over
    assert _sent_this_hour(aws) == 0
