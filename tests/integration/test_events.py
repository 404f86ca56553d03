"""Every file in events/ is a request its function understands: the real handler, moto, the Graph simulator.

These are the files README's `sam local invoke` lines use; a malformed one would fail there, on Docker,
far from here. Business refusals are fine (a send to a lead who never wrote is 422); validation errors
(400) and crashes (5xx) are not.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from local.apigw import lambda_context
from local.defaults import LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN
from local.graph_simulator import GraphSimulator
from local.handlers import handler_name, load_function_module
from local.http_api import find_route, routes
from local.meta_payloads import DEMO_PHONE_NUMBER_ID, DEMO_WABA_ID
from local.template import ROOT, load_template
from local.template_catalogue import default_catalogue

EVENTS = ROOT / "events"
HTTP_EVENTS = sorted(path.name for path in EVENTS.glob("*.json") if "routeKey" in path.read_text(encoding="utf-8"))
EXPECTED = {
    "webhook_get_handshake.json": 200,
    "webhook_post_text_he.json": 200,
    "webhook_post_button_reply.json": 200,
    "webhook_post_status.json": 200,
    "webhook_post_bad_signature.json": 403,
    "webhook_post_template_status.json": 200,
    "templates_list.json": 200,
    "templates_refresh.json": 200,
    "media_upload.json": 201,
    "conversation_media.json": 404,
}


def _invoke(
    function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator, logical_id: str, event: dict[str, Any]
) -> Any:
    function_env(
        logical_id,
        WHATSAPP_APP_SECRET=LOCAL_APP_SECRET,
        WHATSAPP_VERIFY_TOKEN=LOCAL_VERIFY_TOKEN,
        WHATSAPP_PHONE_NUMBER_IDS=DEMO_PHONE_NUMBER_ID,
        WHATSAPP_BUSINESS_ACCOUNT_ID=DEMO_WABA_ID,
        **graph_fake.environment(),
    )
    graph_fake.set_templates(default_catalogue())
    module = load_function_module(logical_id)
    handler = getattr(module, handler_name(logical_id))
    return handler(event, lambda_context(logical_id))


@pytest.mark.parametrize("name", HTTP_EVENTS)
def test_each_http_event_is_understood_by_its_function(
    aws: Any, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator, name: str
) -> None:
    # Given an event from events/ and the function its route belongs to in template.yaml
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    found = find_route(routes(load_template()), event["requestContext"]["http"]["method"], event["rawPath"])
    assert found is not None, f"{name}: no route {event['routeKey']} in template.yaml"
    assert found[0].route_key == event["routeKey"]
    # When the real handler gets it
    response = _invoke(function_env, graph_fake, found[0].function, event)
    # Then it is answered: exactly as expected for webhooks, without a validation error or a crash otherwise
    body = response.get("body", "")
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    if name in EXPECTED:
        assert response["statusCode"] == EXPECTED[name], body
    assert response["statusCode"] != 400 and response["statusCode"] < 500, body


def test_the_responder_batch_is_processed_without_a_failed_record(
    aws: Any, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator
) -> None:
    path = EVENTS / "responder_sqs_fifo_batch.json"
    if not path.exists():
        pytest.skip("ResponderFunction is not in template.yaml yet")
    response = _invoke(function_env, graph_fake, "ResponderFunction", json.loads(path.read_text(encoding="utf-8")))
    assert response == {"batchItemFailures": []}


def test_the_template_sync_schedule_event_syncs_the_cache(
    aws: Any, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator
) -> None:
    event = json.loads((EVENTS / "templates_sync_schedule.json").read_text(encoding="utf-8"))
    response = _invoke(function_env, graph_fake, "TemplatesFunction", event)
    assert response["synced"] is True and response["listed"] == len(default_catalogue())


def test_the_media_archive_batch_is_processed_without_a_failed_record(
    aws: Any, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator
) -> None:
    # The event's media id is unknown to this simulator: the archiver records it unavailable, never a failure.
    event = json.loads((EVENTS / "media_sqs_archive_batch.json").read_text(encoding="utf-8"))
    assert _invoke(function_env, graph_fake, "MediaFunction", event) == {"batchItemFailures": []}


def test_the_table_stream_batch_publishes_its_facts(aws: Any, function_env: Callable[..., dict[str, str]]) -> None:
    # Given a rule that queues everything on the CRM bus
    sqs, events = aws.client("sqs"), aws.client("events")
    url = sqs.create_queue(QueueName="stream-batch-observer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = aws.ref("CrmEventBus")
    events.put_rule(Name="stream-batch", EventBusName=bus, EventPattern=json.dumps({"source": ["whatsapp-crm"]}))
    events.put_targets(Rule="stream-batch", EventBusName=bus, Targets=[{"Id": "observer", "Arn": arn}])
    # When EventsFunction gets events/events_table_stream_batch.json
    function_env("EventsFunction")
    module = load_function_module("EventsFunction")
    event = json.loads((EVENTS / "events_table_stream_batch.json").read_text(encoding="utf-8"))
    assert module.lambda_handler(event, lambda_context("EventsFunction")) == {"batchItemFailures": []}
    # Then the bus received the message and the opt-out, without the lead's words
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(body["detail-type"] for body in bodies) == ["lead.opted_out", "message.received"]
    assert all("text" not in body["detail"] for body in bodies)
