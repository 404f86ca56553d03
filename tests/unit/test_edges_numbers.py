"""Issue 10, point 6 as rules: only possible numbers are sent to, and a sender id that is no number is stored
but never claimed for a reply."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unit.test_respond import FakeSender, FakeStore, _run, _text
from whatsapp_crm.phone import InvalidPhoneNumberError, normalize_phone
from whatsapp_crm.respond import ReplyOutcome


@pytest.mark.parametrize(
    "raw",
    [
        "05255512",  # a mobile prefix with a landline's length
        "052555123456",  # three digits too many
        "+9725255512",
        "9725255512",
        "052-555-12",
        "+972 52 555 123 456",
    ],
)
def test_an_impossible_israeli_mobile_is_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumberError):
        normalize_phone(raw, "IL")


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("052-555-1234", "+972525551234"),
        ("0525551234", "+972525551234"),
        ("052 555 1234", "+972525551234"),
        ("+972525551234", "+972525551234"),
        ("+972 52-555-1234", "+972525551234"),
        ("972525551234", "+972525551234"),
        ("00972525551234", "+972525551234"),
        ("050-000-0000", "+972500000000"),
        ("058-555-1234", "+972585551234"),
        ("03-555-1234", "+97235551234"),
        ("02-623-4567", "+97226234567"),
        ("077-555-1234", "+972775551234"),
        ("+1 415 555 0142", "+14155550142"),
        ("14155550142", "+14155550142"),
        ("+44 7700 900123", "+447700900123"),
        ("+4915123456789", "+4915123456789"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+971501234567", "+971501234567"),
        ("+5511987654321", "+5511987654321"),
    ],
)
def test_every_real_israeli_form_and_foreign_numbers_are_accepted(raw: str, e164: str) -> None:
    assert normalize_phone(raw, "IL").e164 == e164


@pytest.mark.parametrize(
    "sender_id",
    ["🙂", "9" * 200, "٩٧٢٥٢٥٥٥١٢٣٤", "972-52-555-1234-🙂", "IL.1234567890123456789"],
    ids=["emoji", "200-digits", "arabic-indic-digits", "digits-and-emoji", "bsuid"],
)
def test_a_sender_id_that_is_no_phone_number_is_never_claimed_and_logged_once_with_its_type(
    sender_id: str, log_output: io.StringIO
) -> None:
    # Given a greeting (an intent worth answering) from an id that is not a phone number
    store, sender = FakeStore(), FakeSender()
    queued = _text("שלום", wa_id=sender_id)
    # When the responder handles it, twice (a redelivery)
    first = _run(queued, store, sender)
    second = _run(queued, store, sender)
    # Then nothing is claimed or sent, and the message says why
    assert first.outcome is second.outcome is ReplyOutcome.NOT_A_PHONE_NUMBER
    assert store.claims == {}
    assert sender.sent == [] and sender.reads == []
    assert store.annotations[queued.wamid]["reply_status"] == "not_a_phone_number"
    # And each delivery logs the error once, with its type and without the id itself
    lines = [json.loads(line) for line in log_output.getvalue().splitlines() if "not a phone number" in line]
    assert len(lines) == 2
    assert {line["error_type"] for line in lines} == {"InvalidPhoneNumberError"}
    assert all(sender_id not in json.dumps(line, ensure_ascii=False) for line in lines)
    assert "another consumer" not in log_output.getvalue()


NON_PHONE_SENDERS = st.one_of(
    st.text(st.characters(categories=["So", "Lo", "Nd", "Zs", "Po"]), min_size=1, max_size=40),
    st.integers(min_value=16, max_value=300).map(lambda size: "9" * size),
    st.text(st.sampled_from("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹०१२३४५"), min_size=8, max_size=15),
)


@settings(max_examples=150, deadline=None)
@given(sender_id=NON_PHONE_SENDERS)
def test_any_sender_id_is_either_a_number_to_answer_or_never_claimed(sender_id: str) -> None:
    store, sender = FakeStore(), FakeSender()
    report = _run(_text("שלום", wa_id=sender_id), store, sender)
    try:
        normalize_phone(sender_id)
    except InvalidPhoneNumberError:
        # (our own phone_number_id as a sender is refused one step earlier, as our own message)
        assert report.outcome in (ReplyOutcome.NOT_A_PHONE_NUMBER, ReplyOutcome.OWN_MESSAGE)
        assert store.claims == {} and sender.sent == []
    else:
        assert report.outcome is not ReplyOutcome.NOT_A_PHONE_NUMBER
