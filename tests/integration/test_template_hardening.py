"""Issue 10, point 7: template.yaml's least privilege and alarms, pinned.

CloudFormation and IAM are not emulated here, so each promise is checked on the template itself: which keys
of the table each function may touch, which series each alarm watches (against the names the code emits),
and that every alarm reaches an encrypted topic CloudWatch is allowed to publish to.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from local.template import ROOT, load_template, resources_of_type

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
ALARMS = {
    logical_id: r["Properties"] for logical_id, r in resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm").items()
}
GLOBAL_ENV = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
TABLE_ARN = {"Fn::GetAtt": ["ConversationsTable", "Arn"]}


def _statements(logical_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in RESOURCES[logical_id]["Properties"].get("Policies", []):
        if isinstance(policy, dict):
            statements += policy.get("Statement", [])
    return statements


def _actions(statement: dict[str, Any]) -> set[str]:
    granted = statement.get("Action", [])
    return {granted} if isinstance(granted, str) else set(granted)


def _leading_keys(statement: dict[str, Any]) -> set[str] | None:
    condition = statement.get("Condition", {})
    for operator in ("ForAllValues:StringLike", "ForAllValues:StringEquals"):
        keys = condition.get(operator, {}).get("dynamodb:LeadingKeys")
        if keys is not None:
            return {keys} if isinstance(keys, str) else set(keys)
    return None


# --- least privilege --------------------------------------------------------------------------------------

# The partition keys each function writes (store/keys.py, store/idempotency.py, ratelimit.py).
WRITES = {
    "WebhookFunction": {"MSG#*", "LEAD#*", "STATS#*", "TEMPLATES"},
    "ResponderFunction": {"MSG#*", "LEAD#*", "STATS#*"},
    "SendFunction": {"LEAD#*", "MSG#*", "STATS#*", "RATE#*", "IDEM#*"},
}


@pytest.mark.parametrize("logical_id", sorted(WRITES))
def test_table_writes_are_bounded_to_the_key_prefixes_the_function_writes(logical_id: str) -> None:
    writes = [
        statement
        for statement in _statements(logical_id)
        if _actions(statement) & {"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
        and statement.get("Resource") == TABLE_ARN
    ]
    assert writes, f"{logical_id} writes the table somewhere"
    for statement in writes:
        assert _leading_keys(statement) == WRITES[logical_id], statement.get("Sid")


def test_no_function_may_update_the_whole_table_without_a_condition() -> None:
    for logical_id in resources_of_type(TEMPLATE, "AWS::Serverless::Function"):
        for statement in _statements(logical_id):
            if "dynamodb:UpdateItem" in _actions(statement) and statement.get("Resource") == TABLE_ARN:
                assert statement.get("Condition"), f"{logical_id}/{statement.get('Sid')} may update any item"


def test_every_written_prefix_is_one_the_code_uses() -> None:
    # A bound that names a prefix the code never writes would hide a typo that denies a real write.
    sources = "\n".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "layers" / "whatsapp" / "whatsapp_crm").rglob("*.py")
    )
    for prefixes in WRITES.values():
        for prefix in prefixes:
            assert re.search(rf"[\"']{re.escape(prefix.rstrip('*'))}", sources), prefix


# --- the access token out of the public webhook's reach --------------------------------------------------


def _readable_secrets(logical_id: str) -> set[str]:
    policies = RESOURCES[logical_id]["Properties"].get("Policies", [])
    return {
        policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]["Ref"]
        for policy in policies
        if isinstance(policy, dict) and "AWSSecretsManagerGetSecretValuePolicy" in policy
    }


def test_the_public_webhook_cannot_read_the_access_token() -> None:
    # The webhook may read only the secret with the app secret and verify token...
    assert _readable_secrets("WebhookFunction") == {"WhatsAppSecret"}
    environment = RESOURCES["WebhookFunction"]["Properties"]["Environment"]["Variables"]
    assert "WHATSAPP_ACCESS_TOKEN_SECRET_ID" not in {**GLOBAL_ENV, **environment}
    assert not any("secretsmanager" in str(statement) for statement in _statements("WebhookFunction"))
    # ...which holds no access token; the token has a secret of its own
    template = RESOURCES["WhatsAppSecret"]["Properties"]["GenerateSecretString"]["SecretStringTemplate"]
    assert "access_token" not in template
    assert "access_token" in RESOURCES["WhatsAppAccessTokenSecret"]["Properties"]["SecretString"]


@pytest.mark.parametrize(
    "logical_id", ["ResponderFunction", "SendFunction", "ConversationsFunction", "TemplatesFunction"]
)
def test_the_functions_that_call_graph_read_the_token_secret(logical_id: str) -> None:
    assert _readable_secrets(logical_id) == {"WhatsAppSecret", "WhatsAppAccessTokenSecret"}
    environment = RESOURCES[logical_id]["Properties"]["Environment"]["Variables"]
    assert environment["WHATSAPP_ACCESS_TOKEN_SECRET_ID"] == {"Ref": "WhatsAppAccessTokenSecret"}


# --- the alarm topic ---------------------------------------------------------------------------------------


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    topic = RESOURCES["OperationsAlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = RESOURCES["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    [cloudwatch] = [
        statement
        for statement in key["KeyPolicy"]["Statement"]
        if statement.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert cloudwatch["Effect"] == "Allow"


def test_alarm_email_subscribes_the_topic_only_when_given() -> None:
    parameter = TEMPLATE["Parameters"]["AlarmEmail"]
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], "oncall@agency.co.il")
    assert re.fullmatch(parameter["AllowedPattern"], "")
    assert not re.fullmatch(parameter["AllowedPattern"], "not an address")
    assert TEMPLATE["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    [subscription] = resources_of_type(TEMPLATE, "AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "OperationsAlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


def test_every_alarm_notifies_the_encrypted_topic() -> None:
    assert len(ALARMS) >= 8
    for logical_id, alarm in ALARMS.items():
        assert alarm["AlarmActions"] == [{"Ref": "OperationsAlarmTopic"}], logical_id
        assert alarm["TreatMissingData"] == "notBreaching", logical_id


# --- the alarms the issue asks for -------------------------------------------------------------------------


def _alarm(namespace: str, metric: str, dimensions: dict[str, Any]) -> dict[str, Any]:
    [found] = [
        alarm
        for alarm in ALARMS.values()
        if alarm.get("Namespace") == namespace
        and alarm.get("MetricName") == metric
        and {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])} == dimensions
    ]
    return found


def test_webhook_not_durable_alarm_watches_the_series_the_webhook_emits() -> None:
    # The webhook counts WebhookNotDurable whenever it answers Meta 500 (functions/webhook/app.py), in the
    # template's namespace with Powertools' service dimension.
    assert 'name="WebhookNotDurable"' in (ROOT / "functions" / "webhook" / "app.py").read_text(encoding="utf-8")
    alarm = _alarm(
        GLOBAL_ENV["POWERTOOLS_METRICS_NAMESPACE"],
        "WebhookNotDurable",
        {"service": GLOBAL_ENV["POWERTOOLS_SERVICE_NAME"]},
    )
    # Sustained, not one blip Meta's retry absorbs: two of three 5-minute periods with any 500
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == ("Sum", 0, "GreaterThanThreshold")
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 2)


def test_a_send_function_crash_raises_an_alarm() -> None:
    alarm = _alarm("AWS/Lambda", "Errors", {"FunctionName": {"Ref": "SendFunction"}})
    assert (alarm["Statistic"], alarm["Threshold"], alarm["EvaluationPeriods"]) == ("Sum", 0, 1)


def test_api_gateway_5xx_raise_an_alarm() -> None:
    alarm = _alarm("AWS/ApiGateway", "5xx", {"ApiId": {"Ref": "HttpApi"}})
    assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 4


def test_dynamodb_throttles_of_the_table_and_its_index_raise_an_alarm() -> None:
    [alarm] = [alarm for alarm in ALARMS.values() if "Metrics" in alarm]
    watched = {
        (
            query["MetricStat"]["Metric"]["MetricName"],
            tuple(sorted((d["Name"], str(d["Value"])) for d in query["MetricStat"]["Metric"]["Dimensions"])),
        )
        for query in alarm["Metrics"]
        if "MetricStat" in query
    }
    table = ("TableName", str({"Ref": "ConversationsTable"}))
    assert watched == {
        ("ReadThrottleEvents", (table,)),
        ("WriteThrottleEvents", (table,)),
        ("WriteThrottleEvents", (("GlobalSecondaryIndexName", "GSI2"), table)),
    }
    [expression] = [query for query in alarm["Metrics"] if query.get("ReturnData")]
    assert set(re.findall(r"[a-z]+", expression["Expression"])) == {
        query["Id"] for query in alarm["Metrics"] if "MetricStat" in query
    }
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
