"""template.yaml's CRM events: what a deploy must give EventsFunction for "once per fact, never lost" to hold.

The behaviour itself runs against moto in test_crm_events.py; these pin what moto cannot check: the stream's
view type, the event source mapping's failure handling, the filter, least privilege and the alarms.
"""

from __future__ import annotations

import json
from typing import Any

from local.template import load_template

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
FUNCTION = RESOURCES["EventsFunction"]["Properties"]


def test_the_table_streams_old_and_new_images() -> None:
    # Facts are changes between images: without the old image a status move cannot be told from a repeat.
    spec = RESOURCES["ConversationsTable"]["Properties"]["StreamSpecification"]
    assert spec == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_stream_mapping_reports_partial_failures_bisects_and_keeps_what_it_gives_up() -> None:
    [source] = [event["Properties"] for event in FUNCTION["Events"].values() if event["Type"] == "DynamoDB"]
    assert source["Stream"] == {"Fn::GetAtt": ["ConversationsTable", "StreamArn"]}
    assert source["StartingPosition"] == "TRIM_HORIZON"  # a first deploy publishes from the stream's start
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["BisectBatchOnFunctionError"] is True
    assert 0 < source["MaximumRetryAttempts"] <= 10
    assert source["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]},
    }
    assert source["BatchSize"] <= 100 and source["MaximumBatchingWindowInSeconds"] >= 1


def test_only_messages_leads_meeting_replies_and_agents_conversations_invoke_the_function() -> None:
    [source] = [event["Properties"] for event in FUNCTION["Events"].values() if event["Type"] == "DynamoDB"]
    patterns = [json.loads(item["Pattern"]) for item in source["FilterCriteria"]["Filters"]]
    allowed = {key for pattern in patterns for key in pattern["dynamodb"]["Keys"]["SK"]["S"] if isinstance(key, str)}
    assert {"MSG", "LEAD"} <= allowed
    assert not allowed & {"RATE", "IDEM", "SYNC", "MEDIA"}
    # A reply record (the responder's decision) is mapped only when it carries a meeting request
    # (meeting.requested): every other claim, lease and close stays out of the function's invocations.
    [replies] = [pattern for pattern in patterns if pattern["dynamodb"]["Keys"]["SK"]["S"] == ["REPLY"]]
    assert replies["dynamodb"]["NewImage"] == {"intent": {"S": ["meeting"]}}
    # A conversation (the lead with one of our numbers, changed by every message) only once an agent wrote
    # in it: its one fact is a takeover (issue 14).
    [conversations] = [
        pattern for pattern in patterns if pattern["dynamodb"]["Keys"]["SK"]["S"] == [{"prefix": "CONV#"}]
    ]
    assert conversations["dynamodb"]["NewImage"] == {"last_human_outbound_at": {"S": [{"exists": True}]}}


def test_the_function_may_put_events_on_its_bus_and_dead_letters_on_its_queue_and_nothing_else() -> None:
    policies = FUNCTION["Policies"]
    assert {"EventBridgePutEventsPolicy": {"EventBusName": {"Ref": "CrmEventBus"}}} in policies
    assert {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["EventsDeadLetterQueue", "QueueName"]}}} in policies
    assert len(policies) == 2  # no table access, no secret: it reads the stream only (SAM adds that)
    env = FUNCTION["Environment"]["Variables"]
    assert env["CRM_EVENT_BUS_NAME"] == {"Ref": "CrmEventBus"}
    assert env["EVENTS_INCLUDE_TEXT"] == {"Ref": "CrmEventsIncludeText"}
    assert TEMPLATE["Parameters"]["CrmEventsIncludeText"]["Default"] == "false"


def test_the_example_rule_is_disabled_and_queues_opt_outs() -> None:
    rule = RESOURCES["OptedOutLeadsRule"]["Properties"]
    assert rule["State"] == "DISABLED"
    assert rule["EventBusName"] == {"Ref": "CrmEventBus"}
    assert rule["EventPattern"] == {"source": ["whatsapp-crm"], "detail-type": ["lead.opted_out"]}
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["OptedOutLeadsQueue", "Arn"]}
    statement = RESOURCES["OptedOutLeadsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["OptedOutLeadsRule", "Arn"]}


def test_set_aside_and_late_events_page_someone() -> None:
    dead_letters = RESOURCES["EventsDeadLetterAlarm"]["Properties"]
    assert dead_letters["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "QueueName"]}
    behind = RESOURCES["EventsStreamBehindAlarm"]["Properties"]
    assert (behind["MetricName"], behind["Dimensions"][0]["Value"]) == ("IteratorAge", {"Ref": "EventsFunction"})
    for alarm in (dead_letters, behind):
        assert alarm["AlarmActions"] == [{"Ref": "OperationsAlarmTopic"}]
