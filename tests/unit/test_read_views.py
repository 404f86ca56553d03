"""What the read API tells the agent inbox about a lead and a message, from the items the services store."""

from __future__ import annotations

import json
from datetime import timedelta

from whatsapp_crm.read_api import conversation_summary, message_view

SLOTS = {
    "type": "interactive",
    "interactive": {
        "type": "button",
        "body": {"text": "בחרו מועד"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "slot:2026-12-07T08:00Z", "title": "מחר 10:00"}},
                {"type": "reply", "reply": {"id": "slot:2026-12-08T12:00Z", "title": "יום ג׳ 14:00"}},
            ]
        },
    },
}


def test_an_agents_send_starts_a_takeover_the_page_can_show() -> None:
    lead = {"wa_id": "972525551234", "last_human_outbound_at": "2026-12-06T10:00:00Z"}
    summary = conversation_summary(lead, timedelta(hours=12))
    assert summary.last_human_outbound_at == "2026-12-06T10:00:00Z"
    assert summary.human_takeover_until == "2026-12-06T22:00:00Z"
    assert conversation_summary({"wa_id": "972525551234"}).human_takeover_until is None
    assert conversation_summary(lead, timedelta(0)).human_takeover_until is None


def test_each_lead_names_the_business_number_its_conversation_is_with() -> None:
    # Given a lead who wrote to the second number, and one the business only ever messaged
    wrote = {"wa_id": "972525551234", "last_phone_number_id": "222000222"}
    never_wrote = {"wa_id": "972525551235"}
    # Then the first is with the number it wrote to, the second with the number sends fall back to
    assert conversation_summary(wrote, default_phone_number_id="111000111").phone_number_id == "222000222"
    assert conversation_summary(never_wrote, default_phone_number_id="111000111").phone_number_id == "111000111"
    assert conversation_summary(never_wrote).phone_number_id is None


def test_an_auto_reply_shows_the_slots_it_offered() -> None:
    item = {
        "wamid": "wamid.OUT1",
        "direction": "outbound",
        "message_type": "interactive",
        "text": "בחרו מועד",
        "timestamp": "2026-12-06T10:00:01Z",
        "sent_by": "auto_reply",
        "auto_reply": True,
        "request": json.dumps(SLOTS, ensure_ascii=False),
    }
    view = message_view(item)
    assert view.sent_by == "auto_reply"
    assert [(button.id, button.title) for button in view.buttons] == [
        ("slot:2026-12-07T08:00Z", "מחר 10:00"),
        ("slot:2026-12-08T12:00Z", "יום ג׳ 14:00"),
    ]
    assert view.template_name is None


def test_a_template_send_names_its_template_and_odd_requests_show_nothing() -> None:
    template = {"type": "template", "template": {"name": "viewing_reminder", "language": {"code": "he"}}}
    base = {"wamid": "wamid.T", "direction": "outbound", "timestamp": "2026-12-06T10:00:00Z", "sent_by": "human"}
    assert message_view({**base, "request": json.dumps(template)}).template_name == "viewing_reminder"
    for odd in ["not json", "[1, 2]", json.dumps({"interactive": {"action": {"buttons": [{"reply": "x"}, 3]}}})]:
        view = message_view({**base, "request": odd})
        assert view.buttons == [] and view.template_name is None
    # An inbound message never claims a sender or a request of ours.
    inbound = message_view({"wamid": "wamid.IN", "direction": "inbound", "sent_by": "human", "request": "{}"})
    assert inbound.sent_by is None
