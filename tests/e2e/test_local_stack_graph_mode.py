"""`make run` talks to the Graph simulator unless the shell holds a real WHATSAPP_ACCESS_TOKEN; then the
functions call the real Graph API (or GRAPH_API_BASE_URL) with the real phone number id, and no simulator
stands in. Checked on the environment the stack hands each function, without starting anything."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from local.meta_payloads import DEMO_PHONE_NUMBER_ID, DEMO_SECOND_PHONE_NUMBER_ID
from local.stack import LocalStack, StackOptions, _real_graph
from local.template_catalogue import DEFAULT_WABA_ID

TEMPLATE_ENV = {
    "GRAPH_API_BASE_URL": "https://graph.facebook.com",
    "WHATSAPP_PHONE_NUMBER_IDS": "",
    "WHATSAPP_BUSINESS_ACCOUNT_ID": "",
}


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "WHATSAPP_ACCESS_TOKEN",
        "GRAPH_API_BASE_URL",
        "WHATSAPP_PHONE_NUMBER_IDS",
        "WHATSAPP_BUSINESS_ACCOUNT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_credentials_the_functions_call_the_simulator_as_the_demo_number(shell: pytest.MonkeyPatch) -> None:
    stack = LocalStack(StackOptions(quiet=True))
    stack.simulator = SimpleNamespace(base_url="http://127.0.0.1:8089")
    assert stack._graph_overrides(dict(TEMPLATE_ENV)) == {
        "GRAPH_API_BASE_URL": "http://127.0.0.1:8089",
        "WHATSAPP_PHONE_NUMBER_IDS": f"{DEMO_PHONE_NUMBER_ID},{DEMO_SECOND_PHONE_NUMBER_ID}",
        "WHATSAPP_BUSINESS_ACCOUNT_ID": DEFAULT_WABA_ID,
    }


def test_with_a_real_token_the_functions_call_graph_with_the_real_number(shell: pytest.MonkeyPatch) -> None:
    shell.setenv("WHATSAPP_ACCESS_TOKEN", "EAAG-real-token")
    shell.setenv("WHATSAPP_PHONE_NUMBER_IDS", "106540352242922")
    shell.setenv("WHATSAPP_BUSINESS_ACCOUNT_ID", "102290129340777")
    stack = LocalStack(StackOptions(quiet=True))
    assert _real_graph()  # so start() builds no simulator
    overrides = stack._graph_overrides(dict(TEMPLATE_ENV))
    # The template's graph.facebook.com stays; the demo number never stands in for a real one
    assert overrides == {
        "WHATSAPP_PHONE_NUMBER_IDS": "106540352242922",
        "WHATSAPP_BUSINESS_ACCOUNT_ID": "102290129340777",
    }


def test_with_a_real_token_graph_api_base_url_may_point_elsewhere(shell: pytest.MonkeyPatch) -> None:
    shell.setenv("WHATSAPP_ACCESS_TOKEN", "EAAG-real-token")
    shell.setenv("GRAPH_API_BASE_URL", "https://graph.example.test")
    overrides = LocalStack(StackOptions(quiet=True))._graph_overrides(dict(TEMPLATE_ENV))
    assert overrides == {
        "GRAPH_API_BASE_URL": "https://graph.example.test",
        "WHATSAPP_PHONE_NUMBER_IDS": "",
        "WHATSAPP_BUSINESS_ACCOUNT_ID": "",
    }
