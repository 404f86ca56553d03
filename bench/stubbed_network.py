"""A stubbed network for benchmarks: real botocore and real requests, canned answers instead of sockets.

Everything above the wire runs as in Lambda: botocore builds, signs and serialises each request, then its
`before-send` event (the hook botocore offers for exactly this) hands the prepared request to `answer_aws`,
whose canned HTTP response botocore parses as it would AWS's. Graph calls go through requests up to the
transport adapter, whose `send` answers from `answer_graph`. No fake client: the code under test builds
its boto3 clients and requests sessions itself.

`install()` hooks every botocore Session and requests adapter created afterwards. It imports neither
library: the hooks are set when the application first imports them, so a cold-start measurement that
installs the stub first still pays for every import itself. `calls` counts what was answered.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

calls: Counter[str] = Counter()
# (service, operation, parameters) of every AWS call while `recording` is on: what a caller asked for.
recorded: list[tuple[str, str, dict[str, Any]]] = []
recording = False
_secret = {"app_secret": "bench-app-secret", "verify_token": "bench-verify-token", "access_token": "bench-token"}


def configure(*, app_secret: str, verify_token: str) -> None:
    """What Secrets Manager answers (the events in events/ are signed with the local stack's app secret)."""
    _secret.update(app_secret=app_secret, verify_token=verify_token)


class _Body:
    """What botocore reads a response body from (AWSResponse.raw)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _lead(key: dict[str, Any]) -> dict[str, Any]:
    """A lead who wrote a minute ago: sends and replies take their whole path, not a refusal."""
    from datetime import UTC, datetime, timedelta

    moment = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        **key,
        "wa_id": {"S": key["PK"]["S"].partition("#")[2]},
        "last_inbound_at": {"S": moment},
        "last_message_at": {"S": moment},
        "unread_count": {"N": "1"},
    }


def _dynamodb(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    if operation == "GetItem" and str(request.get("Key", {}).get("PK", {}).get("S", "")).startswith("LEAD#"):
        return {"Item": _lead(request["Key"])}
    values = request.get("ExpressionAttributeValues", {})
    if operation == "Query" and str(values.get(":pk", {}).get("S", "")).startswith("LEAD#"):
        # A lead's partition (the lead and its conversations): an item in the shape written before issue 14,
        # which readers take as the lead's one conversation.
        return {"Items": [_lead({"PK": values[":pk"], "SK": {"S": "LEAD"}})], "Count": 1, "ScannedCount": 1}
    if operation == "Query" or operation == "Scan":
        return {"Items": [], "Count": 0, "ScannedCount": 0}
    if operation == "BatchGetItem":
        return {"Responses": {table: [] for table in request.get("RequestItems", {})}, "UnprocessedKeys": {}}
    if operation == "BatchWriteItem":
        return {"UnprocessedItems": {}}
    if operation == "TransactGetItems":
        return {"Responses": [{} for _ in request.get("TransactItems", [])]}
    if operation == "UpdateItem" and request.get("ReturnValues", "NONE") in ("ALL_NEW", "UPDATED_NEW"):
        # What a counter update returns: the item as the update left it (numbers at their increments).
        attributes = {
            name: value for name, value in request.get("ExpressionAttributeValues", {}).items() if "N" in value
        }
        return {"Attributes": {f"attr{index}": value for index, value in enumerate(attributes.values())}}
    return {}  # GetItem of an item that does not exist; PutItem, UpdateItem, DeleteItem, TransactWriteItems


def _sqs(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    if operation == "SendMessageBatch":
        return {
            "Successful": [
                {
                    "Id": entry["Id"],
                    "MessageId": f"stub-{index}",
                    "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),
                    "SequenceNumber": "1",
                }
                for index, entry in enumerate(request.get("Entries", []))
            ],
            "Failed": [],
        }
    if operation == "SendMessage":
        body = request.get("MessageBody", "")
        return {"MessageId": "stub", "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()}
    return {}


def _secretsmanager(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    secret_id = request.get("SecretId", "stub")
    return {
        "ARN": f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{secret_id}",
        "Name": secret_id,
        "VersionId": "stub",
        "SecretString": json.dumps(_secret),
    }


def _ssm(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("Name", "stub")
    return {"Parameter": {"Name": name, "Type": "String", "Value": "{}", "Version": 1}}


def _events(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    if operation == "PutEvents":
        entries = request.get("Entries", [])
        return {"FailedEntryCount": 0, "Entries": [{"EventId": f"stub-{index}"} for index in range(len(entries))]}
    return {}


_JSON_SERVICES = {
    "AWSEvents": _events,
    "DynamoDB": _dynamodb,
    "AmazonSQS": _sqs,
    "secretsmanager": _secretsmanager,
    "AmazonSSM": _ssm,
}


def record_parameters(params: dict[str, Any], event_name: str, **_: Any) -> None:
    """botocore `before-parameter-build` handler: keeps a copy of each call's parameters when recording."""
    if recording:
        import copy

        _stage, service, operation = event_name.split(".", 2)
        recorded.append((service, operation, copy.deepcopy(params)))


def answer_aws(request: Any, **_: Any) -> Any:
    """botocore `before-send` handler: a canned response for the prepared request, or an empty 200."""
    from botocore.awsrequest import AWSResponse

    target = request.headers.get("X-Amz-Target")
    if target:
        service, _dot, operation = (target.decode() if isinstance(target, bytes) else target).partition(".")
        calls[f"{service}.{operation}"] += 1
        body = request.body or b"{}"
        document: dict[str, Any] = json.loads(body.decode() if isinstance(body, bytes) else body)
        # "DynamoDB_20120810.GetItem", "AmazonSQS.SendMessageBatch", "secretsmanager.GetSecretValue"
        respond = _JSON_SERVICES.get(service.partition("_")[0])
        answer = respond(operation, document) if respond is not None else {}
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "stub"}
        return AWSResponse(request.url, 200, headers, _Body(json.dumps(answer).encode()))
    calls[f"{request.method} {request.url.split('?')[0].rsplit('/', 1)[-1] or '/'}"] += 1  # S3 and other REST
    return AWSResponse(request.url, 200, {"etag": '"stub"', "x-amz-request-id": "stub"}, _Body(b""))


def answer_graph(method: str, url: str, body: bytes | None) -> tuple[int, dict[str, Any]]:
    """Meta's answer to a Graph call, by its path."""
    path = url.split("?")[0]
    calls[f"graph {method} {path.rsplit('/', 1)[-1]}"] += 1
    if path.endswith("/messages") and method == "POST":
        document = json.loads(body or b"{}")
        if document.get("status") == "read":
            return 200, {"success": True}
        recipient = str(document.get("to", ""))
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": recipient, "wa_id": recipient.lstrip("+")}],
            "messages": [{"id": f"wamid.stub{sum(calls.values())}"}],
        }
    if path.endswith("/message_templates"):
        return 200, {"data": [], "paging": {"cursors": {}}}
    if path.endswith("/media"):
        return 200, {"id": "1234567890"}
    return 200, {"success": True}


def _graph_send(adapter: Any, request: Any, **_: Any) -> Any:
    from requests.models import Response
    from requests.structures import CaseInsensitiveDict

    body = request.body.encode() if isinstance(request.body, str) else request.body
    status, document = answer_graph(request.method, request.url, body if isinstance(body, bytes) else None)
    response = Response()
    response.status_code = status
    response._content = json.dumps(document).encode()
    response.headers = CaseInsensitiveDict({"content-type": "application/json"})
    response.url = request.url
    response.request = request
    response.encoding = "utf-8"
    response.reason = "OK"
    return response


def _hook_botocore(module: ModuleType) -> None:
    session_class = module.Session
    original = session_class.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.register("before-parameter-build", record_parameters)
        self.register("before-send", answer_aws)

    session_class.__init__ = init


def _hook_requests(module: ModuleType) -> None:
    module.HTTPAdapter.send = _graph_send


_HOOKS = {"botocore.session": _hook_botocore, "requests.adapters": _hook_requests}


class _AfterImport:
    """A meta-path finder that runs a hook on a module right after it first executes, importing nothing
    ahead of time (not even importlib.abc, whose own imports the application would then not pay for)."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        hook = _HOOKS.get(fullname)
        if hook is None:
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Hooked(spec.loader, hook)  # type: ignore[assignment]  # a loader by duck typing
                return spec
        return None


class _Hooked:
    def __init__(self, loader: Any, hook: Any) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._hook(module)


def install() -> None:
    """Stub the network of every botocore Session and requests adapter from now on."""
    for name, hook in _HOOKS.items():
        if name in sys.modules:
            hook(sys.modules[name])
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
