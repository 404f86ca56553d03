"""The local stack's embedded DynamoDB keeps concurrent writes (local/moto_fidelity.py).

moto 5.2 restores whole-table snapshots when a transaction is cancelled, undoing other threads' writes;
the local stack runs moto through local.moto_fidelity, which these tests hold to DynamoDB's behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from local.stack import MotoServer

    server = MotoServer()
    try:
        yield server.start()
    finally:
        server.stop()


def _table(endpoint: str) -> tuple[object, str]:
    import uuid

    import boto3

    client = boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    name = f"t{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client, name


def test_cancelled_transactions_do_not_undo_concurrent_writes(endpoint: str) -> None:
    # Given a table where one item exists, so transactions that Put it again are cancelled
    client, table = _table(endpoint)
    client.put_item(TableName=table, Item={"PK": {"S": "taken"}})
    # (a table of some size: moto's whole-table snapshot then takes long enough for writes to land inside it)
    for start in range(0, 2000, 25):
        requests = [{"PutRequest": {"Item": {"PK": {"S": f"old-{n}"}}}} for n in range(start, start + 25)]
        client.batch_write_item(RequestItems={table: requests})

    def cancelled(_: int) -> None:
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": table,
                            "Item": {"PK": {"S": "taken"}},
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": table,
                            "Key": {"PK": {"S": "counter"}},
                            "UpdateExpression": "ADD n :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                ]
            )
        except client.exceptions.TransactionCanceledException:
            pass

    def written(index: int) -> None:
        client.transact_write_items(
            TransactItems=[{"Put": {"TableName": table, "Item": {"PK": {"S": f"item-{index}"}}}}]
        )

    # When 200 cancelled transactions race 200 successful ones
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: cancelled(i) if i % 2 else written(i // 2), range(400)))

    # Then every successful write is there and no cancelled transaction left its counter update behind
    keys = {
        item["PK"]["S"] for page in client.get_paginator("scan").paginate(TableName=table) for item in page["Items"]
    }
    assert {f"item-{i}" for i in range(200)} <= keys
    assert "counter" not in keys


def test_a_repeated_client_request_token_answers_success_without_running_again(endpoint: str) -> None:
    # Given a committed transaction that created an item and counted once
    client, table = _table(endpoint)
    request = {
        "ClientRequestToken": "retry-of-the-same-call",
        "TransactItems": [
            {
                "Put": {
                    "TableName": table,
                    "Item": {"PK": {"S": "new"}},
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            },
            {
                "Update": {
                    "TableName": table,
                    "Key": {"PK": {"S": "counter"}},
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ],
    }
    client.transact_write_items(**request)

    # When botocore retries it with the same token (its answer was lost)
    client.transact_write_items(**request)

    # Then DynamoDB's answer is success and nothing ran twice
    counter = client.get_item(TableName=table, Key={"PK": {"S": "counter"}})["Item"]
    assert counter["n"] == {"N": "1"}
