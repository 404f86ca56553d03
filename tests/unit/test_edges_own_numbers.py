"""Issue 10, point 5 as rules: only our numbers are stored, answered and sent from."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from local import meta_payloads as meta
from unit.test_edges_storage import _DeadLetters, _Queue, _Store
from unit.test_respond import FakeSender, FakeStore, _policy, _queued, _run
from whatsapp_crm.ingest import record_notification
from whatsapp_crm.numbers import is_ours, parse_phone_number_ids, sending_number
from whatsapp_crm.respond import ReplyOutcome
from whatsapp_crm.webhook.parse import parse_notification

OURS = ("106540352242922", "110022003300")
FOREIGN = "999000111222333"
LEAD = "972525551234"


@pytest.mark.parametrize(
    ("raw", "ids"),
    [
        ("106540352242922", ("106540352242922",)),
        ("106540352242922,110022003300", OURS),
        (" 106540352242922 , 110022003300 ,", OURS),
        ("106540352242922,106540352242922", ("106540352242922",)),
        ("", ()),
    ],
)
def test_the_list_of_our_numbers_is_read_as_written(raw: str, ids: tuple[str, ...]) -> None:
    assert parse_phone_number_ids(raw) == ids


def test_a_send_goes_from_the_number_the_lead_wrote_to_when_it_is_ours_else_the_first() -> None:
    assert sending_number("110022003300", OURS) == "110022003300"
    assert sending_number(FOREIGN, OURS) == OURS[0]
    assert sending_number(None, OURS) == OURS[0]
    assert sending_number(None, ()) == ""
    assert not is_ours(FOREIGN, OURS)


def test_messages_and_statuses_to_a_foreign_number_are_dropped_and_counted() -> None:
    # Given one delivery with a message to one of our numbers, one to a foreign number, and a foreign status
    ours = meta.text_message(LEAD, "שלום", wamid="wamid.ours")
    foreign = meta.text_message(LEAD, "שלום", wamid="wamid.foreign")
    document = meta.envelope(
        meta.message_value([ours], phone_number_id=OURS[1]),
        meta.message_value([foreign], phone_number_id=FOREIGN),
        meta.status_value([meta.status("wamid.theirs", "read", LEAD)], phone_number_id=FOREIGN),
    )
    store, queue = _Store(), _Queue()
    # When it is recorded by a deployment owning OURS
    report = record_notification(
        parse_notification(document), store, queue, dead_letters=_DeadLetters(), own_phone_number_ids=OURS
    )
    # Then only our message is stored and queued; the foreign parts are counted, with the id to log
    assert store.stored == ["wamid.ours"] and queue.queued == ["wamid.ours"]
    assert report.statuses == {}
    assert report.foreign_parts == 2
    assert report.foreign_phone_number_ids == {FOREIGN}


def _queued_to(phone_number_id: str) -> Any:
    return _queued(meta.text_message(LEAD, "שלום, הדירה פנויה?"), phone_number_id=phone_number_id)


def test_the_responder_never_answers_a_message_to_a_foreign_number() -> None:
    store, sender = FakeStore(), FakeSender()
    report = _run(_queued_to(FOREIGN), store, sender, policy=replace(_policy(), own_phone_number_ids=OURS))
    assert report.outcome is ReplyOutcome.FOREIGN_NUMBER
    assert sender.sent == [] and sender.reads == [] and store.claims == {}


def test_the_responder_answers_from_the_receiving_number_when_it_is_ours() -> None:
    store, sender = FakeStore(), FakeSender()
    report = _run(_queued_to(OURS[1]), store, sender, policy=replace(_policy(), own_phone_number_ids=OURS))
    assert report.outcome is ReplyOutcome.SENT
    assert [sent.phone_number_id for sent in sender.sent] == [OURS[1]]
