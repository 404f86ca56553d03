"""Integration fixtures: the real webhook handler against moto's server over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conftest import TEST_APP_SECRET, AwsStack
from local.apigw import http_api_event, lambda_context
from local.handlers import load_function_module
from local.meta_payloads import signed_headers, wire_bytes


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def _result(response: dict[str, Any]) -> HttpResult:
    body = response.get("body", "")
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    return HttpResult(response["statusCode"], response.get("headers") or {}, body)


@pytest.fixture
def webhook(aws: AwsStack, function_env: Callable[..., dict[str, str]]) -> Callable[..., HttpResult]:
    """POST a document (or raw bytes) to the real webhook handler, signed unless told otherwise."""
    function_env("WebhookFunction")
    module = load_function_module("WebhookFunction")

    def post(
        document: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        sign: bool = True,
        base64_body: bool = False,
    ) -> HttpResult:
        body = raw if raw is not None else wire_bytes(document)
        request_headers = signed_headers(body, TEST_APP_SECRET) if sign else {"content-type": "application/json"}
        request_headers.update(headers or {})
        event = http_api_event("POST", "/webhook", body=body, headers=request_headers, force_base64=base64_body)
        return _result(module.lambda_handler(event, lambda_context("WebhookFunction")))

    return post


@pytest.fixture
def webhook_get(aws: AwsStack, function_env: Callable[..., dict[str, str]]) -> Callable[[str], HttpResult]:
    function_env("WebhookFunction")
    module = load_function_module("WebhookFunction")

    def get(query: str) -> HttpResult:
        event = http_api_event("GET", "/webhook", query=query)
        return _result(module.lambda_handler(event, lambda_context("WebhookFunction")))

    return get


@pytest.fixture
def table(aws: AwsStack) -> Any:
    from whatsapp_crm.store.dynamodb import DynamoConversationStore

    return DynamoConversationStore(aws.ref("ConversationsTable"), client=aws.client("dynamodb"))


def drain(aws: AwsStack, logical_id: str = "InboundQueue") -> list[dict[str, Any]]:
    """Every message on a queue, received and deleted (FIFO hides a group while any of it is in flight)."""
    sqs = aws.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=aws.ref(logical_id), MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=aws.ref(logical_id),
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
