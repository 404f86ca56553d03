"""Issue 10, point 4 as behaviour: POST /messages with an Idempotency-Key through the real SendFunction,
moto's DynamoDB and the Graph fake; the interrupted first attempt is a send Meta accepted after the client
had given up."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from conftest import AwsStack
from integration.api_client import ApiClient, ApiResult
from local import meta_payloads as meta
from local.apigw import http_api_event
from local.graph_simulator import GraphSimulator

LEAD = "972525551234"
TEMPLATE = {"to": "+972525551234", "type": "template", "template": {"name": "hello_world", "language": {"code": "en"}}}


@pytest.fixture
def api(aws: AwsStack, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)


def _send(api: ApiClient, body: dict[str, Any], key: str | None) -> ApiResult:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["idempotency-key"] = key
    event = http_api_event("POST", "/messages", body=json.dumps(body, ensure_ascii=False), headers=headers)
    return api._invoke("SendFunction", event)


def _sends(graph_fake: GraphSimulator) -> list[Any]:
    return [record for record in graph_fake.recorded() if record.is_send]


def test_a_retry_with_the_same_key_and_body_returns_the_first_answer_and_sends_once(
    api: ApiClient, graph_fake: GraphSimulator
) -> None:
    first = _send(api, TEMPLATE, "order-4411-reminder")
    retried = _send(api, TEMPLATE, "order-4411-reminder")
    assert (first.status, retried.status) == (201, 201), (first.body, retried.body)
    assert retried.json()["message_id"] == first.json()["message_id"]
    assert retried.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(_sends(graph_fake)) == 1


def test_the_same_key_with_another_body_is_422_and_nothing_more_is_sent(
    api: ApiClient, graph_fake: GraphSimulator
) -> None:
    assert _send(api, TEMPLATE, "k-2").status == 201
    other = {**TEMPLATE, "to": "+972545550199"}
    refused = _send(api, other, "k-2")
    assert refused.status == 422
    assert refused.error["code"] == "idempotency_key_reused"
    assert len(_sends(graph_fake)) == 1


def test_without_the_header_every_request_sends(api: ApiClient, graph_fake: GraphSimulator) -> None:
    assert [_send(api, TEMPLATE, None).status for _ in range(2)] == [201, 201]
    assert len(_sends(graph_fake)) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "שלום"])
def test_an_unusable_key_is_a_400_naming_it(api: ApiClient, graph_fake: GraphSimulator, key: str) -> None:
    result = _send(api, TEMPLATE, key)
    assert result.status == 400, result.body
    assert result.error["code"] == "validation_error"
    assert "idempotency-key" in result.error["field"].lower()
    assert _sends(graph_fake) == []


def test_a_send_meta_accepted_after_the_client_gave_up_is_not_sent_again(
    aws: AwsStack, api: ApiClient, graph_fake: GraphSimulator, webhook: Any
) -> None:
    # Given Meta takes 3 s to accept, and the send function gives up after 1 s (one attempt): a 503
    api.overrides.update(GRAPH_READ_TIMEOUT_SECONDS="1", GRAPH_MAX_ATTEMPTS="1")
    graph_fake.delay_next(3.0)
    first = _send(api, TEMPLATE, "k-timeout")
    assert first.status == 503, first.body
    time.sleep(2.5)  # Meta accepts it meanwhile
    [sent] = _sends(graph_fake)
    assert sent.status == 200
    wamid = sent.response["messages"][0]["id"]
    callback = sent.body["biz_opaque_callback_data"]
    assert callback.startswith("idem:")
    # When the CRM retries before Meta's status webhook came: it is told to wait, nothing is sent
    waiting = _send(api, TEMPLATE, "k-timeout")
    assert waiting.status == 409, waiting.body
    assert waiting.error["code"] == "idempotency_key_in_use"
    assert int(waiting.headers["retry-after"]) > 0
    # And once Meta's `sent` status (echoing the callback) is stored, the retry gets that very message
    status = meta.status(wamid, "sent", LEAD)
    status["biz_opaque_callback_data"] = callback
    assert webhook(meta.envelope(meta.status_value([status]))).status == 200
    answered = _send(api, TEMPLATE, "k-timeout")
    assert answered.status == 201, answered.body
    assert answered.json()["message_id"] == wamid
    assert len(_sends(graph_fake)) == 1


def test_the_key_is_not_stored_in_the_clear(aws: AwsStack, api: ApiClient) -> None:
    assert _send(api, TEMPLATE, "crm-order-4411").status == 201
    items = aws.client("dynamodb").scan(TableName=aws.ref("ConversationsTable"))["Items"]
    assert "crm-order-4411" not in json.dumps(items)
    assert any(item["PK"]["S"].startswith("IDEM#") for item in items)
