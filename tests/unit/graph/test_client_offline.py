"""Refusals the Graph client makes before any request: sockets are disabled here, so none may be attempted."""

from __future__ import annotations

import pytest

from whatsapp_crm.graph import GraphClient, InvalidMessageError
from whatsapp_crm.send_models import text_message

LEAD_E164 = "+972525551234"


def test_repr_never_shows_the_token() -> None:
    client = GraphClient("EAAG-secret-token-value", base_url="https://graph.example")
    assert "EAAG-secret-token-value" not in repr(client)
    assert "secret" not in repr(client)


def test_a_non_numeric_phone_number_id_is_refused() -> None:
    with pytest.raises(InvalidMessageError):
        GraphClient("token").send_message("../me", text_message(LEAD_E164, "hi"))


@pytest.mark.parametrize("to", ["972525551234", "052-555-1234", "+972 52 555 1234", "+0525551234", "+12"])
def test_a_recipient_not_in_e164_is_refused(to: str) -> None:
    # Meta would give a number without '+' the business number's country code (+1): someone else's phone.
    with pytest.raises(InvalidMessageError):
        GraphClient("token").send_message("106540352242922", text_message(to, "hi"))


def test_a_read_receipt_needs_the_message_it_marks() -> None:
    with pytest.raises(InvalidMessageError):
        GraphClient("token").mark_as_read("106540352242922", "")


def test_an_empty_token_is_a_configuration_mistake() -> None:
    with pytest.raises(ValueError):
        GraphClient("")
