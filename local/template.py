"""Read template.yaml and create its tables, queues and secrets on an AWS endpoint (moto's server).

Tests and the local stack both build their infrastructure from here, so they cannot drift from what
`sam deploy` creates. Only the properties the AWS APIs accept are passed; intrinsic functions are
resolved against the resources created so far.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from local.defaults import LOCAL_ACCOUNT_ID, LOCAL_REGION

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


class _Intrinsic(dict[str, Any]):
    """A short-form CloudFormation tag (!Ref, !GetAtt, !Sub...) read as its long form."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> _Intrinsic:
    # !Ref and !Condition have no Fn:: prefix in their long form.
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return _Intrinsic({name: value})


class _TemplateLoader(yaml.SafeLoader):
    pass


_TemplateLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_TemplateLoader)  # a SafeLoader subclass
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a template")
    return document


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


@dataclass
class CreatedResources:
    """Physical names/urls/arns by logical id, as CloudFormation's Ref / GetAtt would return them."""

    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)


# Pseudo parameters as a local deployment named "local" sees them.
PSEUDO_PARAMETERS = {
    "AWS::StackName": "local",
    "AWS::Region": LOCAL_REGION,
    "AWS::AccountId": LOCAL_ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
_SUB_REFERENCE = re.compile(r"\$\{([^}!][^}]*)\}")


def _substitute(text: str, created: CreatedResources) -> str:
    """Fn::Sub's string form: ${Parameter}, ${Resource}, ${Resource.Attribute}, ${AWS::Pseudo}."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in created.refs:
            return created.refs[name]
        logical_id, _, attribute = name.partition(".")
        return created.attributes[(logical_id, attribute)]

    return _SUB_REFERENCE.sub(replace, text)


def _resolve(value: Any, created: CreatedResources) -> Any:
    if isinstance(value, dict):
        if "Ref" in value and len(value) == 1:
            if value["Ref"] in PSEUDO_PARAMETERS:
                return PSEUDO_PARAMETERS[value["Ref"]]
            return created.refs[value["Ref"]]
        if "Fn::Sub" in value and len(value) == 1 and isinstance(value["Fn::Sub"], str):
            return _substitute(value["Fn::Sub"], created)
        if "Fn::GetAtt" in value and len(value) == 1:
            logical_id, attribute = value["Fn::GetAtt"]
            return created.attributes[(logical_id, attribute)]
        return {key: _resolve(item, created) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, created) for item in value]
    return value


_NO_VALUE = object()


def _with_defaults(value: Any, template: dict[str, Any]) -> Any:
    """Parameters at their defaults, Fn::If decided by the template's conditions, AWS::NoValue dropped:
    what a deploy without parameter overrides gives a table (its billing mode and indexes)."""
    parameters = {name: spec.get("Default", "") for name, spec in template.get("Parameters", {}).items()}

    def condition(name: str) -> bool:
        return bool(evaluate(template.get("Conditions", {})[name]))

    def evaluate(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Ref" and argument == "AWS::NoValue":
                return _NO_VALUE
            if key == "Ref" and argument in parameters:
                return parameters[argument]
            if key == "Condition":
                return condition(argument)
            if key == "Fn::Equals":
                return str(evaluate(argument[0])) == str(evaluate(argument[1]))
            if key == "Fn::Not":
                return not evaluate(argument[0])
            if key == "Fn::If":
                return evaluate(argument[1] if condition(argument[0]) else argument[2])
        if isinstance(node, dict):
            resolved = {key: evaluate(item) for key, item in node.items()}
            return {key: item for key, item in resolved.items() if item is not _NO_VALUE}
        if isinstance(node, list):
            return [item for item in (evaluate(entry) for entry in node) if item is not _NO_VALUE]
        return node

    return evaluate(value)


def _create_table(client: Any, name: str, properties: dict[str, Any]) -> tuple[str, str | None]:
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if properties.get("ProvisionedThroughput"):
        request["ProvisionedThroughput"] = {
            name: int(units) for name, units in properties["ProvisionedThroughput"].items()
        }
    if properties.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    if properties.get("SSESpecification"):
        request["SSESpecification"] = {"Enabled": bool(properties["SSESpecification"].get("SSEEnabled"))}
    if properties.get("StreamSpecification"):
        request["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
    description = client.create_table(**request)["TableDescription"]
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return str(description["TableArn"]), description.get("LatestStreamArn")


_QUEUE_ATTRIBUTES = {
    "FifoQueue": "FifoQueue",
    "ContentBasedDeduplication": "ContentBasedDeduplication",
    "DeduplicationScope": "DeduplicationScope",
    "FifoThroughputLimit": "FifoThroughputLimit",
    "VisibilityTimeout": "VisibilityTimeout",
    "MessageRetentionPeriod": "MessageRetentionPeriod",
    "SqsManagedSseEnabled": "SqsManagedSseEnabled",
    "RedrivePolicy": "RedrivePolicy",
    "DelaySeconds": "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
}


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _create_queue(client: Any, name: str, properties: dict[str, Any]) -> tuple[str, str]:
    attributes = {
        attribute: _attribute_text(properties[prop])
        for prop, attribute in _QUEUE_ATTRIBUTES.items()
        if prop in properties
    }
    queue_name = f"{name}.fifo" if properties.get("FifoQueue") else name
    url = client.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


def _create_bucket(client: Any, name: str, properties: dict[str, Any], parameters: dict[str, str]) -> None:
    """The bucket with the properties that change what the code sees: encryption, public access, retention."""
    region = client.meta.region_name
    request: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    client.create_bucket(**request)
    encryption = properties.get("BucketEncryption")
    if encryption:
        # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled")),
            }
            for rule in encryption["ServerSideEncryptionConfiguration"]
        ]
        client.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if properties.get("PublicAccessBlockConfiguration"):
        client.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
        )
    lifecycle: list[dict[str, Any]] = []
    for rule in (properties.get("LifecycleConfiguration") or {}).get("Rules", []):
        days = rule.get("ExpirationInDays")
        if isinstance(days, dict) and "Ref" in days:
            days = parameters[days["Ref"]]
        if days is None:
            continue
        rules.append(
            {
                "ID": rule.get("Id", "rule"),
                "Status": rule["Status"],
                "Filter": {"Prefix": ""},
                "Expiration": {"Days": int(days)},
            }
        )
    if lifecycle:
        client.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": lifecycle})


def _dependency_order(resources: dict[str, dict[str, Any]]) -> list[str]:
    """Queues referenced by another queue's RedrivePolicy first (a DLQ before its source)."""

    def references(value: Any) -> set[str]:
        if isinstance(value, dict):
            found = set()
            if "Ref" in value:
                found.add(value["Ref"])
            if "Fn::GetAtt" in value:
                found.add(value["Fn::GetAtt"][0])
            for item in value.values():
                found |= references(item)
            return found
        if isinstance(value, list):
            return set().union(*(references(item) for item in value)) if value else set()
        return set()

    ordered: list[str] = []
    pending = dict(resources)
    while pending:
        ready = [lid for lid, res in pending.items() if not (references(res.get("Properties", {})) & set(pending))]
        if not ready:
            raise ValueError(f"circular references among {sorted(pending)}")
        for logical_id in sorted(ready):
            ordered.append(logical_id)
            del pending[logical_id]
    return ordered


def create_resources(
    session: Any,
    prefix: str,
    template: dict[str, Any] | None = None,
    secret_values: dict[str, str] | None = None,
) -> CreatedResources:
    """Create every table, queue, bucket and secret of the template, names prefixed to keep runs apart."""
    template = template or load_template()
    created = CreatedResources()
    dynamodb = session.client("dynamodb")
    for logical_id, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        name = f"{prefix}-{logical_id}"
        properties = _with_defaults(resource["Properties"], template)
        arn, stream_arn = _create_table(dynamodb, name, properties)
        created.attributes[(logical_id, "Arn")] = arn
        if stream_arn:
            created.attributes[(logical_id, "StreamArn")] = str(stream_arn)
        created.refs[logical_id] = name
    sqs = session.client("sqs")
    queues = resources_of_type(template, "AWS::SQS::Queue")
    for logical_id in _dependency_order(queues):
        properties = _resolve(queues[logical_id].get("Properties", {}), created)
        name = f"{prefix}-{logical_id}"
        url, arn = _create_queue(sqs, name, properties)
        created.refs[logical_id] = url
        created.attributes[(logical_id, "Arn")] = arn
        created.attributes[(logical_id, "QueueName")] = name + (".fifo" if properties.get("FifoQueue") else "")
    buckets = resources_of_type(template, "AWS::S3::Bucket")
    if buckets:
        s3 = session.client("s3")
        parameters = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
        for logical_id, resource in buckets.items():
            # Bucket names are global, lower case and at most 63 characters.
            name = f"{prefix}-{logical_id}".lower()[:63]
            _create_bucket(s3, name, resource.get("Properties", {}), parameters)
            created.refs[logical_id] = name
            created.attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
    _create_event_buses(session, prefix, template, created)
    secrets = session.client("secretsmanager")
    for logical_id in resources_of_type(template, "AWS::SecretsManager::Secret"):
        name = f"{prefix}-{logical_id}"
        arn = secrets.create_secret(Name=name, SecretString=json.dumps(secret_values or {}))["ARN"]
        created.refs[logical_id] = str(arn)
    return created


def _create_event_buses(session: Any, prefix: str, template: dict[str, Any], created: CreatedResources) -> None:
    """Event buses, then their rules with targets (a rule's State is kept: a DISABLED example stays off)."""
    buses = resources_of_type(template, "AWS::Events::EventBus")
    if not buses:
        return
    events = session.client("events")
    for logical_id in buses:
        name = f"{prefix}-{logical_id}"
        arn = events.create_event_bus(Name=name)["EventBusArn"]
        created.refs[logical_id] = name
        created.attributes[(logical_id, "Arn")] = str(arn)
        created.attributes[(logical_id, "Name")] = name
    for logical_id, resource in resources_of_type(template, "AWS::Events::Rule").items():
        properties = _resolve(resource.get("Properties", {}), created)
        name = f"{prefix}-{logical_id}"
        arn = events.put_rule(
            Name=name,
            EventBusName=properties.get("EventBusName", "default"),
            EventPattern=json.dumps(properties["EventPattern"]),
            State=properties.get("State", "ENABLED"),
            Description=properties.get("Description", ""),
        )["RuleArn"]
        created.refs[logical_id] = name
        created.attributes[(logical_id, "Arn")] = str(arn)
        targets = [{"Id": target["Id"], "Arn": target["Arn"]} for target in properties.get("Targets", [])]
        if targets:
            events.put_targets(Rule=name, EventBusName=properties.get("EventBusName", "default"), Targets=targets)


def function_environment(
    template: dict[str, Any],
    logical_id: str,
    created: CreatedResources,
    parameters: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment `sam deploy` would give a function: Globals merged with its own, resolved locally."""
    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    function = template["Resources"][logical_id]["Properties"]
    own_env = function.get("Environment", {}).get("Variables", {})
    defaults = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    resolver = CreatedResources(
        refs={**defaults, **(parameters or {}), **created.refs}, attributes=dict(created.attributes)
    )
    merged = {**globals_env, **own_env}
    return {name: str(_resolve(value, resolver)) for name, value in merged.items()}
