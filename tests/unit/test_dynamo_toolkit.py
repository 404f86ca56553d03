"""The DynamoDB toolkit every store is built from (store/toolkit.py): what a transaction's cancellation means
to a store, and one client per store even when a thread pool makes its first call."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from whatsapp_crm.errors import StoreUnavailableError, UnstorableError
from whatsapp_crm.store.toolkit import Table, Update

ITEMS: list[dict[str, Any]] = [
    {"Put": {"TableName": "t", "Item": {"PK": {"S": "MSG#1"}, "SK": {"S": "MSG"}}}},
    {"Update": Update().add("count", 1).request("t", {"PK": "LEAD#1", "SK": "LEAD"})},
]


def _stubbed_table() -> tuple[Table, Stubber]:
    client = boto3.client(
        "dynamodb", region_name="il-central-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret"
    )
    return Table("t", client), Stubber(client)


def _cancelled(stubber: Stubber, *codes: str) -> None:
    stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        response_meta={},
        modeled_fields={"CancellationReasons": [{"Code": code} for code in codes]},
    )


def test_a_transaction_cancelled_by_conditions_names_the_items_whose_condition_failed() -> None:
    table, stubber = _stubbed_table()
    stubber.add_response("transact_write_items", {})
    _cancelled(stubber, "None", "ConditionalCheckFailed")
    with stubber:
        assert table.transact(ITEMS) is None
        assert table.transact(ITEMS) == {1}


@pytest.fixture
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    pauses: list[float] = []
    monkeypatch.setattr("whatsapp_crm.store.toolkit.time.sleep", pauses.append)
    return pauses


def test_a_transaction_cancelled_for_any_other_reason_is_not_recorded() -> None:
    table, stubber = _stubbed_table()
    _cancelled(stubber, "ConditionalCheckFailed", "ThrottlingError")
    with stubber, pytest.raises(StoreUnavailableError):
        table.transact(ITEMS)


def test_a_transaction_that_met_another_on_an_item_is_tried_again_and_commits(no_pauses: list[float]) -> None:
    # Given DynamoDB cancels the transaction twice because another one held the counter item at that moment
    table, stubber = _stubbed_table()
    _cancelled(stubber, "None", "TransactionConflict")
    _cancelled(stubber, "TransactionConflict", "None")
    stubber.add_response("transact_write_items", {})
    # When the store writes it, then it is committed after two short pauses
    with stubber:
        assert table.transact(ITEMS) is None
    assert len(no_pauses) == 2
    stubber.assert_no_pending_responses()


def test_a_conflict_that_outlasts_the_retries_is_not_recorded(no_pauses: list[float]) -> None:
    table, stubber = _stubbed_table()
    for _ in range(4):
        _cancelled(stubber, "ConditionalCheckFailed", "TransactionConflict")
    with stubber, pytest.raises(StoreUnavailableError):
        table.transact(ITEMS)
    assert len(no_pauses) == 3


def test_a_single_write_refused_during_another_transaction_is_tried_again(no_pauses: list[float]) -> None:
    table, stubber = _stubbed_table()
    request = Update().set("state", "done").request("t", {"PK": "MSG#1", "SK": "REPLY"}, "attribute_exists(PK)")
    stubber.add_client_error("update_item", service_error_code="TransactionConflictException")
    stubber.add_client_error("update_item", service_error_code="ConditionalCheckFailedException")
    with stubber:
        assert table.update(request) is False
    assert len(no_pauses) == 1


def test_an_item_dynamodb_can_never_hold_is_unstorable_unless_the_caller_only_knows_unavailable() -> None:
    table, stubber = _stubbed_table()
    _cancelled(stubber, "None", "ValidationError")
    _cancelled(stubber, "None", "ValidationError")
    with stubber:
        with pytest.raises(UnstorableError):
            table.transact(ITEMS, "the message")
        with pytest.raises(StoreUnavailableError, match="the reply"):
            table.transact(ITEMS, "the reply", unstorable_is_unavailable=True)


def test_a_failed_condition_is_an_answer_and_a_throttle_is_an_error() -> None:
    table, stubber = _stubbed_table()
    request = Update().set("state", "done").request("t", {"PK": "MSG#1", "SK": "REPLY"}, "attribute_exists(PK)")
    stubber.add_client_error("update_item", service_error_code="ConditionalCheckFailedException")
    stubber.add_response("update_item", {})
    stubber.add_client_error("update_item", service_error_code="ProvisionedThroughputExceededException")
    with stubber:
        assert table.update(request) is False
        assert table.update(request) is True
        with pytest.raises(StoreUnavailableError):
            table.update(request)


def test_threads_making_a_stores_first_call_together_share_one_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # The webhook writes a batch from a thread pool: the first calls race to build the store's client.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "il-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    table = Table("t")
    start = threading.Barrier(8)
    clients: list[Any] = []

    def first_call() -> None:
        start.wait()
        clients.append(table.client)

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(clients) == 8 and len({id(client) for client in clients}) == 1
