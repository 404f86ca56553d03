"""template.yaml keeps the promises the code relies on: durable storage, a FIFO hand-off with a dead-letter
queue, least-privilege functions, and the names other parts (and external tests) use.

`sam validate --lint` checks the template is deployable; these check it is the one we designed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from local.template import load_template

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]


def _properties(logical_id: str) -> dict[str, Any]:
    return dict(RESOURCES[logical_id].get("Properties") or {})


def _function_environment(logical_id: str) -> dict[str, Any]:
    shared = TEMPLATE.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = _properties(logical_id).get("Environment", {}).get("Variables", {})
    return {**shared, **own}


def _granted_actions(logical_id: str) -> set[str]:
    actions: set[str] = set()
    for policy in _properties(logical_id).get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            granted = statement.get("Action", [])
            actions.update([granted] if isinstance(granted, str) else granted)
    return actions


@pytest.mark.parametrize(
    ("logical_id", "resource_type"),
    [
        ("WebhookFunction", "AWS::Serverless::Function"),
        ("ResponderFunction", "AWS::Serverless::Function"),
        ("SendFunction", "AWS::Serverless::Function"),
        ("ConversationsFunction", "AWS::Serverless::Function"),
        ("ConversationsTable", "AWS::DynamoDB::Table"),
        ("InboundQueue", "AWS::SQS::Queue"),
        ("InboundDeadLetterQueue", "AWS::SQS::Queue"),
        ("WhatsAppSecret", "AWS::SecretsManager::Secret"),
        ("HttpApi", "AWS::Serverless::HttpApi"),
    ],
)
def test_the_contract_names_exist_with_their_types(logical_id: str, resource_type: str) -> None:
    assert RESOURCES[logical_id]["Type"] == resource_type


def test_every_function_reads_the_contract_environment() -> None:
    for logical_id in ("WebhookFunction", "ResponderFunction", "SendFunction", "ConversationsFunction"):
        environment = _function_environment(logical_id)
        for name in ("TABLE_NAME", "WHATSAPP_PHONE_NUMBER_IDS", "WHATSAPP_SECRET_ID", "GRAPH_API_BASE_URL"):
            assert name in environment, (logical_id, name)
        assert environment["GRAPH_API_VERSION"] == {"Ref": "GraphApiVersion"}
    assert TEMPLATE["Parameters"]["GraphApiVersion"]["Default"] == "v22.0"
    assert "INBOUND_QUEUE_URL" in _function_environment("WebhookFunction")


def test_the_waba_id_has_no_default_so_a_deploy_without_it_is_refused() -> None:
    # Given the template's WhatsAppBusinessAccountId (the templates are listed from it)
    parameter = TEMPLATE["Parameters"]["WhatsAppBusinessAccountId"]
    # Then CloudFormation refuses a deploy that does not give it, and accepts digits only
    assert "Default" not in parameter
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch("102290129340398")
    assert not pattern.fullmatch("")
    assert not pattern.fullmatch("WABA 1022")
    # And the send API (templates are checked before sending) reads it from its environment
    assert _function_environment("SendFunction")["WHATSAPP_BUSINESS_ACCOUNT_ID"] == {"Ref": "WhatsAppBusinessAccountId"}


def test_the_functions_run_python_3_13_on_arm64() -> None:
    function_globals = TEMPLATE["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]


def test_the_table_is_on_demand_recoverable_encrypted_and_expires_counters() -> None:
    table = _properties("ConversationsTable")
    # On-demand unless the deployer asks for provisioned capacity (docs/cost.md compares the two)
    assert table["BillingMode"] == {"Ref": "TableBillingMode"}
    assert TEMPLATE["Parameters"]["TableBillingMode"]["Default"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_ending_the_migration_leaves_the_thread_index_as_it_is() -> None:
    # CloudFormation cannot change an index's projection: the deploy with KeepLegacyIndex=false after the
    # migration (docs/table-design.md) would fail if GSI2 were defined differently in the two branches.
    condition, with_legacy, without_legacy = _properties("ConversationsTable")["GlobalSecondaryIndexes"]["Fn::If"]
    assert condition == "KeepsLegacyIndex"
    legacy_gsi2 = next(index for index in with_legacy if index["IndexName"] == "GSI2")
    assert [index["IndexName"] for index in without_legacy] == ["GSI2"]
    assert without_legacy[0] == legacy_gsi2
    # Only attributes written once per item: a status, an annotation or a lead update never rewrites the entry.
    assert legacy_gsi2["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["wamid", "direction", "biz_opaque_callback_data", "last_phone_number_id"],
    }


def test_the_inbound_queue_is_a_high_throughput_fifo_with_a_fifo_dead_letter_queue() -> None:
    queue, dead_letters = _properties("InboundQueue"), _properties("InboundDeadLetterQueue")
    assert queue["FifoQueue"] is True and dead_letters["FifoQueue"] is True
    assert queue["SqsManagedSseEnabled"] is True and dead_letters["SqsManagedSseEnabled"] is True
    assert (queue["DeduplicationScope"], queue["FifoThroughputLimit"]) == ("messageGroup", "perMessageGroupId")
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["InboundDeadLetterQueue", "Arn"]}


def test_a_retried_record_returns_only_after_the_responder_could_have_finished() -> None:
    # AWS's advice for an SQS event source: visibility timeout at least six times the function's timeout.
    responder_timeout = _properties("ResponderFunction").get("Timeout") or TEMPLATE["Globals"]["Function"]["Timeout"]
    assert _properties("InboundQueue")["VisibilityTimeout"] >= 6 * responder_timeout


def test_the_responder_reads_the_queue_in_batches_reporting_item_failures() -> None:
    (source,) = [event for event in _properties("ResponderFunction")["Events"].values() if event["Type"] == "SQS"]
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": ["InboundQueue", "Arn"]}
    assert source["Properties"]["BatchSize"] == 10
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_http_api_is_throttled_by_default() -> None:
    route_settings = _properties("HttpApi")["DefaultRouteSettings"]
    assert route_settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert route_settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    # At about 4 requests per answered message, the default must carry Meta's default 80 messages/s.
    assert TEMPLATE["Parameters"]["ApiThrottlingRateLimit"]["Default"] >= 4 * 80


# What each function's code calls (bench/cost_profile.py meters them), and nothing more.
EXPECTED_ACTIONS = {
    "WebhookFunction": {"dynamodb:PutItem", "dynamodb:UpdateItem"},
    # sqs:SendMessage: a record that cannot be parsed goes to the inbound DLQ at once (issue 10).
    "ResponderFunction": {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
    },
    "MediaFunction": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "s3:PutObject", "s3:GetObject"},
    "SendFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"},
    "ConversationsFunction": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
    "TemplatesFunction": {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    },
}


@pytest.mark.parametrize("logical_id", sorted(EXPECTED_ACTIONS))
def test_each_function_is_granted_only_what_it_calls(logical_id: str) -> None:
    assert _granted_actions(logical_id) == EXPECTED_ACTIONS[logical_id]
    assert all(
        set(policy) <= {"Statement", "SQSSendMessagePolicy", "AWSSecretsManagerGetSecretValuePolicy"}
        for policy in _properties(logical_id)["Policies"]
    ), "a broad managed policy would grant more than the statements list"


def test_only_the_webhook_may_enqueue_and_only_read_access_reaches_the_secret() -> None:
    senders = [
        logical_id
        for logical_id in EXPECTED_ACTIONS
        if any("SQSSendMessagePolicy" in policy for policy in _properties(logical_id)["Policies"])
    ]
    assert sorted(senders) == ["ResponderFunction", "WebhookFunction"]
    # The responder may only hand media messages to the archiver, never feed the inbound queue
    (responder_queue,) = [
        policy["SQSSendMessagePolicy"]
        for policy in _properties("ResponderFunction")["Policies"]
        if "SQSSendMessagePolicy" in policy
    ]
    assert responder_queue == {"QueueName": {"Fn::GetAtt": ["MediaQueue", "QueueName"]}}
    # Read access only; the access token's own secret only where Graph is called (issue 10: not the webhook)
    for logical_id in EXPECTED_ACTIONS:
        secret_policies = [
            policy["AWSSecretsManagerGetSecretValuePolicy"]
            for policy in _properties(logical_id)["Policies"]
            if "AWSSecretsManagerGetSecretValuePolicy" in policy
        ]
        expected = [{"SecretArn": {"Ref": "WhatsAppSecret"}}]
        if logical_id != "WebhookFunction":
            expected.append({"SecretArn": {"Ref": "WhatsAppAccessTokenSecret"}})
        assert secret_policies == expected, logical_id


def test_the_read_function_may_only_reset_a_leads_unread_count() -> None:
    statements = [
        statement
        for policy in _properties("ConversationsFunction")["Policies"]
        for statement in policy.get("Statement", [])
        if "dynamodb:UpdateItem" in statement["Action"]
    ]
    (update,) = statements
    allowed = update["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]
    assert "unread_count" in allowed and "text" not in allowed and "opted_out" not in allowed


def _statement(logical_id: str, sid: str) -> dict[str, Any]:
    return next(
        statement
        for policy in _properties(logical_id)["Policies"]
        for statement in policy.get("Statement", [])
        if statement.get("Sid") == sid
    )


def test_the_template_cache_is_all_the_template_function_may_write_and_sends_may_query() -> None:
    cache = _statement("TemplatesFunction", "TemplateCache")
    assert cache["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] == [
        "TEMPLATES",
        "RATE#template_sync#*",
    ]
    reads = _statement("SendFunction", "TemplateCacheReads")
    assert reads["Action"] == ["dynamodb:Query"]
    assert reads["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] == ["TEMPLATES"]


def test_templates_are_synced_on_the_schedule_parameter() -> None:
    (schedule,) = [e for e in _properties("TemplatesFunction")["Events"].values() if e["Type"] == "Schedule"]
    assert schedule["Properties"]["Schedule"] == {"Fn::Sub": "rate(${TemplateSyncMinutes} minutes)"}
    # "rate(1 minutes)" is not a valid expression: the parameter keeps the plural true, and the budget.
    assert TEMPLATE["Parameters"]["TemplateSyncMinutes"]["MinValue"] >= 2
    assert _function_environment("TemplatesFunction")["TEMPLATE_SYNC_MINUTES"] == {"Ref": "TemplateSyncMinutes"}


def test_the_media_bucket_is_private_encrypted_tls_only_and_expires_files() -> None:
    bucket = _properties("MediaBucket")
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == {"Ref": "MediaRetentionDays"}
    (deny,) = _properties("MediaBucketPolicy")["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert RESOURCES["MediaBucket"]["DeletionPolicy"] == "Retain"


def test_the_archiver_gives_up_on_the_queues_last_attempt_and_outlives_its_timeout() -> None:
    queue = _properties("MediaQueue")
    environment = _function_environment("MediaFunction")
    assert queue["RedrivePolicy"]["maxReceiveCount"] == environment["MEDIA_ARCHIVE_ATTEMPTS"]
    assert queue["VisibilityTimeout"] >= 6 * _properties("MediaFunction")["Timeout"]
    assert environment["MEDIA_MAX_BYTES"] == {"Ref": "MediaMaxBytes"}
    assert environment["MEDIA_BUCKET"] == {"Ref": "MediaBucket"}
    media = _statement("MediaFunction", "MediaObjects")
    assert media["Resource"] == {"Fn::Sub": "${MediaBucket.Arn}/*"}
