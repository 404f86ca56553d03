"""The agent inbox's resources in template.yaml: the page's function, and with ApiAuth=JWT the Cognito user pool,
its hosted UI domain, the PKCE app client, the agents' API and the configuration the page starts from."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from local.template import load_template
from support.template_resolution import resources_as_deployed
from whatsapp_crm.inbox_page import page_config
from whatsapp_crm.settings import InboxSettings

COGNITO_TYPES = {"AWS::Cognito::UserPool", "AWS::Cognito::UserPoolDomain", "AWS::Cognito::UserPoolClient"}
PAGE_ORIGIN = {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
PAGE_URL = {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/inbox"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def with_jwt(template: dict[str, Any]) -> dict[str, Any]:
    return resources_as_deployed(template, "JWT", "")


def _of_type(resources: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = [resource for resource in resources.values() if resource["Type"] == resource_type]
    assert len(found) == 1, f"{resource_type}: {len(found)}"
    return dict(found[0]["Properties"])


def test_with_iam_there_is_no_user_pool_and_no_sign_in_configuration(template: dict[str, Any]) -> None:
    resources = resources_as_deployed(template, "IAM")
    assert not {r["Type"] for r in resources.values()} & (COGNITO_TYPES | {"AWS::SSM::Parameter"})
    inbox = resources["InboxFunction"]["Properties"]["Environment"]["Variables"]
    assert inbox["INBOX_AUTH"] == "IAM"


def test_agents_are_invited_and_sign_in_with_their_email(with_jwt: dict[str, Any]) -> None:
    pool = _of_type(with_jwt, "AWS::Cognito::UserPool")
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    assert pool["UsernameAttributes"] == ["email"]
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
    assert pool["MfaConfiguration"] in ("OPTIONAL", "ON")


def test_the_hosted_ui_has_a_domain_unique_to_the_stack_unless_one_is_given(
    template: dict[str, Any], with_jwt: dict[str, Any]
) -> None:
    domain = _of_type(with_jwt, "AWS::Cognito::UserPoolDomain")
    assert domain["UserPoolId"] == {"Ref": "AgentUserPool"}
    stack_id = {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
    assert domain["Domain"] == {"Fn::Join": ["-", ["wa-inbox", stack_id]]}
    pattern = template["Parameters"]["InboxAuthDomainPrefix"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "acme-realty-agents")
    assert not re.fullmatch(pattern, "Acme_Realty") and not re.fullmatch(pattern, "-agents")


def test_the_app_client_is_public_and_only_does_the_code_flow_back_to_the_page(with_jwt: dict[str, Any]) -> None:
    client = _of_type(with_jwt, "AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert "openid" in client["AllowedOAuthScopes"]
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert client["CallbackURLs"] == [PAGE_URL] and client["LogoutURLs"] == [PAGE_URL]
    assert client["ExplicitAuthFlows"] == ["ALLOW_REFRESH_TOKEN_AUTH"]
    assert client["PreventUserExistenceErrors"] == "ENABLED"


def test_the_agents_api_takes_the_pools_tokens_from_the_pages_origin_only(with_jwt: dict[str, Any]) -> None:
    api = with_jwt["AgentApi"]["Properties"]
    assert api["CorsConfiguration"]["AllowOrigins"] == [PAGE_ORIGIN]
    assert api["CorsConfiguration"]["AllowHeaders"] == ["authorization", "content-type", "idempotency-key"]
    assert "retry-after" in api["CorsConfiguration"]["ExposeHeaders"]
    assert api["Auth"]["DefaultAuthorizer"] == "AgentJwtAuthorizer"


def test_the_page_reads_its_configuration_from_the_parameter_the_stack_writes(
    template: dict[str, Any], with_jwt: dict[str, Any]
) -> None:
    parameter = _of_type(with_jwt, "AWS::SSM::Parameter")
    inbox = with_jwt["InboxFunction"]["Properties"]
    assert inbox["Environment"]["Variables"]["INBOX_CONFIG_PARAMETER"] == parameter["Name"]
    assert inbox["Environment"]["Variables"]["INBOX_AUTH"] == "JWT"
    (statement,) = inbox["Policies"][0]["Statement"]
    assert statement["Action"] == ["ssm:GetParameter"]
    assert statement["Resource"]["Fn::Sub"].endswith(":parameter" + parameter["Name"]["Fn::Sub"])
    # Its value, with CloudFormation's substitutions made, is what the function turns into the page's config.
    names = {
        "AgentApi": "abc123",
        "AWS::Region": "il-central-1",
        "AWS::URLSuffix": "amazonaws.com",
        "AgentUserPoolDomain": "wa-inbox-0f1e",
        "InboxUserPoolClient": "4client",
        "AgentUserPool": "il-central-1_Pool",
    }
    text = re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], parameter["Value"]["Fn::Sub"])
    config = page_config(
        InboxSettings(inbox_auth="JWT", inbox_config_parameter="/stack/inbox/config"), lambda _: json.loads(text)
    )
    assert config.api_base_url == "https://abc123.execute-api.il-central-1.amazonaws.com"
    assert config.cognito is not None
    assert config.cognito.domain == "https://wa-inbox-0f1e.auth.il-central-1.amazoncognito.com"
    assert (config.cognito.client_id, config.cognito.user_pool_id) == ("4client", "il-central-1_Pool")
    # The function names the parameter instead of referencing anything of the sign-in: AgentApi and the
    # client depend on HttpApi, which depends on this function, so a reference would close a cycle.
    text_of_function = json.dumps(inbox)
    for resource in ("InboxConfig", "AgentApi", "InboxUserPoolClient", "AgentUserPool", "AgentUserPoolDomain"):
        assert f'"Ref": "{resource}"' not in text_of_function and "${" + resource not in text_of_function


def test_the_outputs_say_where_the_inbox_is_and_where_to_invite_agents(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["InboxUrl"]["Value"] == PAGE_URL
    for name in ("AgentApiUrl", "AgentUserPoolId", "AgentSignInDomain"):
        assert outputs[name]["Condition"] == "UseJwtAuth"
