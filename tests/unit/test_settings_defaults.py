"""The defaults the issues promise, pinned where they live twice: in the settings models (what a function
does when a variable is unset) and in template.yaml (what a deployed function gets).

A deployed function only ever sees the template's value, so each promised variable must be fed from a
template parameter whose Default is the promised value, and the code must read that variable by that name.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from local.template import load_template
from whatsapp_crm.errors import ConfigurationError
from whatsapp_crm.send_limits import MAX_BOOKING_URL
from whatsapp_crm.settings import ResponderSettings, SendSettings, load, reset_settings

TEMPLATE = load_template()

# What the issues promise, per function and environment variable (issue 4 for sends, issue 3 for replies).
PROMISED: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "SendFunction": (
        SendSettings,
        {
            "RATE_LIMIT_PER_RECIPIENT_PER_MINUTE": 10,
            "RATE_LIMIT_PER_NUMBER_PER_SECOND": 80,
        },
    ),
    "ResponderFunction": (
        ResponderSettings,
        {
            "AUTO_REPLY_COOLDOWN_MINUTES": 30,
            "HUMAN_TAKEOVER_HOURS": 12,
            "MARK_AS_READ": True,
            "BUSINESS_HOURS": "sun-thu 09:00-18:00",
            "BUSINESS_TIMEZONE": "Asia/Jerusalem",
        },
    ),
}
CASES = [(function, name, value) for function, (_, promised) in PROMISED.items() for name, value in promised.items()]
CASE_IDS = [name for _, name, _ in CASES]

# A value other than the default for each variable, as the environment would carry it, and what it means.
OTHER_VALUES: dict[str, tuple[str, Any]] = {
    "RATE_LIMIT_PER_RECIPIENT_PER_MINUTE": ("3", 3),
    "RATE_LIMIT_PER_NUMBER_PER_SECOND": ("20", 20),
    "AUTO_REPLY_COOLDOWN_MINUTES": ("5", 5),
    "HUMAN_TAKEOVER_HOURS": ("2", 2),
    "MARK_AS_READ": ("false", False),
    "BUSINESS_HOURS": ("sun-fri 08:00-20:00", "sun-fri 08:00-20:00"),
    "BUSINESS_TIMEZONE": ("Europe/London", "Europe/London"),
}


def _own_environment(logical_id: str) -> dict[str, Any]:
    properties = TEMPLATE["Resources"][logical_id]["Properties"]
    return dict(properties.get("Environment", {}).get("Variables", {}))


def _settings_from(monkeypatch: pytest.MonkeyPatch, model: type[Any], **variables: str) -> Any:
    """The function's settings with only the required variables and `variables` in its environment."""
    for _, (_, promised) in PROMISED.items():
        for name in promised:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TABLE_NAME", "conversations")
    monkeypatch.setenv("INBOUND_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/inbound.fifo")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    return load(model)


@pytest.mark.parametrize(("function", "name", "promised"), CASES, ids=CASE_IDS)
def test_an_unset_variable_means_the_promised_default(
    monkeypatch: pytest.MonkeyPatch, function: str, name: str, promised: Any
) -> None:
    # Given a function started without the variable (a local run, or a template that forgot it)
    model, _ = PROMISED[function]
    # When it reads its settings
    settings = _settings_from(monkeypatch, model)
    # Then it behaves as the issue promises
    assert getattr(settings, name.lower()) == promised


@pytest.mark.parametrize(("function", "name", "promised"), CASES, ids=CASE_IDS)
def test_the_template_feeds_the_variable_from_a_parameter_defaulting_to_the_promise(
    monkeypatch: pytest.MonkeyPatch, function: str, name: str, promised: Any
) -> None:
    # Given the function as `sam deploy` creates it with no parameter overrides
    reference = _own_environment(function).get(name)
    assert isinstance(reference, dict) and set(reference) == {"Ref"}, f"{function}.{name} is not a parameter"
    parameter = TEMPLATE["Parameters"][reference["Ref"]]
    assert "Default" in parameter
    # When the function reads the text CloudFormation puts in its environment
    model, _ = PROMISED[function]
    deployed_text = str(parameter["Default"])
    settings = _settings_from(monkeypatch, model, **{name: deployed_text})
    # Then the deployed default is the promised one
    assert getattr(settings, name.lower()) == promised


@pytest.mark.parametrize(("function", "name", "promised"), CASES, ids=CASE_IDS)
def test_the_variable_the_template_sets_is_the_one_the_code_reads(
    monkeypatch: pytest.MonkeyPatch, function: str, name: str, promised: Any
) -> None:
    # Given an operator who changes the parameter behind the variable
    model, _ = PROMISED[function]
    text, meaning = OTHER_VALUES[name]
    assert meaning != promised
    # When the function starts with the changed value
    settings = _settings_from(monkeypatch, model, **{name: text})
    # Then it follows the change (a renamed setting would silently keep the default)
    assert getattr(settings, name.lower()) == meaning


BOOKING_LINKS = [
    ("", True),
    ("https://calendly.com/dana-realty/viewing", True),
    ("http://book.example.co.il/?agent=7", True),
    ("https://example.com/" + "x" * (MAX_BOOKING_URL - len("https://example.com/")), True),
    ("https://example.com/" + "x" * (MAX_BOOKING_URL + 1 - len("https://example.com/")), False),
    ("calendly.com/dana-realty", False),
    ("https://example.com/book now", False),
]


@pytest.mark.parametrize(("link", "accepted"), BOOKING_LINKS, ids=lambda value: str(value)[:40])
def test_the_template_and_the_responder_accept_the_same_booking_links(
    monkeypatch: pytest.MonkeyPatch, link: str, accepted: bool
) -> None:
    # Given the booking link an operator sets (MeetingBookingUrl → MEETING_BOOKING_URL)
    parameter = TEMPLATE["Parameters"]["MeetingBookingUrl"]
    # When CloudFormation checks it at deploy time
    by_template = len(link) <= int(parameter["MaxLength"]) and re.fullmatch(parameter["AllowedPattern"], link)
    # and the responder reads it on its first message
    try:
        _settings_from(monkeypatch, ResponderSettings, MEETING_BOOKING_URL=link)
        by_settings = True
    except ConfigurationError:
        by_settings = False
    # Then both accept it, or both refuse it (a link too long for the meeting reply never reaches a lead)
    assert bool(by_template) is accepted
    assert by_settings is accepted
