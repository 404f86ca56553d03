"""events/ is what scripts/generate_events.py writes, and its webhooks verify with the documented local secret."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from functools import cache
from types import ModuleType
from typing import Any

import pytest

from local.defaults import LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN
from local.template import ROOT
from whatsapp_crm.signature import SignatureVerdict, verify

EVENTS = ROOT / "events"


@cache
def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_events", ROOT / "scripts" / "generate_events.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_events"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event["body"]
    return base64.b64decode(body) if event["isBase64Encoded"] else body.encode("utf-8")


def test_events_are_exactly_what_the_generator_writes() -> None:
    # If this fails: .venv/bin/python scripts/generate_events.py (and commit events/)
    generated = _generator().generate()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in EVENTS.glob("*.json")}
    assert sorted(on_disk) == sorted(generated)
    for name, text in generated.items():
        assert on_disk[name] == text, f"events/{name} is out of date"


@pytest.mark.parametrize(
    "name", ["webhook_post_text_he.json", "webhook_post_button_reply.json", "webhook_post_status.json"]
)
def test_each_signed_webhook_verifies_with_the_documented_local_secret(name: str) -> None:
    event = _event(name)
    verdict = verify(_raw_body(event), event["headers"]["x-hub-signature-256"], LOCAL_APP_SECRET)
    assert verdict is SignatureVerdict.VALID


def test_the_bad_signature_event_does_not_verify() -> None:
    event = _event("webhook_post_bad_signature.json")
    verdict = verify(_raw_body(event), event["headers"]["x-hub-signature-256"], LOCAL_APP_SECRET)
    assert verdict is SignatureVerdict.MISMATCH


def test_the_hebrew_webhook_carries_the_demo_sentence_in_metas_wire_encoding() -> None:
    event = _event("webhook_post_text_he.json")
    raw = _raw_body(event)
    assert raw.isascii()  # Meta escapes every non-ASCII character
    message = json.loads(raw)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["text"]["body"] == "שלום, אפשר לקבוע פגישה מחר?"


def test_the_handshake_event_uses_the_local_verify_token() -> None:
    event = _event("webhook_get_handshake.json")
    assert event["queryStringParameters"]["hub.verify_token"] == LOCAL_VERIFY_TOKEN
    assert event["queryStringParameters"]["hub.mode"] == "subscribe"


def test_the_responder_batch_keeps_fifo_order_and_attributes() -> None:
    if not (EVENTS / "responder_sqs_fifo_batch.json").exists():
        pytest.skip("ResponderFunction is not in template.yaml yet")
    records = _event("responder_sqs_fifo_batch.json")["Records"]
    groups = [record["attributes"]["MessageGroupId"] for record in records]
    sequence = [int(record["attributes"]["SequenceNumber"]) for record in records]
    assert sequence == sorted(sequence)
    assert groups[0] == groups[1] != groups[2]
    for record in records:
        body = json.loads(record["body"])
        assert record["attributes"]["MessageDeduplicationId"] == body["wamid"] == body["message"]["id"]
        assert record["eventSourceARN"].endswith(".fifo")


def test_every_function_in_the_template_has_at_least_one_event() -> None:
    from local.template import load_template, resources_of_type

    functions = set(resources_of_type(load_template(), "AWS::Serverless::Function"))
    generator = _generator()
    covered = {spec.function for spec in generator.HTTP_EVENTS if f"{spec.name}.json" in generator.generate()}
    if (EVENTS / "responder_sqs_fifo_batch.json").exists():
        covered.add("ResponderFunction")
    if (EVENTS / "events_table_stream_batch.json").exists():
        covered.add("EventsFunction")
    assert functions <= covered, f"no event in events/ for {sorted(functions - covered)}"


def test_readmes_sam_local_invoke_lines_name_every_event_with_its_function() -> None:
    import re

    from local.http_api import find_route, routes
    from local.template import load_template

    lines = re.findall(r"sam local invoke (\w+) -e events/(\S+)", (ROOT / "README.md").read_text(encoding="utf-8"))
    listed = {name: function for function, name in lines}
    assert sorted(listed) == sorted(path.name for path in EVENTS.glob("*.json"))
    table = routes(load_template())
    for name, function in listed.items():
        event = _event(name)
        if "Records" in event:
            # An SQS batch or a table stream batch: the function whose SQS or DynamoDB event reads it.
            kind = "DynamoDB" if event["Records"][0].get("eventSource") == "aws:dynamodb" else "SQS"
            sources = load_template()["Resources"][function]["Properties"]["Events"].values()
            assert any(source["Type"] == kind for source in sources), name
            continue
        if event.get("detail-type") == "Scheduled Event":
            # An EventBridge schedule: the function whose Schedule event it stands for.
            schedules = load_template()["Resources"][function]["Properties"]["Events"].values()
            assert any(schedule["Type"] == "Schedule" for schedule in schedules), name
            continue
        found = find_route(table, event["requestContext"]["http"]["method"], event["rawPath"])
        assert found is not None and found[0].function == function, name
