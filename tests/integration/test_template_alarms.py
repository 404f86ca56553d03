"""template.yaml's alarms for the auto-reply path: an operator hears when leads go unanswered.

Issue 3 asks for three CloudWatch alarms: the dead-letter queue is not empty, Meta rejected the access
token, the responder crashed. An alarm on a metric nobody emits never fires, so the token alarm is checked
against what the responder really emits when Meta answers 190, run with the environment the template gives
it (service name and metrics namespace). The SQS event source (batch 10, ReportBatchItemFailures) is
pinned in test_template_resources.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from typing import Any

import pytest

from local.template import ROOT, load_template, resources_of_type

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
ALARMS: dict[str, dict[str, Any]] = {
    logical_id: resource["Properties"]
    for logical_id, resource in resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm").items()
}

# The responder handling one greeting while Meta rejects the access token, with in-memory store and
# sender (the fakes of test_respond.py); it prints every line the handler wrote, EMF metrics included.
_TOKEN_REJECTED_RUN = r"""
import json
from datetime import UTC, datetime

from local import meta_payloads as meta
from local.apigw import lambda_context
from local.handlers import load_function_module
from unit.test_respond import LEAD, FakeSender, FakeStore
from whatsapp_crm.graph.errors import AuthError

now = datetime.now(UTC)
message = meta.text_message(LEAD, "שלום", timestamp=int(now.timestamp()))
queued = {
    "wamid": message["id"],
    "wa_id": LEAD,
    "phone_number_id": meta.DEMO_PHONE_NUMBER_ID,
    "display_phone_number": meta.DEMO_DISPLAY_NUMBER,
    "profile_name": "Dana",
    "timestamp": int(message["timestamp"]),
    "received_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    "message": message,
}
millis = str(int(now.timestamp() * 1000))
record = {
    "messageId": "2e1424d4-f796-459a-8184-9c92662be6da",
    "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
    "body": json.dumps(queued, ensure_ascii=False),
    "attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": millis,
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": millis,
        "SequenceNumber": "18849496460467696128",
        "MessageGroupId": LEAD,
        "MessageDeduplicationId": message["id"],
    },
    "messageAttributes": {},
    "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
    "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:inbound.fifo",
    "awsRegion": "eu-west-1",
}
rejected = AuthError(code=190, title="Invalid OAuth access token", http_status=401)
sender = FakeSender(read_errors=[rejected], send_errors=[rejected])
module = load_function_module("ResponderFunction")
response = module.handle({"Records": [record]}, lambda_context("ResponderFunction"), store=FakeStore(), sender=sender)
print("HANDLER-RESPONSE " + json.dumps(response))
"""


def _responder_environment() -> dict[str, Any]:
    shared = TEMPLATE.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = RESOURCES["ResponderFunction"]["Properties"].get("Environment", {}).get("Variables", {})
    return {**shared, **own}


@cache
def _emitted_when_the_token_is_rejected() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The handler's response and its EMF documents, run in a fresh interpreter (Powertools reads the
    namespace and service once, when the module is imported) with the template's Powertools settings."""
    deployed = _responder_environment()
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(("POWERTOOLS_", "AWS_ENDPOINT"))
    }
    environment.update(
        POWERTOOLS_SERVICE_NAME=deployed["POWERTOOLS_SERVICE_NAME"],
        POWERTOOLS_METRICS_NAMESPACE=deployed["POWERTOOLS_METRICS_NAMESPACE"],
        POWERTOOLS_TRACE_DISABLED="true",
        TABLE_NAME="conversations",
        INBOUND_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/123456789012/inbound.fifo",
        AWS_DEFAULT_REGION="eu-west-1",
        PYTHONPATH=os.pathsep.join(str(ROOT / part) for part in ("layers/whatsapp", "tests", ".")),
    )
    completed = subprocess.run(
        [sys.executable, "-c", _TOKEN_REJECTED_RUN],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    [response_line] = [line for line in lines if line.startswith("HANDLER-RESPONSE ")]
    response = json.loads(response_line.removeprefix("HANDLER-RESPONSE "))
    documents = [json.loads(line) for line in lines if line.startswith("{") and '"_aws"' in line]
    return response, documents


def _emitted_series(documents: list[dict[str, Any]]) -> set[tuple[str, str, frozenset[tuple[str, str]]]]:
    """(namespace, metric name, dimensions) of every CloudWatch series the EMF documents put a value in."""
    series: set[tuple[str, str, frozenset[tuple[str, str]]]] = set()
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = frozenset((name, str(document[name])) for name in dimension_set)
                for metric in directive["Metrics"]:
                    series.add((directive["Namespace"], metric["Name"], dimensions))
    return series


def _breaches(alarm: dict[str, Any], value: float) -> bool:
    """Whether one period at `value` puts the alarm in ALARM."""
    threshold = float(alarm["Threshold"])
    return {
        "GreaterThanThreshold": value > threshold,
        "GreaterThanOrEqualToThreshold": value >= threshold,
        "LessThanThreshold": value < threshold,
        "LessThanOrEqualToThreshold": value <= threshold,
    }[alarm["ComparisonOperator"]]


def _alarms_on(namespace: str, metric_name: str) -> list[dict[str, Any]]:
    return [
        alarm
        for alarm in ALARMS.values()
        if alarm.get("Namespace") == namespace and alarm.get("MetricName") == metric_name
    ]


def _dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {dimension["Name"]: dimension["Value"] for dimension in alarm.get("Dimensions", [])}


def _literal_series(alarm: dict[str, Any]) -> tuple[Any, Any, frozenset[tuple[str, str]]] | None:
    """The series an alarm with plain-text dimensions watches (None when a dimension is a !Ref or !GetAtt:
    those name AWS resources, never a series the code emits)."""
    dimensions = _dimensions(alarm)
    if not all(isinstance(value, str) for value in dimensions.values()):
        return None
    return alarm.get("Namespace"), alarm.get("MetricName"), frozenset(dimensions.items())


def _fires_on_the_first_occurrence(alarm: dict[str, Any]) -> None:
    assert alarm["EvaluationPeriods"] == 1
    assert alarm.get("DatapointsToAlarm", 1) == 1
    assert _breaches(alarm, 1) and not _breaches(alarm, 0)


def test_a_message_in_the_dead_letter_queue_raises_an_alarm() -> None:
    # Given the queue the inbound queue's failed records end up in after 5 tries
    redrive = RESOURCES["InboundQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
    (dead_letter_queue, attribute) = redrive["Fn::GetAtt"]
    assert (dead_letter_queue, attribute) == ("InboundDeadLetterQueue", "Arn")
    # When one unanswered message lands there, then an alarm on that queue's visible messages fires
    [alarm] = [
        alarm
        for alarm in _alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        if _dimensions(alarm) == {"QueueName": {"Fn::GetAtt": [dead_letter_queue, "QueueName"]}}
    ]
    assert alarm["Statistic"] in ("Maximum", "Sum", "Average")
    _fires_on_the_first_occurrence(alarm)


def test_a_media_request_in_the_media_dead_letter_queue_raises_an_alarm() -> None:
    redrive = RESOURCES["MediaQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
    (dead_letter_queue, _) = redrive["Fn::GetAtt"]
    [alarm] = [
        alarm
        for alarm in _alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        if _dimensions(alarm) == {"QueueName": {"Fn::GetAtt": [dead_letter_queue, "QueueName"]}}
    ]
    _fires_on_the_first_occurrence(alarm)


def test_the_token_alarm_watches_the_series_the_responder_emits_when_meta_rejects_the_token() -> None:
    # Given the responder deployed with the template's service name and namespace
    # When Meta answers 190 (the access token is invalid or expired)
    response, documents = _emitted_when_the_token_is_rejected()
    # Then the record fails (SQS retries it once the token is replaced) and a series counts the rejection
    assert len(response["batchItemFailures"]) == 1
    series = _emitted_series(documents)
    token_series = [entry for entry in series if entry[1] == "TokenErrors"]
    assert token_series, series
    # And exactly one template alarm watches that very series (namespace, metric and all its dimensions)
    watching = [alarm for alarm in ALARMS.values() if _literal_series(alarm) in token_series]
    assert len(watching) == 1, (token_series, [(a.get("Namespace"), a.get("MetricName")) for a in ALARMS.values()])
    [alarm] = watching
    # And a single rejection in a period fires it
    assert alarm["Statistic"] == "Sum"
    _fires_on_the_first_occurrence(alarm)


def test_a_responder_crash_raises_an_alarm() -> None:
    [alarm] = [
        alarm
        for alarm in _alarms_on("AWS/Lambda", "Errors")
        if _dimensions(alarm) == {"FunctionName": {"Ref": "ResponderFunction"}}
    ]
    assert alarm["Statistic"] == "Sum"
    _fires_on_the_first_occurrence(alarm)


@pytest.mark.parametrize(
    ("namespace", "metric_name"),
    [("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("WhatsAppCrm", "TokenErrors"), ("AWS/Lambda", "Errors")],
    ids=["dead-letters", "token-errors", "responder-errors"],
)
def test_each_alarm_notifies_the_operations_topic_that_on_call_subscribes_to(namespace: str, metric_name: str) -> None:
    # Given the alarms on that metric (their exact series are checked above)
    alarms = _alarms_on(namespace, metric_name)
    assert alarms
    for alarm in alarms:
        # Then going into ALARM publishes to an SNS topic of this stack
        [action] = alarm["AlarmActions"]
        assert set(action) == {"Ref"}
        topic = action["Ref"]
        assert RESOURCES[topic]["Type"] == "AWS::SNS::Topic"
        # And the stack outputs that topic, so an operator can subscribe an address or a pager to it
        assert {"Ref": topic} in [output["Value"] for output in TEMPLATE["Outputs"].values()]


def test_a_webhook_part_set_aside_as_unstorable_raises_an_alarm() -> None:
    # Given the queue the webhook sets unstorable parts aside on (issue 10)
    environment = RESOURCES["WebhookFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["WEBHOOK_DEAD_LETTER_QUEUE_URL"] == {"Ref": "WebhookDeadLetterQueue"}
    # When one part lands there, then an alarm on that queue's visible messages fires
    [alarm] = [
        alarm
        for alarm in _alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        if _dimensions(alarm) == {"QueueName": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "QueueName"]}}
    ]
    _fires_on_the_first_occurrence(alarm)
