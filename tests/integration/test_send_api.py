"""POST /messages through the real SendFunction: moto's DynamoDB over HTTP and the Graph fake on loopback."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from conftest import TEST_ACCESS_TOKEN, AwsStack
from integration.api_client import ApiClient
from local import meta_payloads as meta
from local.graph_simulator import GraphSimulator
from whatsapp_crm.graph.client import GraphClient
from whatsapp_crm.records import PreferenceChange
from whatsapp_crm.send_models import AnyMessage

LEAD = "972525551234"
OTHER_LEAD = "972545550199"
E164 = "+972525551234"


@pytest.fixture
def api(aws: AwsStack, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
    # The template's default sending number is empty (set per deployment); leads that wrote us use theirs.
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)


def _lead_writes(webhook: Any, wa_id: str = LEAD, *, seconds_ago: int = 60, text: str = "יש חניה?") -> str:
    """The lead messages the business, which opens (or reopens) the 24-hour window."""
    message = meta.text_message(wa_id, text, timestamp=int(time.time()) - seconds_ago)
    assert webhook(meta.envelope(meta.message_value([message], name="דנה"))).status == 200
    return str(message["id"])


def _meta_json(body: Mapping[str, Any]) -> dict[str, Any]:
    """What Meta must receive for a request body: ours plus messaging_product, recipient_type and '+E.164'."""
    expected = {key: value for key, value in copy.deepcopy(dict(body)).items() if key != "lead_id"}
    expected.update(messaging_product="whatsapp", recipient_type="individual", to=E164)
    return expected


KINDS: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": {"preview_url": True, "body": "הדירה ברחוב הרצל עדיין פנויה https://x.co/1"}},
    "template": {
        "type": "template",
        "template": {
            "name": "viewing_reminder",
            "language": {"code": "he"},
            "components": [
                {
                    "type": "header",
                    "parameters": [{"type": "image", "image": {"link": "https://cdn.example/flat.jpg"}}],
                },
                {"type": "body", "parameters": [{"type": "text", "text": "דנה"}, {"type": "text", "text": "10:30"}]},
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": "0",
                    "parameters": [{"type": "payload", "payload": "CONFIRM"}],
                },
            ],
        },
    },
    "image": {"type": "image", "image": {"link": "https://cdn.example/flat.jpg", "caption": "הסלון"}},
    "document": {
        "type": "document",
        "document": {"id": "1013859600285441", "filename": "contract.pdf", "caption": "חוזה"},
    },
    "audio": {"type": "audio", "audio": {"id": "1013859600285442"}},
    "video": {"type": "video", "video": {"link": "https://cdn.example/tour.mp4", "caption": "סיור"}},
    "sticker": {"type": "sticker", "sticker": {"id": "1013859600285443"}},
    "reply buttons": {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "text", "text": "תיאום צפייה"},
            "body": {"text": "מתי נוח לך?"},
            "footer": {"text": "נדל״ן כהן"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "slot-1", "title": "מחר 10:00"}},
                    {"type": "reply", "reply": {"id": "slot-2", "title": "מחר 17:00"}},
                    {"type": "reply", "reply": {"id": "none", "title": "אף אחד"}},
                ]
            },
        },
    },
    "list": {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "header": {"type": "text", "text": "דירות באזור"},
            "body": {"text": "בחרו דירה לפרטים"},
            "action": {
                "button": "לרשימה",
                "sections": [
                    {"title": "3 חדרים", "rows": [{"id": "a1", "title": "הרצל 12", "description": "קומה 2"}]},
                    {
                        "title": "4 חדרים",
                        "rows": [{"id": "b1", "title": "ויצמן 4"}, {"id": "b2", "title": "סוקולוב 9"}],
                    },
                ],
            },
        },
    },
    "location": {
        "type": "location",
        "location": {"latitude": 32.0853, "longitude": 34.7818, "name": "משרד המכירות", "address": "דיזנגוף 50"},
    },
    "contacts": {
        "type": "contacts",
        "contacts": [
            {
                "name": {"formatted_name": "יוסי כהן", "first_name": "יוסי"},
                "phones": [{"phone": "+972 52-555-0000", "type": "WORK", "wa_id": "972525550000"}],
            }
        ],
    },
}


class TestEveryKind:
    @pytest.mark.parametrize("kind", list(KINDS))
    def test_reaches_whatsapp_as_metas_exact_json_with_plus_on_to(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator, table: Any, kind: str
    ) -> None:
        # Given a lead who wrote a minute ago (the window is open)
        _lead_writes(webhook)
        body = {"to": "052-555-1234", **KINDS[kind]}
        # When an agent sends this kind with a national-format number
        result = api.send(body)
        # Then Meta got exactly the send object, completed, with '+E.164'; the caller got the wamid
        assert result.status == 201, result.body
        assert graph_fake.sent_messages() == [_meta_json(body)]
        answer = result.json()
        assert answer["to"] == E164
        assert answer["wa_id"] == LEAD
        assert answer["status"] == "accepted"
        stored = table.get_message(answer["message_id"])
        assert stored["direction"] == "outbound"
        assert stored["message_type"] == KINDS[kind]["type"]
        assert stored["sent_by"] == "human"

    def test_a_template_reports_metas_pacing_status(self, api: ApiClient, graph_fake: GraphSimulator) -> None:
        result = api.send({"to": E164, **KINDS["template"]})
        assert result.status == 201
        assert result.json()["message_status"] == "accepted"

    def test_a_reaction_targets_the_leads_message(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator
    ) -> None:
        inbound = _lead_writes(webhook)
        body = {"to": LEAD, "type": "reaction", "reaction": {"message_id": inbound, "emoji": "👍"}}
        assert api.send(body).status == 201
        assert graph_fake.sent_messages() == [_meta_json(body)]


class TestRecipient:
    @pytest.mark.parametrize(
        "spelling", ["+972525551234", "972525551234", "052-555-1234", "0525551234", "+972 52 555 1234"]
    )
    def test_every_spelling_of_the_number_reaches_the_same_lead(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator, spelling: str
    ) -> None:
        _lead_writes(webhook)
        result = api.send({"to": spelling, "type": "text", "text": {"body": "שלום"}})
        assert result.status == 201
        assert result.json()["wa_id"] == LEAD
        assert graph_fake.sent_messages()[0]["to"] == E164

    def test_another_countrys_number_keeps_its_country(self, api: ApiClient, graph_fake: GraphSimulator) -> None:
        result = api.send({"to": "16505551234", **KINDS["template"]})
        assert result.status == 201
        assert graph_fake.sent_messages()[0]["to"] == "+16505551234"

    @pytest.mark.parametrize("impossible", ["12", "052-555", "+999123456789", "call me"])
    def test_an_impossible_number_is_a_400_on_to_and_nothing_is_sent(
        self, api: ApiClient, graph_fake: GraphSimulator, impossible: str
    ) -> None:
        result = api.send({"to": impossible, **KINDS["template"]})
        assert result.status == 400
        assert result.error["code"] == "validation_error"
        assert result.error["field"] == "to"
        assert graph_fake.recorded() == []


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"type": "text", "text": {"body": "x" * 4097}}, "text.body"),
            ({"type": "text", "text": {"body": "hi", "preveiw_url": True}}, "text.preveiw_url"),
            ({"type": "image", "image": {"link": "http://cdn.example/a.jpg"}}, "image.link"),
            (
                {
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "body": {"text": "b"},
                        "action": {
                            "buttons": [{"type": "reply", "reply": {"id": str(n), "title": f"t{n}"}} for n in range(4)]
                        },
                    },
                },
                "interactive.action.buttons",
            ),
            ({"type": "carousel", "carousel": {}}, "type"),
            (
                {
                    "type": "reaction",
                    "reaction": {"message_id": "wamid.x", "emoji": "👍"},
                    "context": {"message_id": "w"},
                },
                "context",
            ),
        ],
    )
    def test_an_invalid_body_names_the_field_and_nothing_is_sent(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator, body: dict[str, Any], field: str
    ) -> None:
        _lead_writes(webhook)
        result = api.send({"to": E164, **body})
        assert result.status == 400
        assert result.error["code"] == "validation_error"
        assert result.error["field"] == field
        assert graph_fake.recorded() == []

    def test_a_body_that_is_not_json_is_a_400(self, api: ApiClient, graph_fake: GraphSimulator) -> None:
        result = api.send(None, raw="{not json")
        assert result.status == 400
        assert result.error["code"] == "validation_error"
        assert graph_fake.recorded() == []


class TestReplies:
    def test_a_reply_quotes_the_leads_message_and_is_stored_with_it(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        inbound = _lead_writes(webhook)
        body = {"to": E164, "context": {"message_id": inbound}, "type": "text", "text": {"body": "כן, יש חניה"}}
        result = api.send(body)
        assert result.status == 201
        assert graph_fake.sent_messages()[0]["context"] == {"message_id": inbound}
        assert table.get_message(result.json()["message_id"])["reply_to"] == inbound

    def test_a_human_send_clears_awaits_response_and_stores_the_crm_id(
        self, api: ApiClient, webhook: Any, table: Any
    ) -> None:
        _lead_writes(webhook)
        assert table.get_lead(LEAD)["awaits_response"] is True
        result = api.send({"to": E164, "lead_id": "crm-4411", "type": "text", "text": {"body": "אחזור אליך"}})
        assert result.status == 201
        lead = table.get_lead(LEAD)
        assert lead["awaits_response"] is False
        assert lead["lead_id"] == "crm-4411"
        assert lead["last_human_outbound_at"] is not None
        assert lead["last_message_preview"] == "אחזור אליך"


class TestRules:
    def test_free_form_outside_the_window_is_422_with_a_template_hint_and_nothing_sent(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator
    ) -> None:
        # Given the lead last wrote 25 hours ago
        _lead_writes(webhook, seconds_ago=25 * 3600)
        # When an agent sends free text
        result = api.send({"to": E164, "type": "text", "text": {"body": "עדיין מעוניינת?"}})
        # Then it is refused before Meta, with a hint to use a template
        assert result.status == 422
        assert result.error["code"] == "outside_customer_service_window"
        assert "template" in result.error["hint"]
        assert graph_fake.recorded() == []

    def test_free_form_to_a_lead_who_never_wrote_is_422(self, api: ApiClient, graph_fake: GraphSimulator) -> None:
        result = api.send({"to": OTHER_LEAD, "type": "image", "image": {"id": "1013859600285441"}})
        assert result.status == 422
        assert graph_fake.recorded() == []

    def test_a_template_goes_outside_the_window(self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator) -> None:
        _lead_writes(webhook, seconds_ago=3 * 24 * 3600)
        assert api.send({"to": E164, **KINDS["template"]}).status == 201
        assert len(graph_fake.sent_messages()) == 1

    def test_nothing_goes_to_a_lead_who_opted_out(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given a lead who wrote recently, then stopped messages from the business
        _lead_writes(webhook)
        table.record_preference(PreferenceChange(wa_id=LEAD, opted_out=True, timestamp="2026-01-01T00:00:00Z"))
        # When an agent sends a template, or free text inside the window
        refusals = [api.send({"to": E164, **KINDS["template"]}), api.send({"to": E164, **KINDS["text"]})]
        # Then both are refused and Meta never hears of them
        assert [r.status for r in refusals] == [409, 409]
        assert {r.error["code"] for r in refusals} == {"recipient_opted_out"}
        assert graph_fake.recorded() == []


class TestRateLimits:
    def test_the_eleventh_message_in_a_minute_is_429_with_retry_after_and_not_sent(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator
    ) -> None:
        # Given a clock 20 seconds into a minute, and a lead with an open window
        _lead_writes(webhook, seconds_ago=600)
        now = datetime.fromtimestamp((int(time.time()) // 60) * 60 + 20, UTC)
        body = {"to": E164, "type": "text", "text": {"body": "עוד פרט"}}
        # When eleven messages go to that lead within the minute
        results = [api.send(body, clock=lambda: now) for _ in range(11)]
        # Then ten are sent and the eleventh is refused until the minute turns
        assert [r.status for r in results] == [201] * 10 + [429]
        assert results[-1].error["code"] == "rate_limited"
        assert results[-1].error["scope"] == "recipient"
        assert results[-1].headers["retry-after"] == "40"
        assert len(graph_fake.sent_messages()) == 10
        # And another lead is not held back by it
        other = api.send({"to": OTHER_LEAD, **KINDS["template"]}, clock=lambda: now)
        assert other.status == 201

    def test_the_limit_holds_across_instances_because_it_lives_in_the_table(
        self, api: ApiClient, aws: AwsStack, graph_fake: GraphSimulator
    ) -> None:
        # Given the recipient's counter for this minute already full (written by other Lambda instances)
        now = datetime.fromtimestamp((int(time.time()) // 60) * 60 + 5, UTC)
        minute = now.strftime("%Y-%m-%dT%H:%M:00Z")
        aws.client("dynamodb").put_item(
            TableName=aws.ref("ConversationsTable"),
            Item={"PK": {"S": f"RATE#recipient#{LEAD}#{minute}"}, "SK": {"S": "RATE"}, "count": {"N": "10"}},
        )
        # When this instance sends
        result = api.send({"to": E164, **KINDS["template"]}, clock=lambda: now)
        # Then it is refused without calling Meta
        assert result.status == 429
        assert result.headers["retry-after"] == "55"
        assert graph_fake.recorded() == []


class TestGraphErrors:
    @pytest.mark.parametrize(
        ("code", "http_status", "times", "status", "error_code"),
        [
            (131047, 400, 1, 422, "outside_customer_service_window"),
            (190, 401, 1, 502, "whatsapp_error"),
            (131000, 500, 3, 503, "whatsapp_unavailable"),
            (132001, 404, 1, 502, "whatsapp_error"),
            (130429, 400, 1, 429, "rate_limited"),
            (131056, 400, 1, 429, "rate_limited"),
            (131050, 400, 1, 409, "recipient_opted_out"),
        ],
    )
    def test_metas_refusal_becomes_the_documented_error_with_metas_details(
        self,
        api: ApiClient,
        webhook: Any,
        graph_fake: GraphSimulator,
        table: Any,
        code: int,
        http_status: int,
        times: int,
        status: int,
        error_code: str,
    ) -> None:
        # Given Meta will refuse the next send(s)
        _lead_writes(webhook)
        graph_fake.fail_next(code, http_status=http_status, times=times)
        # When an agent sends
        result = api.send({"to": E164, "type": "text", "text": {"body": "שלום"}})
        # Then the error names the cause, carries Meta's own details, and leaks no token
        assert result.status == status
        assert result.error["code"] == error_code
        assert result.error["graph_error"]["code"] == code
        assert result.error["graph_error"]["fbtrace_id"]
        assert TEST_ACCESS_TOKEN not in result.body
        assert "Traceback" not in result.body
        assert graph_fake.sent_messages() == []
        if status == 429:
            assert int(result.headers["retry-after"]) >= 1
        if status == 422:
            assert "template" in result.error["hint"]
        if code == 131050:
            # Meta says the lead stopped marketing messages: they are opted out here too
            assert table.get_lead(LEAD)["opted_out"] is True

    def test_an_outage_answers_503_after_the_clients_retries(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator
    ) -> None:
        _lead_writes(webhook)
        graph_fake.set_outage(True)
        result = api.send({"to": E164, "type": "text", "text": {"body": "שלום"}})
        assert result.status == 503
        assert result.error["code"] == "whatsapp_unavailable"
        assert len(graph_fake.recorded()) == 2  # GRAPH_MAX_ATTEMPTS of SendFunction in template.yaml


class _StatusOvertakesTheRecord:
    """Meta's "delivered" webhook lands between Meta's answer and our own write of the send."""

    def __init__(self, client: GraphClient, webhook: Any) -> None:
        self.client = client
        self.webhook = webhook

    def send_message(self, phone_number_id: str, message: AnyMessage) -> Any:
        result = self.client.send_message(phone_number_id, message)
        delivered = meta.status(result.message_id, "delivered", LEAD)
        assert self.webhook(meta.envelope(meta.status_value([delivered]))).status == 200
        return result


def test_a_status_webhook_that_beats_the_sends_own_write_is_merged(
    api: ApiClient, webhook: Any, graph_fake: GraphSimulator, table: Any
) -> None:
    # Given Meta's "delivered" status arrives before the send function records its message
    _lead_writes(webhook)
    sender = _StatusOvertakesTheRecord(GraphClient(TEST_ACCESS_TOKEN, base_url=graph_fake.base_url), webhook)
    # When the send completes
    result = api.send({"to": E164, "type": "text", "text": {"body": "הנכס עדיין זמין"}}, sender=sender)
    # Then the message holds both: our text and type, and Meta's status (not reset to "accepted")
    assert result.status == 201
    stored = table.get_message(result.json()["message_id"])
    assert stored["message_type"] == "text"
    assert stored["text"] == "הנכס עדיין זמין"
    assert stored["status"] == "delivered"
    assert stored["sent_by"] == "human"
