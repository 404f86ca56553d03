"""API Gateway HTTP API (payload format 2.0) events and a Lambda context, as AWS builds them.

Used by the local stack to invoke the real handlers and by tests, so both speak the same format.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

# Content types API Gateway passes as text; anything else arrives base64-encoded.
_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml")


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        return True
    return any(content_type.lower().startswith(prefix) for prefix in _TEXT_TYPES)


def http_api_event(
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    path_parameters: dict[str, str] | None = None,
    route_key: str | None = None,
    force_base64: bool = False,
) -> dict[str, Any]:
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    raw = body.encode("utf-8") if isinstance(body, str) else body
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method.upper()} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key or f"{method.upper()} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            # HTTP API joins repeated keys with commas.
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    if path_parameters:
        event["pathParameters"] = path_parameters
    if raw is not None:
        text_ok = _is_text(lowered.get("content-type")) and not force_base64
        if text_ok:
            try:
                event["body"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                text_ok = False
        if not text_ok:
            event["body"] = base64.b64encode(raw).decode("ascii")
            event["isBase64Encoded"] = True
    return event


@dataclass
class LambdaContext:
    function_name: str = "local-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:local-function"
    aws_request_id: str = "local-request"
    timeout_seconds: int = 30

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_context(function_name: str = "local-function", timeout_seconds: int = 30) -> LambdaContext:
    return LambdaContext(function_name=function_name, aws_request_id=str(uuid.uuid4()), timeout_seconds=timeout_seconds)
