"""Big batched POSTs (Meta batches up to 1,000 updates) through the real webhook handler on moto's server:
written several at a time, yet every part once, each lead's messages queued in Meta's order, statuses
forward-only, and a partial failure answered 500 so that Meta's redelivery completes exactly the rest (the
lead's unread count too, unless an agent read the thread in between)."""

from __future__ import annotations

import json
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import AwsStack
from integration.api_client import ApiClient
from integration.conftest import drain
from local import meta_payloads as meta


def _webhook_clients() -> tuple[Any, Any]:
    """The DynamoDB and SQS clients the webhook handler itself builds and reuses (its cached adapters)."""
    from whatsapp_crm import wiring

    store = wiring.conversation_store(os.environ["TABLE_NAME"])
    queue = wiring.inbound_queue(os.environ["INBOUND_QUEUE_URL"])
    return store.table.client, queue.client  # type: ignore[attr-defined]


@pytest.fixture
def handed_off(webhook: Any) -> Iterator[list[tuple[str, str]]]:
    """(lead, wamid) of every entry the webhook sends to SQS, in the order it sends them."""
    sent: list[tuple[str, str]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.extend((entry["MessageGroupId"], entry["MessageDeduplicationId"]) for entry in params["Entries"])

    _, sqs = _webhook_clients()
    sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
    yield sent
    sqs.meta.events.unregister("provide-client-params.sqs.SendMessageBatch", record)


def _keys(params: dict[str, Any]) -> set[str]:
    """The partition keys a write request names (a single write, or each item of a transaction)."""
    operations = [params, *(next(iter(entry.values())) for entry in params.get("TransactItems", []))]
    return {str((op.get("Item") or op.get("Key") or {}).get("PK", {}).get("S")) for op in operations}


@pytest.fixture
def failing_writes(webhook: Any) -> Iterator[set[str]]:
    """wamids whose message item DynamoDB refuses to write, as a throttle that outlasted botocore's retries."""
    failing: set[str] = set()

    def fail(params: dict[str, Any], **_: Any) -> None:
        if _keys(params) & {f"MSG#{wamid}" for wamid in failing}:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}}
            raise ClientError(error, "write")  # type: ignore[arg-type]

    dynamodb, _ = _webhook_clients()
    operations = ("TransactWriteItems", "UpdateItem", "PutItem")
    for operation in operations:
        dynamodb.meta.events.register(f"provide-client-params.dynamodb.{operation}", fail)
    yield failing
    for operation in operations:
        dynamodb.meta.events.unregister(f"provide-client-params.dynamodb.{operation}", fail)


def _campaign_replies(writes: list[int]) -> list[dict[str, Any]]:
    """Replies of several leads (lead i writes writes[i] times), interleaved as Meta may batch them: each
    lead's in the order they wrote."""
    now = int(time.time()) - 600
    return [
        meta.text_message(f"9725255{lead:05d}", f"הודעה {number} של ליד {lead}", timestamp=now + number)
        for number in range(max(writes))
        for lead, count in enumerate(writes)
        if number < count
    ]


def _by_lead(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for lead, wamid in pairs:
        grouped[lead].append(wamid)
    return dict(grouped)


def _stored_messages(aws: AwsStack) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    dynamodb = aws.client("dynamodb")
    request: dict[str, Any] = {"TableName": aws.ref("ConversationsTable")}
    while True:
        page = dynamodb.scan(**request)
        items.extend(item for item in page["Items"] if item["SK"]["S"] == "MSG")
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_100_message_post_is_stored_once_and_each_leads_messages_are_queued_in_order(
    aws: AwsStack, webhook: Any, table: Any, handed_off: list[tuple[str, str]]
) -> None:
    # Given one POST of 100 replies from 40 leads (some wrote 3 times, some twice), interleaved
    messages = _campaign_replies([3] * 20 + [2] * 20)
    assert len(messages) == 100
    document = meta.envelope(meta.message_value(messages))
    # When Meta delivers it, and then delivers it again
    assert webhook(document).status == 200
    first = list(handed_off)
    assert webhook(document).status == 200
    # Then every message is stored once and each lead's unread count is its own number of messages
    assert len(_stored_messages(aws)) == 100
    expected = _by_lead([(m["from"], m["id"]) for m in messages])
    for lead, wamids in expected.items():
        assert table.get_lead(lead)["unread_count"] == len(wamids)
    # And each delivery handed every message to the responder, each lead's in the order they wrote
    assert _by_lead(first) == expected
    assert _by_lead(handed_off[len(first) :]) == expected
    queued = drain(aws)
    assert sorted(json.loads(item["Body"])["wamid"] for item in queued) == sorted(m["id"] for m in messages)


def test_a_partial_failure_answers_500_and_the_redelivery_completes_exactly_the_rest(
    aws: AwsStack,
    webhook: Any,
    table: Any,
    handed_off: list[tuple[str, str]],
    failing_writes: set[str],
) -> None:
    # Given a POST of 4 messages from each of 3 leads and the statuses of 30 sent messages
    messages = _campaign_replies([4, 4, 4])
    lead_a, lead_b, lead_c = (messages[i]["from"] for i in range(3))
    b_messages = [m["id"] for m in messages if m["from"] == lead_b]
    outbound = [meta.new_wamid("out") for _ in range(30)]
    statuses = [meta.status(wamid, "delivered", lead_a, timestamp=1_764_000_000) for wamid in outbound]
    document = meta.envelope(meta.message_value(messages), meta.status_value(statuses))
    # And DynamoDB refusing the write of lead B's second message and of one status
    failing_writes.update({b_messages[1], outbound[7]})
    # When Meta delivers it
    result = webhook(document)
    # Then Meta is told to retry
    assert result.status == 500
    assert result.json()["error"]["code"] == "temporarily_unavailable"
    # And everything else was written: lead B only up to the refused message, so its later ones cannot
    # reach the responder ahead of it
    stored = {item["wamid"]["S"] for item in _stored_messages(aws)}
    assert {m["id"] for m in messages} - stored == set(b_messages[1:])
    assert table.get_lead(lead_b)["unread_count"] == 1
    assert {wamid for wamid in outbound if table.get_message(wamid)} == set(outbound) - {outbound[7]}
    # And exactly the stored messages were handed to the responder
    assert sorted(wamid for _, wamid in handed_off) == sorted(stored & {m["id"] for m in messages})
    # When DynamoDB recovers and Meta redelivers the same POST
    failing_writes.clear()
    assert webhook(document).status == 200
    # Then the rest is written, nothing twice, and lead B's messages reach the queue in the order written
    assert len(_stored_messages(aws)) == len(messages) + len(outbound)
    for lead in (lead_a, lead_b, lead_c):
        assert table.get_lead(lead)["unread_count"] == 4
    assert table.get_message(outbound[7])["status"] == "delivered"
    queued = drain(aws)
    b_queued = [json.loads(item["Body"])["wamid"] for item in queued if item["Attributes"]["MessageGroupId"] == lead_b]
    assert b_queued == b_messages
    assert len(queued) == len(messages)


def test_statuses_of_one_message_in_one_big_batch_end_at_the_highest_with_every_time_kept(
    webhook: Any, table: Any
) -> None:
    # Given a POST with sent, delivered and read of 100 messages, shuffled (read may come before sent),
    # and a failure reported after `sent` for some of them
    shuffle = random.Random(7)
    outbound = [meta.new_wamid("out") for _ in range(100)]
    statuses = []
    for index, wamid in enumerate(outbound):
        steps = [("sent", 10), ("delivered", 20), ("read", 30)]
        if index % 10 == 0:
            steps = [("sent", 10), ("failed", 20)]
        statuses += [meta.status(wamid, name, "972525551234", timestamp=1_764_000_000 + ts) for name, ts in steps]
    shuffle.shuffle(statuses)
    # When Meta delivers it
    assert webhook(meta.envelope(meta.status_value(statuses))).status == 200
    # Then every message holds its highest status, never a lower one, with each status's time
    for index, wamid in enumerate(outbound):
        item = table.get_message(wamid)
        assert item["status_ts_sent"] == "2025-11-24T16:00:10Z"
        if index % 10 == 0:
            assert item["status"] == "failed"
        else:
            assert item["status"] == "read"
            assert item["status_ts_delivered"] == "2025-11-24T16:00:20Z"
            assert item["status_ts_read"] == "2025-11-24T16:00:30Z"


# --- a redelivery after the message was stored but its lead update was not -----------------------------


@pytest.fixture
def refused_lead_updates(webhook: Any) -> Iterator[set[str]]:
    """wa_ids whose lead item DynamoDB refuses to update, as a throttle that outlasted botocore's retries."""
    failing: set[str] = set()

    def fail(params: dict[str, Any], **_: Any) -> None:
        if _keys(params) & {f"LEAD#{wa_id}" for wa_id in failing}:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}}
            raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]

    dynamodb, _ = _webhook_clients()
    dynamodb.meta.events.register("provide-client-params.dynamodb.UpdateItem", fail)
    yield failing
    dynamodb.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", fail)


@pytest.fixture
def api(aws: AwsStack, function_env: Any, graph_fake: Any) -> ApiClient:
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)


def _one_message_post(wa_id: str, earlier: int = 0) -> tuple[str, dict[str, Any]]:
    messages = [
        meta.text_message(wa_id, f"הודעה {number}", timestamp=int(time.time()) - 60 + number)
        for number in range(earlier + 1)
    ]
    return str(messages[-1]["id"]), meta.envelope(meta.message_value(messages))


def test_a_lead_update_refused_on_the_first_delivery_counts_the_message_unread_once_on_the_redelivery(
    webhook: Any, table: Any, refused_lead_updates: set[str]
) -> None:
    # Given a lead who wrote once before, and a new message whose lead update DynamoDB refuses
    lead = "972525550101"
    assert (
        webhook(
            meta.envelope(meta.message_value([meta.text_message(lead, "שלום", timestamp=int(time.time()) - 120)]))
        ).status
        == 200
    )
    wamid, document = _one_message_post(lead)
    refused_lead_updates.add(lead)
    # When Meta delivers it: the message is stored, its lead is not, and Meta is told to retry
    assert webhook(document).status == 500
    assert table.get_message(wamid) is not None
    assert table.get_lead(lead)["unread_count"] == 1
    # When DynamoDB recovers and Meta redelivers it, twice
    refused_lead_updates.clear()
    assert webhook(document).status == 200
    assert webhook(document).status == 200
    # Then the lead counts it unread, once, and its timeline moved to it
    lead_item = table.get_lead(lead)
    assert lead_item["unread_count"] == 2
    assert lead_item["last_inbound_wamid"] == wamid


def test_a_redelivery_after_the_agent_read_the_thread_leaves_it_read(webhook: Any, table: Any, api: ApiClient) -> None:
    # Given a message delivered completely, and an agent who read the thread
    lead = "972525550102"
    wamid, document = _one_message_post(lead, earlier=1)
    assert webhook(document).status == 200
    assert table.get_lead(lead)["unread_count"] == 2
    assert api.mark_read(lead).status == 200
    # When Meta redelivers the message
    assert webhook(document).status == 200
    # Then the thread stays read
    assert table.get_lead(lead)["unread_count"] == 0
    assert api.conversations().json()["conversations"][0]["unread_count"] == 0


def test_a_plain_redelivery_leaves_the_unread_count_as_it_was(webhook: Any, table: Any) -> None:
    # Given two messages delivered completely and not read
    lead = "972525550103"
    _, document = _one_message_post(lead, earlier=1)
    assert webhook(document).status == 200
    # When Meta redelivers them
    assert webhook(document).status == 200
    # Then each is still counted once
    assert table.get_lead(lead)["unread_count"] == 2
