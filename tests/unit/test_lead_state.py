"""How readers see a lead's partition (store/dynamodb.py lead_state): the lead item's business-wide fields
over one conversation's, the conversation chosen by number or by the lead's latest message, and a lead item
written before issue 14 read as its one conversation until the migration moves it."""

from __future__ import annotations

from typing import Any

from whatsapp_crm.store.dynamodb import lead_state

LEAD, FIRST, SECOND = "972525551234", "106540352242922", "110022003300"


def _lead(**fields: Any) -> dict[str, Any]:
    return {"PK": f"LEAD#{LEAD}", "SK": "LEAD", "wa_id": LEAD, **fields}


def _conversation(number: str, **fields: Any) -> dict[str, Any]:
    return {"PK": f"LEAD#{LEAD}", "SK": f"CONV#{number}", "wa_id": LEAD, "last_phone_number_id": number, **fields}


def test_nothing_stored_is_no_lead() -> None:
    assert lead_state(LEAD, []) is None


def test_the_opt_out_is_the_lead_s_whichever_conversation_is_read() -> None:
    items = [
        _lead(opted_out=True, opt_state_at="2026-12-07T09:00:00Z", last_phone_number_id=FIRST),
        _conversation(FIRST, last_inbound_at="2026-12-07T08:00:00Z", unread_tags={"0a"}),
        _conversation(SECOND, last_inbound_at="2026-12-07T10:00:00Z", unread_tags={"0b", "0c"}),
    ]
    for number, unread in ((FIRST, 1), (SECOND, 2)):
        view = lead_state(LEAD, items, number)
        assert view is not None
        assert (view["phone_number_id"], view["opted_out"], view["unread_count"]) == (number, True, unread)


def test_without_a_number_the_conversation_the_lead_last_wrote_to_is_read() -> None:
    items = [
        _conversation(FIRST, last_inbound_at="2026-12-07T08:00:00Z", last_message_at="2026-12-07T11:00:00Z"),
        _conversation(SECOND, last_inbound_at="2026-12-07T10:00:00Z", last_message_at="2026-12-07T10:00:00Z"),
    ]
    view = lead_state(LEAD, items)
    assert view is not None and view["last_phone_number_id"] == SECOND
    assert set(view["conversations"]) == {FIRST, SECOND}


def test_a_lead_written_before_issue_14_is_its_number_s_conversation_until_migrated() -> None:
    legacy = _lead(last_phone_number_id=FIRST, last_inbound_at="2026-12-06T10:00:00Z", unread_count=3, opted_out=False)
    view = lead_state(LEAD, [legacy])
    assert view is not None
    assert (view["phone_number_id"], view["last_inbound_at"], view["unread_count"]) == (
        FIRST,
        "2026-12-06T10:00:00Z",
        3,
    )
    # A conversation item written since the deploy is newer than the lead's copy of it
    newer = _conversation(FIRST, last_inbound_at="2026-12-07T10:00:00Z")
    view = lead_state(LEAD, [legacy, newer])
    assert view is not None and view["last_inbound_at"] == "2026-12-07T10:00:00Z"


def test_a_number_with_no_conversation_reads_only_the_lead() -> None:
    items = [_lead(opted_out=False), _conversation(FIRST, last_inbound_at="2026-12-07T08:00:00Z")]
    view = lead_state(LEAD, items, SECOND)
    assert view is not None
    assert (view["phone_number_id"], view.get("last_inbound_at"), view["opted_out"]) == (SECOND, None, False)
