"""InboxFunction with its template environment: the page, its files and the configuration the page starts from,
read from the SSM parameter the stack writes when agents sign in with Cognito (moto's server over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import AwsStack
from local.apigw import http_api_event, lambda_context
from local.handlers import load_function_module

pytestmark = pytest.mark.integration

SIGN_IN = {
    "api_base_url": "https://agents123.execute-api.il-central-1.amazonaws.com",
    "cognito": {
        "domain": "https://wa-crm-123456789012.auth.il-central-1.amazoncognito.com",
        "client_id": "4example",
        "user_pool_id": "il-central-1_Example",
        "region": "il-central-1",
        "scopes": ["openid", "email", "profile"],
    },
}


def _get(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    module = load_function_module("InboxFunction")
    event = http_api_event("GET", path, headers=headers or {}, route_key="GET /inbox/{file+}")
    return dict(module.lambda_handler(event, lambda_context("InboxFunction")))


def test_the_page_is_served_with_its_headers_and_revalidated(function_env: Callable[..., dict[str, str]]) -> None:
    function_env("InboxFunction")
    page = _get("/inbox")
    assert page["statusCode"] == 200 and "תיבת הודעות" in page["body"]
    assert page["headers"]["Content-Security-Policy"].startswith("default-src 'none'")
    assert page["headers"]["X-Frame-Options"] == "DENY"
    again = _get("/inbox", {"If-None-Match": page["headers"]["ETag"]})
    assert (again["statusCode"], again["body"]) == (304, "")
    missing = _get("/inbox/nothing.js")
    assert missing["statusCode"] == 404 and json.loads(missing["body"])["error"]["code"] == "not_found"


def test_with_iam_the_page_calls_this_origin_and_shows_numbers_as_configured(
    function_env: Callable[..., dict[str, str]],
) -> None:
    function_env("InboxFunction", INBOX_PHONE_NUMBERS="full")
    config = _get("/inbox/config.json")
    assert config["headers"]["Cache-Control"] == "no-store"
    assert json.loads(config["body"]) == {
        "auth": "iam",
        "api_base_url": "",
        "cognito": None,
        "phone_numbers": "full",
        "timezone": "Asia/Jerusalem",
        "human_takeover_hours": 12,
    }


def test_with_cognito_the_configuration_comes_from_the_stacks_parameter(
    aws: AwsStack, function_env: Callable[..., dict[str, str]]
) -> None:
    env = function_env("InboxFunction", INBOX_AUTH="JWT")
    aws.client("ssm").put_parameter(Name=env["INBOX_CONFIG_PARAMETER"], Value=json.dumps(SIGN_IN), Type="String")
    answer = _get("/inbox/config.json")
    config = json.loads(answer["body"])
    assert config["auth"] == "cognito"
    assert config["api_base_url"] == SIGN_IN["api_base_url"]
    assert config["cognito"] == SIGN_IN["cognito"]
    policy = _get("/inbox")["headers"]["Content-Security-Policy"]
    assert f"connect-src 'self' {SIGN_IN['api_base_url']} {SIGN_IN['cognito']['domain']};" in policy


def test_with_cognito_and_no_parameter_the_page_is_told_plainly(
    function_env: Callable[..., dict[str, str]],
) -> None:
    function_env("InboxFunction", INBOX_AUTH="JWT", INBOX_CONFIG_PARAMETER="/missing/inbox/config")
    answer = _get("/inbox/config.json")
    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["error"]["code"] == "configuration_error"
