"""Issue 10, point 6 as behaviour: the real send and responder handlers against moto's server and the Graph
fake, with numbers no phone can have."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conftest import AwsStack
from integration.api_client import ApiClient
from integration.test_responder import Responder
from local import meta_payloads as meta
from local.graph_simulator import GraphSimulator
from local.handlers import load_function_module


@pytest.fixture
def api(function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)


@pytest.fixture
def responder(
    aws: AwsStack, webhook: Any, graph_fake: GraphSimulator, function_env: Callable[..., dict[str, str]]
) -> Responder:
    function_env("ResponderFunction", **graph_fake.environment())
    return Responder(aws, load_function_module("ResponderFunction"))


@pytest.mark.parametrize("to", ["05255512", "052555123456", "+9725255512"])
def test_a_send_to_an_impossible_israeli_mobile_is_a_400_naming_to(
    aws: AwsStack, api: ApiClient, graph_fake: GraphSimulator, to: str
) -> None:
    result = api.send({"to": to, "type": "template", "template": {"name": "hello_world", "language": {"code": "en"}}})
    assert result.status == 400, result.body
    assert result.error["code"] == "validation_error"
    assert result.error["field"] == "to"
    assert graph_fake.sent_messages() == []


@pytest.mark.parametrize("to", ["052-555-1234", "+972 52 555 1234", "972525551234", "+14155550142"])
def test_real_numbers_are_still_sent(aws: AwsStack, api: ApiClient, graph_fake: GraphSimulator, to: str) -> None:
    result = api.send({"to": to, "type": "template", "template": {"name": "hello_world", "language": {"code": "en"}}})
    assert result.status == 201, result.body


@pytest.mark.parametrize("sender_id", ["🙂", "9" * 200, "٩٧٢٥٢٥٥٥١٢٣٤"], ids=["emoji", "200-digits", "arabic-digits"])
def test_a_sender_id_that_is_no_number_is_stored_and_never_claimed(
    webhook: Any, responder: Responder, table: Any, graph_fake: GraphSimulator, sender_id: str
) -> None:
    # Given a greeting from an id that is not a phone number, next to one from a real lead
    odd = meta.text_message(sender_id, "שלום")
    real = meta.text_message("972525551234", "שלום")
    assert webhook(meta.envelope(meta.message_value([odd, real]))).status == 200
    # When the responder gets them
    run = responder.run()
    # Then nothing fails, the real lead is answered, and the odd one is stored, unclaimed, marked why
    assert run.failed_ids == set()
    answered = [r.body["to"] for r in graph_fake.recorded() if r.accepted and not r.is_read]
    assert answered == ["+972525551234"]
    stored = table.get_message(odd["id"])
    assert stored["text"] == "שלום"
    assert stored["reply_status"] == "not_a_phone_number"
    # The decision lives on the message's reply record, which holds no claim (no state, no owner)
    record = table.table.client.get_item(
        TableName=table.table.name, Key={"PK": {"S": f"MSG#{odd['id']}"}, "SK": {"S": "REPLY"}}
    )["Item"]
    assert "state" not in record and "owner" not in record
    assert responder.queue_is_empty()


def test_a_send_body_without_type_answers_which_types_exist(api: ApiClient, graph_fake: GraphSimulator) -> None:
    # (issue 10, point 9) pydantic would say "Unable to extract tag using discriminator 'type'"
    result = api.send({"to": "052-555-1234", "text": {"body": "שלום"}})
    assert result.status == 400
    assert result.error["field"] == "type"
    assert result.error["message"].startswith("`type` is required")
    assert "text, template" in result.error["message"]
    assert graph_fake.sent_messages() == []
