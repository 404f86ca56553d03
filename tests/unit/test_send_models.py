"""POST /messages bodies: every kind Meta accepts passes as written; every documented limit is enforced."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from whatsapp_crm.api_errors import error_field
from whatsapp_crm.send_models import (
    SendRequest,
    TemplateMessage,
    TextMessage,
    buttons_message,
    media_id,
    parse_send_request,
    preview,
    readable_text,
    reply_to,
    requires_open_window,
    text_message,
)

TO = "+972525551234"


def _problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(field as the caller wrote it, message) for each validation problem."""
    with pytest.raises(ValidationError) as caught:
        parse_send_request(document)
    return [(error_field(error, SendRequest), error["msg"]) for error in caught.value.errors()]


def _fields(document: dict[str, Any]) -> set[str]:
    return {field for field, _ in _problems(document)}


def _button(n: int, title: str | None = None) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": f"b{n}", "title": title or f"option {n}"}}


def _rows(count: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{n}", "title": f"row {n}"} for n in range(count)]


VALID: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": {"body": "שלום"}},
    "text with preview": {"type": "text", "text": {"body": "https://x.co", "preview_url": True}},
    "template": {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}},
    "template with every parameter": {
        "type": "template",
        "template": {
            "name": "viewing",
            "language": {"code": "he", "policy": "deterministic"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "x" * 60}]},
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "דנה", "parameter_name": "first_name"},
                        {
                            "type": "currency",
                            "currency": {"fallback_value": "₪5,000", "code": "ILS", "amount_1000": 5000000},
                        },
                        {"type": "date_time", "date_time": {"fallback_value": "Sunday 10:00"}},
                    ],
                },
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": "0",
                    "parameters": [{"type": "payload", "payload": "YES"}],
                },
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "1",
                    "parameters": [{"type": "text", "text": "flat-12"}],
                },
                {
                    "type": "button",
                    "sub_type": "copy_code",
                    "index": "2",
                    "parameters": [{"type": "coupon_code", "coupon_code": "SPRING"}],
                },
            ],
        },
    },
    "template with a location header": {
        "type": "template",
        "template": {
            "name": "office",
            "language": {"code": "he"},
            "components": [
                {
                    "type": "header",
                    "parameters": [
                        {
                            "type": "location",
                            "location": {"latitude": 32.1, "longitude": 34.8, "name": "Office", "address": "Herzl 1"},
                        }
                    ],
                }
            ],
        },
    },
    "image by link": {"type": "image", "image": {"link": "https://cdn.example/a.jpg", "caption": "c" * 1024}},
    "image by id": {"type": "image", "image": {"id": "1013859600285441"}},
    "document": {"type": "document", "document": {"id": "1013859600285441", "filename": "חוזה.pdf", "caption": "חוזה"}},
    "audio": {"type": "audio", "audio": {"link": "https://cdn.example/a.ogg"}},
    "video": {"type": "video", "video": {"id": "1013859600285441", "caption": "tour"}},
    "sticker": {"type": "sticker", "sticker": {"id": "1013859600285441"}},
    "reply buttons": {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "image", "image": {"link": "https://cdn.example/a.jpg"}},
            "body": {"text": "b" * 1024},
            "footer": {"text": "f" * 60},
            "action": {"buttons": [_button(1, "t" * 20), _button(2), _button(3)]},
        },
    },
    "list": {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "header": {"type": "text", "text": "h" * 60},
            "body": {"text": "b" * 4096},
            "action": {
                "button": "b" * 20,
                "sections": [
                    {"title": "s" * 24, "rows": _rows(5, "a")},
                    {
                        "title": "other",
                        "rows": [{"id": "i" * 200, "title": "t" * 24, "description": "d" * 72}] + _rows(4, "b"),
                    },
                ],
            },
        },
    },
    "reaction": {"type": "reaction", "reaction": {"message_id": "wamid.HBgM", "emoji": "👍🏽"}},
    "reaction removed": {"type": "reaction", "reaction": {"message_id": "wamid.HBgM", "emoji": ""}},
    "location": {"type": "location", "location": {"latitude": -90, "longitude": 180, "name": "n", "address": "a"}},
    "contacts": {
        "type": "contacts",
        "contacts": [
            {
                "name": {"formatted_name": "Yossi Cohen", "first_name": "Yossi"},
                "phones": [{"phone": "+972 52-555-0000", "type": "WORK", "wa_id": "972525550000"}],
                "emails": [{"email": "y@example.com", "type": "WORK"}],
                "addresses": [{"city": "Tel Aviv", "country_code": "IL"}],
                "org": {"company": "Cohen Real Estate"},
                "urls": [{"url": "https://example.com"}],
                "birthday": "1980-02-29",
            }
        ],
    },
}


class TestEveryKindAsMetaWritesIt:
    @pytest.mark.parametrize("name", list(VALID))
    def test_is_accepted_and_forwarded_unchanged(self, name: str) -> None:
        # Given Meta's own send object (plus our optional extras)
        document = {"to": "052-555-1234", **copy.deepcopy(VALID[name])}
        # When it is validated, addressed to the normalized number and turned into the Graph body
        body = parse_send_request(document).addressed_to(TO).graph_body()
        # Then Meta gets what the caller wrote, only `to` rewritten, no defaults invented but Meta's envelope
        assert body == {"messaging_product": "whatsapp", "recipient_type": "individual", **document, "to": TO}

    def test_our_own_keys_never_reach_meta(self) -> None:
        document = {
            "to": TO,
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "lead_id": "crm-1",
            "biz_opaque_callback_data": "campaign-7",
            "context": {"message_id": "wamid.Q"},
            **VALID["text"],
        }
        body = parse_send_request(document).graph_body()
        assert "lead_id" not in body
        assert body["messaging_product"] == "whatsapp"
        assert body["recipient_type"] == "individual"
        assert body["biz_opaque_callback_data"] == "campaign-7"
        assert body["context"] == {"message_id": "wamid.Q"}

    def test_a_callback_is_added_only_where_the_caller_set_none(self) -> None:
        own = parse_send_request({"to": TO, "biz_opaque_callback_data": "campaign-7", **VALID["text"]})
        bare = parse_send_request({"to": TO, **VALID["text"]})
        assert own.addressed_to(TO, callback="idem:1").graph_body()["biz_opaque_callback_data"] == "campaign-7"
        assert bare.addressed_to(TO, callback="idem:1").graph_body()["biz_opaque_callback_data"] == "idem:1"
        assert "biz_opaque_callback_data" not in bare.addressed_to(TO).graph_body()


class TestTheServicesOwnReplies:
    """The responder writes its replies with the same model, so they obey the same limits."""

    def test_a_text_reply_quotes_the_lead_and_carries_the_callback(self) -> None:
        body = text_message(TO, "שלום", reply_to="wamid.IN", callback="auto:wamid.IN").graph_body()
        assert body == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": TO,
            "type": "text",
            "text": {"body": "שלום", "preview_url": False},
            "context": {"message_id": "wamid.IN"},
            "biz_opaque_callback_data": "auto:wamid.IN",
        }

    def test_no_quote_without_a_message_to_quote(self) -> None:
        assert "context" not in text_message(TO, "hi").graph_body()

    def test_buttons(self) -> None:
        body = buttons_message(TO, "מתי נוח לך?", [("am", "בוקר"), ("pm", "ערב")], reply_to="wamid.IN").graph_body()
        assert body["interactive"] == {
            "type": "button",
            "body": {"text": "מתי נוח לך?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "am", "title": "בוקר"}},
                    {"type": "reply", "reply": {"id": "pm", "title": "ערב"}},
                ]
            },
        }
        assert body["context"] == {"message_id": "wamid.IN"}

    @pytest.mark.parametrize(
        "buttons",
        [[], [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")], [("a", "A"), ("a", "B")], [("a", "x" * 21)]],
    )
    def test_buttons_meta_would_refuse_are_refused_here(self, buttons: list[tuple[str, str]]) -> None:
        with pytest.raises(ValidationError):
            buttons_message(TO, "pick", buttons)

    def test_a_text_over_metas_limit_is_refused_here(self) -> None:
        with pytest.raises(ValidationError):
            text_message(TO, "x" * 4097)


class TestLimits:
    @pytest.mark.parametrize(
        ("document", "field"),
        [
            ({"type": "text", "text": {"body": "x" * 4097}}, "text.body"),
            ({"type": "text", "text": {"body": ""}}, "text.body"),
            ({"type": "text", "text": {"body": "hi", "preview_url": "yes"}}, "text.preview_url"),
            (
                {"type": "text", "text": {"body": "hi"}, "biz_opaque_callback_data": "x" * 513},
                "biz_opaque_callback_data",
            ),
            ({"type": "text", "text": {"body": "hi"}, "recipient_type": "group"}, "recipient_type"),
            ({"type": "text", "text": {"body": "hi"}, "lead_id": "x" * 129}, "lead_id"),
            ({"type": "image", "image": {"link": "https://cdn.example/a.jpg", "caption": "c" * 1025}}, "image.caption"),
            ({"type": "image", "image": {"link": "http://cdn.example/a.jpg"}}, "image.link"),
            ({"type": "image", "image": {"link": "ftp://cdn.example/a.jpg"}}, "image.link"),
            ({"type": "image", "image": {"link": "https://"}}, "image.link"),
            ({"type": "image", "image": {}}, "image"),
            ({"type": "image", "image": {"id": "1", "link": "https://cdn.example/a.jpg"}}, "image"),
            ({"type": "image", "image": {"id": "../../etc"}}, "image.id"),
            ({"type": "audio", "audio": {"id": "1", "caption": "no captions on audio"}}, "audio.caption"),
            ({"type": "sticker", "sticker": {"id": "1", "filename": "s.webp"}}, "sticker.filename"),
            ({"type": "image", "image": {"id": "1", "filename": "a.jpg"}}, "image.filename"),
            ({"type": "document", "document": {"id": "1", "filename": "f" * 241}}, "document.filename"),
            ({"type": "reaction", "reaction": {"message_id": "", "emoji": "👍"}}, "reaction.message_id"),
            ({"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "x" * 33}}, "reaction.emoji"),
            ({"type": "location", "location": {"latitude": 90.1, "longitude": 0}}, "location.latitude"),
            ({"type": "location", "location": {"latitude": 0, "longitude": -180.5}}, "location.longitude"),
            ({"type": "contacts", "contacts": []}, "contacts"),
            (
                {"type": "contacts", "contacts": [{"name": {"first_name": "No formatted name"}}]},
                "contacts[0].name.formatted_name",
            ),
            (
                {"type": "contacts", "contacts": [{"name": {"formatted_name": "A"}, "birthday": "29/02/1980"}]},
                "contacts[0].birthday",
            ),
        ],
    )
    def test_breaking_a_limit_names_the_field(self, document: dict[str, Any], field: str) -> None:
        assert field in _fields({"to": TO, **document})

    @pytest.mark.parametrize(
        ("interactive", "field"),
        [
            ({"type": "button", "body": {"text": "b"}, "action": {"buttons": []}}, "interactive.action.buttons"),
            (
                {"type": "button", "body": {"text": "b"}, "action": {"buttons": [_button(n) for n in range(4)]}},
                "interactive.action.buttons",
            ),
            (
                {"type": "button", "body": {"text": "b"}, "action": {"buttons": [_button(1, "t" * 21)]}},
                "interactive.action.buttons[0].reply.title",
            ),
            (
                {
                    "type": "button",
                    "body": {"text": "b"},
                    "action": {"buttons": [_button(1, "same"), _button(2, "same")]},
                },
                "interactive.action",
            ),
            (
                {"type": "button", "body": {"text": "b" * 1025}, "action": {"buttons": [_button(1)]}},
                "interactive.body.text",
            ),
            (
                {
                    "type": "button",
                    "body": {"text": "b"},
                    "footer": {"text": "f" * 61},
                    "action": {"buttons": [_button(1)]},
                },
                "interactive.footer.text",
            ),
            (
                {
                    "type": "button",
                    "header": {"type": "text", "text": "h" * 61},
                    "body": {"text": "b"},
                    "action": {"buttons": [_button(1)]},
                },
                "interactive.header.text",
            ),
            (
                {"type": "list", "body": {"text": "b"}, "action": {"button": "go", "sections": [{"rows": _rows(11)}]}},
                "interactive.action.sections[0].rows",
            ),
            (
                {
                    "type": "list",
                    "body": {"text": "b"},
                    "action": {
                        "button": "go",
                        "sections": [{"title": "a", "rows": _rows(6, "a")}, {"title": "b", "rows": _rows(5, "b")}],
                    },
                },
                "interactive.action",
            ),
            (
                {
                    "type": "list",
                    "body": {"text": "b"},
                    "action": {"button": "go", "sections": [{"rows": _rows(1, "a")}, {"rows": _rows(1, "b")}]},
                },
                "interactive.action",
            ),
            (
                {
                    "type": "list",
                    "body": {"text": "b"},
                    "action": {
                        "button": "go",
                        "sections": [{"rows": [{"id": "1", "title": "a"}, {"id": "1", "title": "b"}]}],
                    },
                },
                "interactive.action",
            ),
            (
                {
                    "type": "list",
                    "body": {"text": "b"},
                    "action": {"button": "b" * 21, "sections": [{"rows": _rows(1)}]},
                },
                "interactive.action.button",
            ),
            (
                {
                    "type": "list",
                    "body": {"text": "b"},
                    "action": {"button": "go", "sections": [{"title": "t" * 25, "rows": _rows(1)}]},
                },
                "interactive.action.sections[0].title",
            ),
            (
                {
                    "type": "list",
                    "body": {"text": "b"},
                    "action": {"button": "go", "sections": [{"rows": [{"id": "1", "title": "t" * 25}]}]},
                },
                "interactive.action.sections[0].rows[0].title",
            ),
            (
                {
                    "type": "list",
                    "body": {"text": "b"},
                    "action": {
                        "button": "go",
                        "sections": [{"rows": [{"id": "1", "title": "t", "description": "d" * 73}]}],
                    },
                },
                "interactive.action.sections[0].rows[0].description",
            ),
            (
                {
                    "type": "list",
                    "body": {"text": "b"},
                    "action": {"button": "go", "sections": [{"rows": [{"id": "i" * 201, "title": "t"}]}]},
                },
                "interactive.action.sections[0].rows[0].id",
            ),
            (
                {
                    "type": "list",
                    "body": {"text": "b" * 4097},
                    "action": {"button": "go", "sections": [{"rows": _rows(1)}]},
                },
                "interactive.body.text",
            ),
            (
                {
                    "type": "list",
                    "header": {"type": "image", "image": {"id": "1"}},
                    "body": {"text": "b"},
                    "action": {"button": "go", "sections": [{"rows": _rows(1)}]},
                },
                "interactive.header.type",
            ),
            ({"type": "product", "body": {"text": "b"}}, "interactive.type"),
        ],
    )
    def test_interactive_limits(self, interactive: dict[str, Any], field: str) -> None:
        assert field in _fields({"to": TO, "type": "interactive", "interactive": interactive})

    @pytest.mark.parametrize(
        ("template", "field"),
        [
            ({"name": "Hello World", "language": {"code": "he"}}, "template.name"),
            ({"name": "x" * 513, "language": {"code": "he"}}, "template.name"),
            ({"name": "hello", "language": {"code": "hebrew"}}, "template.language.code"),
            (
                {
                    "name": "hello",
                    "language": {"code": "he"},
                    "components": [{"type": "header", "parameters": [{"type": "text", "text": "x" * 61}]}],
                },
                "template.components[0]",
            ),
            (
                {"name": "hello", "language": {"code": "he"}, "components": [{"type": "header", "parameters": []}]},
                "template.components[0].parameters",
            ),
            (
                {"name": "hello", "language": {"code": "he"}, "components": [{"type": "body"}, {"type": "body"}]},
                "template",
            ),
            (
                {
                    "name": "hello",
                    "language": {"code": "he"},
                    "components": [{"type": "body", "parameters": [{"type": "payload", "payload": "x"}]}],
                },
                "template.components[0].parameters[0].type",
            ),
            (
                {
                    "name": "hello",
                    "language": {"code": "he"},
                    "components": [{"type": "button", "sub_type": "quick_reply", "index": "10"}],
                },
                "template.components[0].index",
            ),
            (
                {
                    "name": "hello",
                    "language": {"code": "he"},
                    "components": [
                        {"type": "button", "sub_type": "quick_reply", "index": "0"},
                        {"type": "button", "sub_type": "url", "index": "0"},
                    ],
                },
                "template",
            ),
            (
                {
                    "name": "hello",
                    "language": {"code": "he"},
                    "components": [{"type": "button", "sub_type": "teleport", "index": "0"}],
                },
                "template.components[0].sub_type",
            ),
            (
                {
                    "name": "hello",
                    "language": {"code": "he"},
                    "components": [
                        {
                            "type": "body",
                            "parameters": [
                                {
                                    "type": "currency",
                                    "currency": {"fallback_value": "5", "code": "shekel", "amount_1000": 5},
                                }
                            ],
                        }
                    ],
                },
                "template.components[0].parameters[0].currency.code",
            ),
            (
                {
                    "name": "hello",
                    "language": {"code": "he"},
                    "components": [
                        {"type": "body", "parameters": [{"type": "text", "text": "a", "parameter_name": "First Name"}]}
                    ],
                },
                "template.components[0].parameters[0].parameter_name",
            ),
            (
                {"name": "hello", "language": {"code": "he"}, "components": [{"type": "carousel", "cards": []}]},
                "template.components[0].type",
            ),
        ],
    )
    def test_template_limits(self, template: dict[str, Any], field: str) -> None:
        assert field in _fields({"to": TO, "type": "template", "template": template})

    def test_an_unknown_type_is_refused(self) -> None:
        assert _fields({"to": TO, "type": "poll", "poll": {}}) == {"type"}

    def test_a_typo_is_refused_instead_of_dropped(self) -> None:
        assert "image.captoin" in _fields({"to": TO, "type": "image", "image": {"id": "1", "captoin": "oops"}})

    def test_a_reaction_cannot_quote(self) -> None:
        document = {"to": TO, "context": {"message_id": "wamid.Q"}, **VALID["reaction"]}
        assert "context" in _fields(document)

    def test_the_to_field_is_required_and_bounded(self) -> None:
        assert "to" in _fields(dict(VALID["text"]))
        assert "to" in _fields({"to": "1" * 65, **VALID["text"]})


class TestWhatIsStored:
    def test_only_templates_may_leave_the_window(self) -> None:
        kinds = {name: requires_open_window(parse_send_request({"to": TO, **doc})) for name, doc in VALID.items()}
        assert {name for name, needs in kinds.items() if not needs} == {
            "template",
            "template with every parameter",
            "template with a location header",
        }

    def test_text_caption_and_previews(self) -> None:
        text = parse_send_request({"to": TO, "type": "text", "text": {"body": "א" * 200}})
        assert isinstance(text, TextMessage)
        assert readable_text(text) == "א" * 200
        assert preview(text) == "א" * 79 + "…"
        image = parse_send_request({"to": TO, **VALID["document"]})
        assert readable_text(image) == "חוזה"
        assert media_id(image) == "1013859600285441"
        template = parse_send_request({"to": TO, **VALID["template"]})
        assert isinstance(template, TemplateMessage)
        assert preview(template) == "[template: hello_world]"
        assert preview(parse_send_request({"to": TO, **VALID["sticker"]})) == "[sticker]"
        assert preview(parse_send_request({"to": TO, **VALID["contacts"]})) == "[contact: Yossi Cohen]"

    def test_reply_context_is_remembered(self) -> None:
        message = parse_send_request({"to": TO, "context": {"message_id": "wamid.Q"}, **VALID["location"]})
        assert reply_to(message) == "wamid.Q"
        assert reply_to(parse_send_request({"to": TO, **VALID["location"]})) is None
