"""Nobody on the internet may send WhatsApp messages in the business's name: every HttpApi route of
template.yaml but /webhook must sit behind the API's authorizer (IAM by default, JWT when ApiAuth=JWT)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from local.template import load_template
from support.template_resolution import EXTERNAL_ISSUER, resources_as_deployed

PUBLIC_PATHS = {
    "/webhook",  # Meta cannot sign with SigV4; the webhook checks X-Hub-Signature-256 instead
    # The agent inbox's static files and sign-in configuration: no data; every read and send needs a token.
    "/inbox",
    "/inbox/{file+}",
}
AGENT_API = "AgentApi"
# (ApiAuth, JwtIssuer): IAM; JWT with the CRM's own issuer; JWT for agents only (machines keep IAM).
DEPLOYMENTS = [("IAM", EXTERNAL_ISSUER), ("JWT", EXTERNAL_ISSUER), ("JWT", "")]
AGENT_ROUTES = {
    ("GET", "/conversations"),
    ("GET", "/conversations/{wa_id}/messages"),
    ("POST", "/conversations/{wa_id}/read"),
    ("POST", "/messages"),
    ("GET", "/conversations/{wa_id}/media/{media_id}"),
    ("GET", "/templates"),
    ("POST", "/media"),
}
EXPECTED_PROTECTED = {
    ("POST", "/messages"),
    ("GET", "/conversations"),
    ("GET", "/conversations/{wa_id}/messages"),
    ("POST", "/conversations/{wa_id}/read"),
    ("GET", "/health"),
    ("GET", "/templates"),
    ("GET", "/conversations/{wa_id}/media/{media_id}"),
    ("POST", "/media"),
}


def _routes(template: dict[str, Any], api_auth: str, issuer: str = EXTERNAL_ISSUER) -> list[dict[str, Any]]:
    """Every HttpApi route with the authorizer it ends up with: its own, else its API's default."""
    resources = resources_as_deployed(template, api_auth, issuer)
    apis = {lid: r for lid, r in resources.items() if r["Type"] == "AWS::Serverless::HttpApi"}
    routes = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for name, event in resource["Properties"].get("Events", {}).items():
            if event["Type"] != "HttpApi":
                continue
            properties = event.get("Properties", {})
            api_ref = properties.get("ApiId", {}).get("Ref")
            # An event without ApiId lands on SAM's implicit API, which has no authorizer at all.
            api_auth_config = apis.get(api_ref, {}).get("Properties", {}).get("Auth", {})
            authorizer = properties.get("Auth", {}).get("Authorizer") or api_auth_config.get("DefaultAuthorizer")
            routes.append(
                {
                    "function": logical_id,
                    "event": name,
                    "api": api_ref,
                    "method": properties.get("Method", "ANY").upper(),
                    "path": properties.get("Path", "/"),
                    "authorizer": authorizer,
                    "api_auth": api_auth_config,
                }
            )
    return routes


def _expected_authorizer(api: str | None, api_auth: str, issuer: str) -> str:
    if api == AGENT_API:
        return "AgentJwtAuthorizer" if api_auth == "JWT" else "AWS_IAM"
    return "JwtAuthorizer" if api_auth == "JWT" and issuer else "AWS_IAM"


def _open_routes(template: dict[str, Any], api_auth: str, issuer: str = EXTERNAL_ISSUER) -> list[str]:
    problems = []
    for route in _routes(template, api_auth, issuer):
        label = f"{route['method']} {route['path']} ({route['function']}.{route['event']})"
        if route["path"] in PUBLIC_PATHS and route["api"] == "HttpApi":
            continue
        expected = _expected_authorizer(route["api"], api_auth, issuer)
        if route["authorizer"] != expected:
            problems.append(f"{label}: authorizer {route['authorizer']!r}, expected {expected!r}")
        elif expected == "AWS_IAM" and route["api_auth"].get("EnableIamAuthorizer") is not True:
            problems.append(f"{label}: the API does not enable its IAM authorizer")
        elif expected != "AWS_IAM":
            jwt = route["api_auth"].get("Authorizers", {}).get(expected, {})
            if not jwt.get("JwtConfiguration", {}).get("issuer"):
                problems.append(f"{label}: the JWT authorizer has no issuer")
    return problems


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.mark.parametrize(("api_auth", "issuer"), DEPLOYMENTS)
def test_no_route_but_the_webhook_and_the_inbox_page_is_left_open(
    template: dict[str, Any], api_auth: str, issuer: str
) -> None:
    assert _open_routes(template, api_auth, issuer) == []


@pytest.mark.parametrize(("api_auth", "issuer"), DEPLOYMENTS)
def test_agents_reach_exactly_the_inbox_routes_on_their_own_api(
    template: dict[str, Any], api_auth: str, issuer: str
) -> None:
    routes = _routes(template, api_auth, issuer)
    agent = {(r["method"], r["path"]) for r in routes if r["api"] == AGENT_API}
    assert agent == AGENT_ROUTES
    assert all(r["api"] in ("HttpApi", AGENT_API) for r in routes)


def test_with_jwt_and_no_issuer_machines_keep_iam_and_agents_use_the_stacks_user_pool(
    template: dict[str, Any],
) -> None:
    routes = _routes(template, "JWT", "")
    crm = {r["authorizer"] for r in routes if r["api"] == "HttpApi" and r["path"] not in PUBLIC_PATHS}
    agents = [r for r in routes if r["api"] == AGENT_API]
    assert crm == {"AWS_IAM"}
    assert {r["authorizer"] for r in agents} == {"AgentJwtAuthorizer"}
    jwt = agents[0]["api_auth"]["Authorizers"]["AgentJwtAuthorizer"]["JwtConfiguration"]
    assert jwt["issuer"] == {"Fn::Sub": "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${AgentUserPool}"}
    assert jwt["audience"] == [{"Ref": "InboxUserPoolClient"}]


@pytest.mark.parametrize(("api_auth", "issuer"), DEPLOYMENTS)
def test_the_send_and_read_routes_exist_behind_the_authorizer(
    template: dict[str, Any], api_auth: str, issuer: str
) -> None:
    routes = _routes(template, api_auth, issuer)
    protected = {(r["method"], r["path"]) for r in routes if r["api"] == "HttpApi" and r["path"] not in PUBLIC_PATHS}
    assert protected >= EXPECTED_PROTECTED


def test_the_webhook_is_public_on_purpose(template: dict[str, Any]) -> None:
    webhook = [r for r in _routes(template, "IAM") if r["path"] == "/webhook"]
    assert {r["method"] for r in webhook} == {"GET", "POST"}
    assert {r["authorizer"] for r in webhook} == {"NONE"}


def test_the_inbox_page_is_public_and_holds_no_data(template: dict[str, Any]) -> None:
    page = [r for r in _routes(template, "JWT", "") if r["path"].startswith("/inbox")]
    assert {(r["method"], r["path"], r["function"]) for r in page} == {
        ("GET", "/inbox", "InboxFunction"),
        ("GET", "/inbox/{file+}", "InboxFunction"),
    }
    # The page's function reads no table and no secret: it can only hand out files and its configuration.
    inbox = template["Resources"]["InboxFunction"]["Properties"]
    actions = {action for policy in inbox["Policies"] for s in policy["Statement"] for action in s["Action"]}
    assert actions == {"ssm:GetParameter"}


def test_language_extensions_run_before_sam(template: dict[str, Any]) -> None:
    # SAM needs a plain string for DefaultAuthorizer; only LanguageExtensions resolves the !If in time.
    assert template["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


class TestTheCheckItself:
    """The check above must be able to fail; these mutate a copy of the template."""

    def test_a_route_that_opts_out_is_found(self, template: dict[str, Any]) -> None:
        broken = copy.deepcopy(template)
        events = broken["Resources"]["SendFunction"]["Properties"]["Events"]
        events["Send"]["Properties"]["Auth"] = {"Authorizer": "NONE"}
        assert any("POST /messages" in problem for problem in _open_routes(broken, "IAM"))

    def test_a_route_on_the_implicit_api_is_found(self, template: dict[str, Any]) -> None:
        broken = copy.deepcopy(template)
        del broken["Resources"]["ConversationsFunction"]["Properties"]["Events"]["Health"]["Properties"]["ApiId"]
        assert any("GET /health" in problem for problem in _open_routes(broken, "JWT"))

    def test_an_api_without_a_default_authorizer_is_found(self, template: dict[str, Any]) -> None:
        broken = copy.deepcopy(template)
        del broken["Resources"]["HttpApi"]["Properties"]["Auth"]
        assert len(_open_routes(broken, "IAM")) >= len(EXPECTED_PROTECTED)
