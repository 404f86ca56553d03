"""Call SendFunction and ConversationsFunction the way API Gateway's HTTP API does (payload 2.0).

Each call applies that function's own environment from template.yaml (resolved to this test's moto
resources, with the Graph fake's URL), so the send and read functions keep their own settings even
though they run in one process.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.apigw import http_api_event, lambda_context
from local.graph_simulator import GraphSimulator
from local.handlers import load_function_module


@dataclass
class ApiResult:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        document = self.json()
        assert set(document) == {"error"}, document
        return dict(document["error"])


def _result(response: dict[str, Any]) -> ApiResult:
    body = response.get("body", "")
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
    return ApiResult(response["statusCode"], headers, body)


class ApiClient:
    def __init__(
        self,
        function_env: Callable[..., dict[str, str]],
        graph_fake: GraphSimulator,
        **overrides: str,
    ) -> None:
        self._function_env = function_env
        self._graph_fake = graph_fake
        self.overrides = dict(overrides)

    def _invoke(self, logical_id: str, event: dict[str, Any], **ports: Any) -> ApiResult:
        self._function_env(logical_id, **self._graph_fake.environment(), **self.overrides)
        module = load_function_module(logical_id)
        return _result(module.handle(event, lambda_context(logical_id), **ports))

    def send(self, body: Any, *, raw: str | None = None, **ports: Any) -> ApiResult:
        text = raw if raw is not None else json.dumps(body, ensure_ascii=False)
        event = http_api_event("POST", "/messages", body=text, headers={"content-type": "application/json"})
        return self._invoke("SendFunction", event, **ports)

    def conversations(self, query: str = "", **ports: Any) -> ApiResult:
        return self._invoke("ConversationsFunction", http_api_event("GET", "/conversations", query=query), **ports)

    def messages(self, wa_id: str, query: str = "", **ports: Any) -> ApiResult:
        event = http_api_event(
            "GET",
            f"/conversations/{wa_id}/messages",
            query=query,
            path_parameters={"wa_id": wa_id},
            route_key="GET /conversations/{wa_id}/messages",
        )
        return self._invoke("ConversationsFunction", event, **ports)

    def mark_read(self, wa_id: str, query: str = "", **ports: Any) -> ApiResult:
        event = http_api_event(
            "POST",
            f"/conversations/{wa_id}/read",
            query=query,
            path_parameters={"wa_id": wa_id},
            route_key="POST /conversations/{wa_id}/read",
        )
        return self._invoke("ConversationsFunction", event, **ports)

    def health(self, **ports: Any) -> ApiResult:
        return self._invoke("ConversationsFunction", http_api_event("GET", "/health"), **ports)

    def templates(self, query: str = "", **ports: Any) -> ApiResult:
        return self._invoke("TemplatesFunction", http_api_event("GET", "/templates", query=query), **ports)

    def scheduled_template_sync(self, **ports: Any) -> dict[str, Any]:
        """The EventBridge schedule's event, as Lambda hands it to TemplatesFunction."""
        self._function_env("TemplatesFunction", **self._graph_fake.environment(), **self.overrides)
        module = load_function_module("TemplatesFunction")
        event = {
            "version": "0",
            "id": "5b0f6e8f-5ca4-4c4c-9b4e-2d1c7a1e0b11",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-12-06T10:00:00Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:123456789012:rule/TemplatesSync"],
            "detail": {},
        }
        result: dict[str, Any] = module.handle(event, lambda_context("TemplatesFunction"), **ports)
        return result
