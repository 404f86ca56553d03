"""The replay's day holds what docs/reliability.md says it holds: every intent, Meta's wire form, the shares."""

from __future__ import annotations

import pytest

from bench.replay_data import (
    ATTACK_KINDS,
    MALFORMED,
    MALFORMED_PART,
    REDELIVERY,
    TEXTS,
    generate_day,
)
from whatsapp_crm.intent.engine import detect_intent
from whatsapp_crm.signature import SignatureVerdict, verify

SECRET = "replay-test-secret"


@pytest.mark.parametrize(
    ("intent", "text"),
    [(intent, text) for intent, by_language in TEXTS.items() for texts in by_language.values() for text in texts],
)
def test_every_text_is_read_as_the_intent_it_was_written_for(intent: str, text: str) -> None:
    result = detect_intent(text)
    # and without the opt-out question, which the replay's checks do not expect
    assert (result.intent.value, result.confirm_opt_out) == (intent, False)


def test_the_day_has_the_promised_shares_and_every_valid_body_is_signed_in_metas_wire_form() -> None:
    # When a day of 2,000 webhooks is generated
    day = generate_day(2000, 100, seed=3, app_secret=SECRET)
    kinds = [webhook.kind for webhook in day.webhooks]

    # Then it has exactly the requested size and shares
    assert len(day.webhooks) == 2000
    assert kinds.count(REDELIVERY) == 400
    assert sum(kinds.count(kind) for kind in ATTACK_KINDS) == 100
    assert kinds.count(MALFORMED) + kinds.count(MALFORMED_PART) == 40

    # And redeliveries are byte-identical to an earlier original, every valid body is ASCII and signed
    for webhook in day.webhooks:
        if webhook.kind == REDELIVERY:
            assert webhook.original is not None and webhook.original < webhook.index
            assert day.webhooks[webhook.original].body == webhook.body
        if webhook.valid:
            assert webhook.body.isascii()
            assert verify(webhook.body, webhook.headers["x-hub-signature-256"], SECRET) is SignatureVerdict.VALID
