"""Issue 10, point 5 as behaviour: a deployment owning two numbers (WHATSAPP_PHONE_NUMBER_IDS) stores and
answers only what is addressed to them, and sends only from them; the real webhook, responder and send
handlers against moto's server and the Graph fake."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import AwsStack
from integration.api_client import ApiClient
from integration.conftest import drain
from integration.test_responder import Responder
from local import meta_payloads as meta
from local.graph_simulator import GraphSimulator
from local.handlers import load_function_module

OURS = (meta.DEMO_PHONE_NUMBER_ID, "110022003300")
FOREIGN = "999000111222333"
OWN_LIST = ",".join(OURS)
LEAD = "972525551234"


@pytest.fixture
def own_webhook(aws: AwsStack, function_env: Callable[..., dict[str, str]]) -> Any:
    from conftest import TEST_APP_SECRET
    from integration.conftest import _result
    from local.apigw import http_api_event, lambda_context

    def post(document: Any) -> Any:
        function_env("WebhookFunction", WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST)
        module = load_function_module("WebhookFunction")
        body = meta.wire_bytes(document)
        event = http_api_event("POST", "/webhook", body=body, headers=meta.signed_headers(body, TEST_APP_SECRET))
        return _result(module.lambda_handler(event, lambda_context("WebhookFunction")))

    return post


def test_a_message_to_a_foreign_number_is_stored_nowhere_counted_and_its_id_logged(
    aws: AwsStack, own_webhook: Any, table: Any, log_output: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given Meta delivers, on our WABA's subscription, a message addressed to another deployment's number
    foreign = meta.text_message(LEAD, "שלום")
    ours = meta.text_message("972545550199", "שלום")
    document = meta.envelope(
        meta.message_value([foreign], phone_number_id=FOREIGN),
        meta.message_value([ours], phone_number_id=OURS[1]),
    )
    # When it arrives
    result = own_webhook(document)
    # Then it is acknowledged, but only our number's message is stored and queued
    assert result.status == 200
    assert table.get_message(foreign["id"]) is None
    assert table.get_lead(LEAD) is None
    assert table.get_message(ours["id"]) is not None
    assert [json.loads(m["Body"])["wamid"] for m in drain(aws)] == [ours["id"]]
    # And the foreign id is counted and logged (a phone_number_id is Meta's id of a number, not a person's)
    logged = [json.loads(line) for line in log_output.getvalue().splitlines() if line.startswith("{")]
    [warning] = [line for line in logged if "does not own" in line.get("message", "")]
    assert warning["phone_number_ids"] == [FOREIGN]
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [document["ForeignNumberParts"] for document in emitted] == [[1.0]]


def test_replies_and_sends_go_only_from_our_numbers(
    aws: AwsStack,
    own_webhook: Any,
    function_env: Callable[..., dict[str, str]],
    graph_fake: GraphSimulator,
    table: Any,
) -> None:
    # Given a lead who wrote to our second number
    message = meta.text_message(LEAD, "שלום, מה נשמע?")
    assert own_webhook(meta.envelope(meta.message_value([message], phone_number_id=OURS[1]))).status == 200
    # When the responder answers
    function_env("ResponderFunction", WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST, **graph_fake.environment())
    responder = Responder(aws, load_function_module("ResponderFunction"))
    assert responder.run().failed_ids == set()
    # Then the reply goes from that number
    assert [r.phone_number_id for r in graph_fake.recorded() if r.is_send] == [OURS[1]]
    # And a lead whose latest conversation is with a number not ours (stored before this check) is sent to
    # from our first
    aws.client("dynamodb").update_item(
        TableName=aws.ref("ConversationsTable"),
        Key={"PK": {"S": f"LEAD#{LEAD}"}, "SK": {"S": f"CONV#{FOREIGN}"}},
        UpdateExpression="SET wa_id = :lead, last_inbound_at = :later",
        ExpressionAttributeValues={":lead": {"S": LEAD}, ":later": {"S": "2100-01-01T00:00:00Z"}},
    )
    api = ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST)
    template = {"type": "template", "template": {"name": "hello_world", "language": {"code": "en"}}}
    assert api.send({"to": LEAD, **template}).status == 201
    assert [r.phone_number_id for r in graph_fake.recorded() if r.is_send][-1] == OURS[0]
    assert all(r.phone_number_id in OURS for r in graph_fake.recorded())


def test_a_queued_message_to_a_foreign_number_is_never_answered(
    aws: AwsStack, webhook: Any, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator, table: Any
) -> None:
    # Given a record queued before the webhook checked numbers (the plain webhook fixture has no list)
    message = meta.text_message(LEAD, "שלום")
    assert webhook(meta.envelope(meta.message_value([message], phone_number_id=FOREIGN))).status == 200
    # When a responder that owns OURS handles it
    function_env("ResponderFunction", WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST, **graph_fake.environment())
    run = Responder(aws, load_function_module("ResponderFunction")).run()
    # Then nothing is sent from that number with our token, and the message says why
    assert run.failed_ids == set()
    assert graph_fake.recorded() == []
    assert table.get_message(message["id"])["reply_status"] == "foreign_number"


def test_the_crm_picks_the_sending_number_among_ours_and_a_foreign_one_is_a_400(
    aws: AwsStack, own_webhook: Any, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator
) -> None:
    # Given a lead who wrote to our second number a minute ago
    message = meta.text_message(LEAD, "שלום, מה נשמע?")
    assert own_webhook(meta.envelope(meta.message_value([message], phone_number_id=OURS[1]))).status == 200
    api = ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST)
    text = {"type": "text", "text": {"body": "היי, חוזרים אליך"}}
    # When the CRM names a number that is not ours
    refused = api.send({"to": LEAD, **text, "from_phone_number_id": FOREIGN})
    # Then it is a 400 on that field, and nothing reaches Meta
    assert refused.status == 400, refused.body
    assert (refused.json()["error"]["code"], refused.json()["error"]["field"]) == (
        "validation_error",
        "from_phone_number_id",
    )
    assert graph_fake.recorded() == []
    # And free text from our first number is refused too: the lead's window is open on the second one only
    assert api.send({"to": LEAD, **text, "from_phone_number_id": OURS[0]}).status == 422
    # And without a choice the message goes from the number the lead wrote to, never carrying our field to Meta
    assert api.send({"to": LEAD, **text}).status == 201
    template = {"type": "template", "template": {"name": "hello_world", "language": {"code": "en"}}}
    assert api.send({"to": LEAD, **template, "from_phone_number_id": OURS[0]}).status == 201
    sends = [r for r in graph_fake.recorded() if r.is_send]
    assert [r.phone_number_id for r in sends] == [OURS[1], OURS[0]]
    assert all("from_phone_number_id" not in r.body for r in sends)


def test_an_opt_out_on_one_number_holds_for_every_number_of_the_business(
    aws: AwsStack, own_webhook: Any, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator
) -> None:
    # Given a lead who asked our second number to stop writing
    stop = meta.text_message(LEAD, "תסירו אותי מהרשימה בבקשה")
    assert own_webhook(meta.envelope(meta.message_value([stop], phone_number_id=OURS[1]))).status == 200
    function_env("ResponderFunction", WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST, **graph_fake.environment())
    assert Responder(aws, load_function_module("ResponderFunction")).run().failed_ids == set()
    confirmations = len([r for r in graph_fake.recorded() if r.is_send])
    # When the lead then writes to our first number, and the CRM tries a template from it
    hello = meta.text_message(LEAD, "שלום")
    assert own_webhook(meta.envelope(meta.message_value([hello], phone_number_id=OURS[0]))).status == 200
    function_env("ResponderFunction", WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST, **graph_fake.environment())
    assert Responder(aws, load_function_module("ResponderFunction")).run().failed_ids == set()
    api = ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST)
    template = {"type": "template", "template": {"name": "hello_world", "language": {"code": "en"}}}
    refused = api.send({"to": LEAD, **template, "from_phone_number_id": OURS[0]})
    # Then neither the bot nor the CRM writes to them from any number: the opt-out is the business's
    assert refused.status == 409, refused.body
    assert len([r for r in graph_fake.recorded() if r.is_send]) == confirmations
