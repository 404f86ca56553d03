"""Send bodies are built without I/O: Meta's exact shapes, `to` always E.164, structural mistakes refused early."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_crm.graph import GraphClient, InvalidMessageError
from whatsapp_crm.graph import payloads as build
from whatsapp_crm.phone import InvalidPhoneNumberError

LEAD_NATIONAL = "052-555-1234"
LEAD_E164 = "+972525551234"


class TestEnvelope:
    def test_every_builder_adds_the_product_recipient_type_and_an_e164_recipient(self) -> None:
        bodies = [
            build.text(LEAD_NATIONAL, "hi"),
            build.template(LEAD_NATIONAL, "hello_world", "he"),
            build.media(LEAD_NATIONAL, "image", media_id="1"),
            build.reply_buttons(LEAD_NATIONAL, "pick", [("a", "A")]),
            build.list_message(LEAD_NATIONAL, "pick", "open", [{"rows": [{"id": "r", "title": "R"}]}]),
            build.reaction(LEAD_NATIONAL, "wamid.1", "👍"),
            build.location(LEAD_NATIONAL, 32.08, 34.78),
            build.contacts(LEAD_NATIONAL, [{"name": {"formatted_name": "Dana"}}]),
        ]
        for body in bodies:
            assert body["messaging_product"] == "whatsapp"
            assert body["recipient_type"] == "individual"
            assert body["to"] == LEAD_E164
            assert body["type"] in body

    def test_an_american_wa_id_is_not_read_as_israeli(self) -> None:
        assert build.text("14155550142", "hi")["to"] == "+14155550142"

    def test_the_default_region_is_the_callers(self) -> None:
        assert build.text("020 7946 0958", "hi", default_region="GB")["to"] == "+442079460958"

    def test_an_impossible_recipient_is_refused_before_anything_is_sent(self) -> None:
        with pytest.raises(InvalidPhoneNumberError):
            build.text("052-555", "hi")

    def test_replies_quote_the_message_and_callback_data_is_top_level(self) -> None:
        body = build.text(LEAD_E164, "hi", reply_to="wamid.IN", biz_opaque_callback_data="lead:42")
        assert body["context"] == {"message_id": "wamid.IN"}
        assert body["biz_opaque_callback_data"] == "lead:42"

    def test_no_context_without_a_reply(self) -> None:
        assert "context" not in build.text(LEAD_E164, "hi")


class TestPassthrough:
    def test_a_callers_send_object_is_completed_and_its_recipient_normalized(self) -> None:
        # Given a Meta send object from the send API, without messaging_product, with a national number
        message = {"to": LEAD_NATIONAL, "type": "text", "text": {"body": "שלום"}}
        # When it is completed
        body = build.message(message)
        # Then it is what Meta expects, and the caller's object is untouched
        assert body == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": LEAD_E164,
            "type": "text",
            "text": {"body": "שלום"},
        }
        assert message["to"] == LEAD_NATIONAL

    def test_an_explicit_recipient_type_is_kept(self) -> None:
        body = build.message({"to": LEAD_E164, "type": "text", "text": {"body": "x"}, "recipient_type": "group"})
        assert body["recipient_type"] == "group"

    def test_a_foreign_messaging_product_is_overridden(self) -> None:
        body = build.message({"to": LEAD_E164, "type": "text", "text": {"body": "x"}, "messaging_product": "sms"})
        assert body["messaging_product"] == "whatsapp"

    @pytest.mark.parametrize("message", [{"type": "text", "text": {"body": "x"}}, {"to": LEAD_E164}, {"to": 5}])
    def test_a_send_object_without_recipient_or_type_is_refused(self, message: dict[str, Any]) -> None:
        with pytest.raises(InvalidMessageError):
            build.message(message)


class TestShapes:
    def test_text(self) -> None:
        assert build.text(LEAD_E164, "https://example.com", preview_url=True) == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": LEAD_E164,
            "type": "text",
            "text": {"preview_url": True, "body": "https://example.com"},
        }

    def test_template_with_components(self) -> None:
        components = [{"type": "body", "parameters": [{"type": "text", "text": "Dana"}]}]
        body = build.template(LEAD_E164, "visit_reminder", "he", components)
        assert body["template"] == {"name": "visit_reminder", "language": {"code": "he"}, "components": components}

    def test_template_without_components_sends_none(self) -> None:
        assert build.template(LEAD_E164, "hello_world", "en_US")["template"] == {
            "name": "hello_world",
            "language": {"code": "en_US"},
        }

    def test_document_by_link_with_caption_and_filename(self) -> None:
        body = build.media(
            LEAD_E164, "document", link="https://example.com/a.pdf", caption="Floor plan", filename="plan.pdf"
        )
        assert body["type"] == "document"
        assert body["document"] == {
            "link": "https://example.com/a.pdf",
            "caption": "Floor plan",
            "filename": "plan.pdf",
        }

    def test_reply_buttons(self) -> None:
        body = build.reply_buttons(
            LEAD_E164, "When suits you?", [("am", "Morning"), ("pm", "Evening")], header="Visit", footer="Reply"
        )
        assert body["interactive"] == {
            "type": "button",
            "header": {"type": "text", "text": "Visit"},
            "body": {"text": "When suits you?"},
            "footer": {"text": "Reply"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "am", "title": "Morning"}},
                    {"type": "reply", "reply": {"id": "pm", "title": "Evening"}},
                ]
            },
        }

    def test_list(self) -> None:
        sections = [{"title": "Tel Aviv", "rows": [{"id": "ta-1", "title": "3 rooms", "description": "Florentin"}]}]
        body = build.list_message(LEAD_E164, "Listings", "Show", sections)
        assert body["interactive"] == {
            "type": "list",
            "body": {"text": "Listings"},
            "action": {"button": "Show", "sections": sections},
        }

    def test_reaction_never_quotes(self) -> None:
        body = build.reaction(LEAD_E164, "wamid.IN", "")
        assert body["reaction"] == {"message_id": "wamid.IN", "emoji": ""}
        assert "context" not in body

    def test_location(self) -> None:
        body = build.location(LEAD_E164, 32.0853, 34.7818, name="Office", address="Rothschild 1")
        assert body["location"] == {
            "latitude": 32.0853,
            "longitude": 34.7818,
            "name": "Office",
            "address": "Rothschild 1",
        }

    def test_mark_as_read_with_and_without_typing(self) -> None:
        plain = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"}
        assert build.mark_as_read("wamid.IN") == plain
        assert build.mark_as_read("wamid.IN", typing_indicator=True) == plain | {"typing_indicator": {"type": "text"}}


class TestStructuralRefusals:
    @pytest.mark.parametrize(
        "arguments",
        [
            {"kind": "image"},
            {"kind": "image", "media_id": "1", "link": "https://example.com/a.png"},
            {"kind": "audio", "media_id": "1", "caption": "listen"},
            {"kind": "image", "media_id": "1", "filename": "a.png"},
            {"kind": "gif", "media_id": "1"},
        ],
    )
    def test_media_needs_exactly_one_source_and_only_fitting_fields(self, arguments: dict[str, Any]) -> None:
        with pytest.raises(InvalidMessageError):
            build.media(LEAD_E164, **arguments)

    @pytest.mark.parametrize(
        "buttons",
        [[], [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")], [("a", "A"), ("a", "B")], [("a", "A"), ("b", "A")]],
    )
    def test_reply_buttons_are_one_to_three_and_unique(self, buttons: list[tuple[str, str]]) -> None:
        with pytest.raises(InvalidMessageError):
            build.reply_buttons(LEAD_E164, "pick", buttons)

    def test_a_list_holds_at_most_ten_rows_across_sections(self) -> None:
        sections = [{"title": f"s{s}", "rows": [{"id": f"{s}-{r}", "title": "x"} for r in range(4)]} for s in range(3)]
        with pytest.raises(InvalidMessageError, match="12"):
            build.list_message(LEAD_E164, "pick", "open", sections)

    def test_an_empty_text_is_refused(self) -> None:
        with pytest.raises(InvalidMessageError):
            build.text(LEAD_E164, "")

    def test_coordinates_out_of_range_are_refused(self) -> None:
        with pytest.raises(InvalidMessageError):
            build.location(LEAD_E164, 91.0, 34.0)


class TestClientWithoutNetwork:
    """Sockets are disabled here: these refusals must happen before any request is attempted."""

    def test_repr_never_shows_the_token(self) -> None:
        client = GraphClient("EAAG-secret-token-value", base_url="https://graph.example")
        assert "EAAG-secret-token-value" not in repr(client)
        assert "secret" not in repr(client)

    def test_a_non_numeric_phone_number_id_is_refused(self) -> None:
        client = GraphClient("token")
        with pytest.raises(InvalidMessageError):
            client.send_text("../me", LEAD_E164, "hi")

    def test_an_impossible_recipient_is_refused(self) -> None:
        client = GraphClient("token")
        with pytest.raises(InvalidPhoneNumberError):
            client.send_text("106540352242922", "12", "hi")

    def test_an_empty_token_is_a_configuration_mistake(self) -> None:
        with pytest.raises(ValueError):
            GraphClient("")
