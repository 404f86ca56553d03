"""Issue 10, point 9 as rules: the local stack's access log, scripts/sign_webhook.py's --as-is and its errors,
and the send API's answer to a body without `type`."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import TypeAdapter, ValidationError

from local.http_api import masked_path
from local.template import ROOT
from whatsapp_crm.api_errors import _message, error_field
from whatsapp_crm.send_models import SendRequest


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/conversations/972525551234/messages", "/conversations/9725******34/messages"),
        ("/conversations/%2B972525551234/read", "/conversations/%2B9725******34/read"),
        ("/conversations/+972525551234/messages", "/conversations/+9725******34/messages"),
        ("/conversations?limit=20", "/conversations?limit=20"),
        ("/health", "/health"),
    ],
)
def test_the_access_log_masks_phone_numbers_as_the_functions_do(path: str, logged: str) -> None:
    assert masked_path(path) == logged


@cache
def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sign_webhook_edges", ROOT / "scripts" / "sign_webhook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_as_is_sends_the_events_own_signature_so_the_bad_signature_event_stays_bad(
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = json.loads((ROOT / "events" / "webhook_post_bad_signature.json").read_text(encoding="utf-8"))
    own = event["headers"]["x-hub-signature-256"]
    assert _script().main([str(ROOT / "events" / "webhook_post_bad_signature.json"), "--as-is", "--curl"]) == 0
    line = capsys.readouterr().out
    assert f"x-hub-signature-256: {own}" in line
    assert line.count("x-hub-signature-256") == 1


def test_a_missing_file_is_one_clear_line_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert _script().main([str(Path("/no/such/webhook.json"))]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "cannot read /no/such/webhook.json" in error
    assert "Traceback" not in error


def test_a_send_body_without_type_names_type_and_lists_the_kinds() -> None:
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(SendRequest).validate_python({"to": "+972525551234", "text": {"body": "hi"}})
    [problem] = refused.value.errors()
    assert error_field(problem, SendRequest) == "type"
    message = _message(problem, SendRequest)
    assert message.startswith("`type` is required")
    assert "text, template, image" in message and "discriminator" not in message
