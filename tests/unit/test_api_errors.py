"""The API's error contract: each Graph error class to one status and code, always with Meta's details."""

from __future__ import annotations

import json
from typing import Any

import pytest

from whatsapp_crm.api_errors import field_path, graph_error_response
from whatsapp_crm.graph.errors import GraphUnavailableError, error_from_response
from whatsapp_crm.send_models import SendRequest

TOKEN = "EAAGtesttokenvalue1234567890abcdef"


def _graph(code: int, http_status: int = 400, details: str = "details") -> Any:
    body = {
        "error": {"message": f"(#{code}) Title", "code": code, "error_data": {"details": details}, "fbtrace_id": "AbC"}
    }
    return error_from_response(http_status, body, secrets=(TOKEN,))


def _answer(error: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = graph_error_response(error)
    return response.status_code, json.loads(str(response.body))["error"], dict(response.headers)


@pytest.mark.parametrize(
    ("code", "http_status", "status", "error_code"),
    [
        (131047, 400, 422, "outside_customer_service_window"),
        (130429, 400, 429, "rate_limited"),
        (130429, 429, 429, "rate_limited"),
        (131056, 400, 429, "rate_limited"),
        (80007, 400, 429, "rate_limited"),
        (131050, 400, 409, "recipient_opted_out"),
        (190, 401, 502, "whatsapp_error"),
        (131026, 400, 502, "whatsapp_error"),
        (132001, 404, 502, "whatsapp_error"),
        (100, 400, 502, "whatsapp_error"),
        (368, 403, 502, "whatsapp_error"),
    ],
)
def test_each_graph_code_has_one_documented_answer(code: int, http_status: int, status: int, error_code: str) -> None:
    answered, error, headers = _answer(_graph(code, http_status))
    assert answered == status
    assert error["code"] == error_code
    assert error["graph_error"] == {"code": code, "title": "Title", "details": "details", "fbtrace_id": "AbC"}
    if status == 429:
        assert int(headers["Retry-After"]) == error["retry_after_seconds"] >= 1


def test_meta_echoing_the_token_never_reaches_the_caller() -> None:
    _, error, _ = _answer(_graph(190, 401, details=f"Malformed access token {TOKEN}"))
    assert TOKEN not in json.dumps(error)


def test_retries_that_ran_out_are_503_with_the_last_answer() -> None:
    ran_out = GraphUnavailableError(code=131000, title="Something went wrong", http_status=500, fbtrace_id="X")
    status, error, _ = _answer(ran_out)
    assert (status, error["code"]) == (503, "whatsapp_unavailable")
    assert error["graph_error"]["code"] == 131000


def test_an_unreachable_graph_has_no_graph_error() -> None:
    status, error, _ = _answer(GraphUnavailableError(title="Graph API unreachable (ConnectTimeout)"))
    assert status == 503
    assert "graph_error" not in error


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("body", "text", "text", "body"), "text.body"),
        (("body", "text", "to"), "to"),
        (
            ("body", "interactive", "interactive", "button", "action", "buttons", 0, "reply", "title"),
            "interactive.action.buttons[0].reply.title",
        ),
        (
            ("body", "template", "template", "components", 2, "button", "parameters", 0, "payload", "payload"),
            "template.components[2].parameters[0].payload",
        ),
        (("body", "contacts", "contacts", 0, "name", "formatted_name"), "contacts[0].name.formatted_name"),
        (("query", "limit"), "limit"),
    ],
)
def test_fields_are_named_as_the_caller_wrote_them(loc: tuple[Any, ...], path: str) -> None:
    root = None if loc[0] == "query" else SendRequest
    assert field_path(loc, root) == path
