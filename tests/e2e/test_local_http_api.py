"""The local HTTP API's routing and API Gateway mapping, from a template's HttpApi events."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.http_api import build_event, find_route, response_from_lambda, routes
from local.template import load_template

TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Api": {"Type": "AWS::Serverless::HttpApi", "Properties": {"Auth": {"DefaultAuthorizer": "AWS_IAM"}}},
        "Webhook": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Events": {
                    "Verify": {
                        "Type": "HttpApi",
                        "Properties": {
                            "ApiId": {"Ref": "Api"},
                            "Method": "get",
                            "Path": "/webhook",
                            "Auth": {"Authorizer": "NONE"},
                        },
                    },
                }
            },
        },
        "Conversations": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Events": {
                    "Messages": {
                        "Type": "HttpApi",
                        "Properties": {
                            "ApiId": {"Ref": "Api"},
                            "Method": "GET",
                            "Path": "/conversations/{wa_id}/messages",
                        },
                    },
                    "Summary": {
                        "Type": "HttpApi",
                        "Properties": {"ApiId": {"Ref": "Api"}, "Method": "GET", "Path": "/conversations/summary"},
                    },
                    "Files": {
                        "Type": "HttpApi",
                        "Properties": {"ApiId": {"Ref": "Api"}, "Method": "ANY", "Path": "/files/{proxy+}"},
                    },
                }
            },
        },
        "Queue": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {"Q": {"Type": "SQS"}}}},
    }
}


def _route(method: str, path: str) -> tuple[str, str, dict[str, str]] | None:
    found = find_route(routes(TEMPLATE), method, path)
    if found is None:
        return None
    route, parameters = found
    return route.function, route.route_key, parameters


def test_every_httpapi_event_becomes_a_route_and_nothing_else() -> None:
    keys = sorted(route.route_key for route in routes(TEMPLATE))
    assert keys == [
        "ANY /files/{proxy+}",
        "GET /conversations/summary",
        "GET /conversations/{wa_id}/messages",
        "GET /webhook",
    ]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/webhook", ("Webhook", "GET /webhook", {})),
        (
            "GET",
            "/conversations/972525551234/messages",
            ("Conversations", "GET /conversations/{wa_id}/messages", {"wa_id": "972525551234"}),
        ),
        # A literal path wins over a parameter that would also match.
        ("GET", "/conversations/summary", ("Conversations", "GET /conversations/summary", {})),
        (
            "DELETE",
            "/files/a/b%20c.pdf",
            ("Conversations", "ANY /files/{proxy+}", {"proxy": "a/b c.pdf"}),
        ),
        ("POST", "/webhook", None),
        ("GET", "/conversations/972525551234/messages/extra", None),
        ("GET", "/nowhere", None),
    ],
)
def test_requests_find_their_route_like_api_gateway(
    method: str, path: str, expected: tuple[str, str, dict[str, str]] | None
) -> None:
    assert _route(method, path) == expected


def test_the_default_authorizer_applies_unless_a_route_opts_out() -> None:
    by_key = {route.route_key: route for route in routes(TEMPLATE)}
    assert by_key["GET /webhook"].is_open
    assert by_key["GET /conversations/{wa_id}/messages"].authorizer == "AWS_IAM"


def test_the_event_is_payload_2_0_with_path_parameters_query_and_caller_identity() -> None:
    # Given a request to a route that needs IAM in AWS
    found = find_route(routes(TEMPLATE), "GET", "/conversations/972525551234/messages")
    assert found is not None
    route, parameters = found
    headers = [("Accept", "application/json"), ("X-Trace", "a"), ("x-trace", "b"), ("Cookie", "s=1; t=2")]
    # When it becomes an event
    event = build_event(
        route, parameters, "GET", "/conversations/972525551234/messages?limit=5&cursor=x", headers, None
    )
    # Then it carries what API Gateway would put there
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /conversations/{wa_id}/messages"
    assert event["rawPath"] == "/conversations/972525551234/messages"
    assert event["rawQueryString"] == "limit=5&cursor=x"
    assert event["queryStringParameters"] == {"limit": "5", "cursor": "x"}
    assert event["pathParameters"] == {"wa_id": "972525551234"}
    assert event["headers"]["accept"] == "application/json"
    assert event["headers"]["x-trace"] == "a,b"
    assert event["cookies"] == ["s=1", "t=2"]
    assert "cookie" not in event["headers"]
    assert event["requestContext"]["authorizer"]["iam"]["accountId"] == "123456789012"


def test_binary_bodies_arrive_base64_encoded_and_text_bodies_unchanged() -> None:
    found = find_route(routes(TEMPLATE), "PUT", "/files/photo.jpg")
    assert found is not None
    route, parameters = found
    image = bytes([0xFF, 0xD8, 0xFF, 0x00])
    binary = build_event(route, parameters, "PUT", "/files/photo.jpg", [("Content-Type", "image/jpeg")], image)
    hebrew = "שלום".encode()
    text = build_event(route, parameters, "PUT", "/files/a.txt", [("Content-Type", "text/plain")], hebrew)
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == image
    assert text["isBase64Encoded"] is False
    assert text["body"] == "שלום"


def test_responses_are_mapped_the_way_api_gateway_maps_payload_2_0() -> None:
    structured = response_from_lambda(
        {"statusCode": 201, "headers": {"Retry-After": "3"}, "body": "{}", "cookies": ["a=1"]}
    )
    binary = response_from_lambda(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    )
    bare = response_from_lambda({"hello": "עולם"})
    assert structured.status == 201
    assert ("Retry-After", "3") in structured.headers
    assert ("Set-Cookie", "a=1") in structured.headers
    assert ("Content-Type", "application/json") in structured.headers
    assert binary.body == b"\x00\x01"
    assert bare.status == 200
    assert json.loads(bare.body) == {"hello": "עולם"}


def test_the_real_template_routes_every_http_event() -> None:
    # Every HttpApi event of template.yaml is served, and /webhook stays public.
    template = load_template()
    table = routes(template)
    declared = sum(
        1
        for resource in template["Resources"].values()
        for event in (resource.get("Properties", {}).get("Events") or {}).values()
        if resource.get("Type") == "AWS::Serverless::Function" and event.get("Type") == "HttpApi"
    )
    assert len(table) == declared
    webhook = [route for route in table if route.path == "/webhook"]
    assert {route.method for route in webhook} == {"GET", "POST"}
    assert all(route.is_open for route in webhook)


@pytest.mark.parametrize(("api_auth", "authorizer", "identity"), [("IAM", "AWS_IAM", "iam"), ("JWT", "Jwt", "jwt")])
def test_a_conditional_default_authorizer_is_read_with_the_parameter_defaults(
    api_auth: str, authorizer: str, identity: str
) -> None:
    # Given an API whose default authorizer is chosen by a parameter
    template: dict[str, Any] = {
        "Parameters": {"ApiAuth": {"Type": "String", "Default": api_auth}},
        "Conditions": {"UseJwt": {"Fn::Equals": [{"Ref": "ApiAuth"}, "JWT"]}},
        "Resources": {
            "Api": {
                "Type": "AWS::Serverless::HttpApi",
                "Properties": {"Auth": {"DefaultAuthorizer": {"Fn::If": ["UseJwt", "Jwt", "AWS_IAM"]}}},
            },
            "Send": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Events": {
                        "Send": {
                            "Type": "HttpApi",
                            "Properties": {"ApiId": {"Ref": "Api"}, "Method": "POST", "Path": "/messages"},
                        }
                    }
                },
            },
        },
    }
    # When its routes are read
    (route,) = routes(template)
    event = build_event(route, {}, "POST", "/messages", [], b"{}")
    # Then the route has the authorizer a default deploy gets, and the event the matching caller identity
    assert route.authorizer == authorizer
    assert not route.is_open
    assert identity in event["requestContext"]["authorizer"]
