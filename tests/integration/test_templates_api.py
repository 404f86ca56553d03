"""Templates known before sending, through the real TemplatesFunction, SendFunction and WebhookFunction:
moto's DynamoDB over HTTP and the Graph simulator's template catalogue on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from conftest import AwsStack
from integration.api_client import ApiClient
from local import meta_payloads as meta
from local.graph_simulator import GraphSimulator
from local.template_catalogue import DEFAULT_WABA_ID, default_catalogue

E164 = "+972525551234"
LEAD = "972525551234"


@pytest.fixture
def api(aws: AwsStack, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
    graph_fake.set_templates(default_catalogue())
    return ApiClient(
        function_env,
        graph_fake,
        WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID,
        WHATSAPP_BUSINESS_ACCOUNT_ID=DEFAULT_WABA_ID,
        TEMPLATE_REFRESH_MIN_SECONDS="0",
    )


def _listings(graph_fake: GraphSimulator) -> int:
    return sum(1 for record in graph_fake.recorded() if record.endpoint == "templates")


def _entry(answer: dict[str, Any], name: str, language: str = "he") -> dict[str, Any]:
    return next(t for t in answer["templates"] if t["name"] == name and t["language"] == language)


def _template_send(name: str, *components: dict[str, Any], language: str = "he") -> dict[str, Any]:
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components:
        template["components"] = list(components)
    return {"to": E164, "type": "template", "template": template}


def _body(*texts: str) -> dict[str, Any]:
    return {"type": "body", "parameters": [{"type": "text", "text": text} for text in texts]}


class TestListing:
    def test_the_first_read_lists_graph_once_and_later_reads_come_from_the_cache(
        self, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        # When the CRM asks for the templates of an account never synced
        first = api.templates()
        # Then they come from Graph, each with what a send must give
        assert first.status == 200, first.body
        answer = first.json()
        assert answer["synced_at"] is not None
        assert len(answer["templates"]) == len(default_catalogue())
        assert _entry(answer, "property_update")["parameters"] == {
            "header": None,
            "header_format": None,
            "body": 2,
            "buttons": [{"index": "0", "sub_type": "quick_reply", "parameters": 0}],
        }
        named = _entry(answer, "mortgage_documents")
        assert named["parameter_format"] == "NAMED"
        assert named["parameters"]["body"] == ["first_name", "document_list", "due_date"]
        assert _entry(answer, "new_project_launch")["status"] == "PENDING"
        # And a second read does not call Graph again
        assert api.templates().json()["templates"] == answer["templates"]
        assert _listings(graph_fake) == 1

    def test_refresh_lists_graph_again_and_drops_what_meta_deleted(
        self, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        api.templates()
        # Given Meta deleted a template and paused another since the last sync
        graph_fake.set_templates([t for t in default_catalogue() if t["name"] != "open_house_invite"])
        graph_fake.set_template_status("property_update", "he", "PAUSED")
        # When the CRM asks for a refresh
        answer = api.templates("refresh=true").json()
        # Then the cache follows Meta
        assert "open_house_invite" not in {t["name"] for t in answer["templates"]}
        assert _entry(answer, "property_update")["status"] == "PAUSED"
        assert _listings(graph_fake) == 2

    def test_a_large_account_is_read_page_by_page(self, api: ApiClient, graph_fake: GraphSimulator) -> None:
        many = [
            {**t, "id": str(5000 + i), "name": f"listing_{i:03d}"} for i, t in enumerate([default_catalogue()[0]] * 230)
        ]
        graph_fake.set_templates(many)
        answer = api.templates().json()
        assert len(answer["templates"]) == 230
        assert _listings(graph_fake) == 3  # limit=100: 100 + 100 + 30

    def test_a_second_refresh_within_the_interval_is_429_and_costs_no_graph_call(
        self, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        api.overrides["TEMPLATE_REFRESH_MIN_SECONDS"] = "60"
        assert api.templates("refresh=true").status == 200
        refused = api.templates("refresh=true")
        assert refused.status == 429
        assert refused.error["code"] == "rate_limited" and refused.error["scope"] == "templates"
        assert 1 <= int(refused.headers["retry-after"]) <= 61
        assert _listings(graph_fake) == 1
        # The cache is still served without refresh
        assert api.templates().status == 200

    def test_the_hourly_graph_budget_is_never_exceeded(self, api: ApiClient, graph_fake: GraphSimulator) -> None:
        api.overrides["TEMPLATE_SYNC_CALLS_PER_HOUR"] = "2"
        assert api.templates("refresh=true").status == 200
        assert api.templates("refresh=true").status == 200
        spent = api.templates("refresh=true")
        assert spent.status == 429 and spent.error["scope"] == "templates"
        assert _listings(graph_fake) == 2

    def test_filters_by_status_and_name(self, api: ApiClient) -> None:
        approved = api.templates("status=APPROVED").json()["templates"]
        assert approved and {t["status"] for t in approved} == {"APPROVED"}
        one = api.templates("name=viewing_reminder").json()["templates"]
        assert {(t["name"], t["language"]) for t in one} == {("viewing_reminder", "he"), ("viewing_reminder", "en")}

    @pytest.mark.parametrize("query", ["refresh=yes", "status=approved", "name=Bad-Name"])
    def test_a_bad_query_is_a_400_naming_the_parameter(self, api: ApiClient, query: str) -> None:
        result = api.templates(query)
        assert result.status == 400
        assert result.error["field"] == query.split("=")[0]

    def test_without_a_business_account_id_the_listing_is_a_configuration_error(self, api: ApiClient) -> None:
        api.overrides["WHATSAPP_BUSINESS_ACCOUNT_ID"] = ""
        result = api.templates()
        assert result.status == 500 and result.error["code"] == "configuration_error"


class TestSchedule:
    def test_the_schedule_syncs_the_cache(self, api: ApiClient) -> None:
        outcome = api.scheduled_template_sync()
        assert outcome["synced"] is True and outcome["listed"] == len(default_catalogue())
        assert len(api.templates().json()["templates"]) == len(default_catalogue())

    def test_a_graph_outage_during_a_sync_keeps_the_cache_and_says_why(
        self, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        api.scheduled_template_sync()
        graph_fake.set_outage(True)
        outcome = api.scheduled_template_sync()
        graph_fake.set_outage(False)
        assert outcome["synced"] is False and outcome["reason"] == "graph_error"
        answer = api.templates().json()
        assert len(answer["templates"]) == len(default_catalogue())
        assert answer["last_error"].startswith("GraphUnavailableError")

    def test_a_refresh_refused_by_meta_is_a_502_with_metas_error(
        self, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        graph_fake.fail_next(190, on="templates")
        result = api.templates("refresh=true")
        assert result.status == 502
        assert result.error["graph_error"]["code"] == 190


class TestSendsAreChecked:
    def test_a_matching_template_is_sent(self, api: ApiClient, graph_fake: GraphSimulator) -> None:
        api.templates()
        result = api.send(_template_send("property_update", _body("דנה", "הרצל 10")))
        assert result.status == 201, result.body
        assert len(graph_fake.sent_messages()) == 1

    @pytest.mark.parametrize(
        ("send", "field"),
        [
            (_template_send("property_update", _body("דנה")), "template.components.body"),
            (_template_send("propery_update", _body("דנה", "x")), "template.name"),
            (_template_send("property_update", _body("a", "b"), language="en"), "template.language.code"),
            (_template_send("price_drop_alert", _body("הרצל 10")), "template.status"),
            (_template_send("new_project_launch", _body("חולון")), "template.status"),
        ],
        ids=["wrong count", "unknown name", "unknown language", "paused", "in review"],
    )
    def test_a_template_meta_would_refuse_is_a_422_and_nothing_is_sent_or_counted(
        self, api: ApiClient, graph_fake: GraphSimulator, aws: AwsStack, send: dict[str, Any], field: str
    ) -> None:
        api.templates()
        result = api.send(send)
        assert result.status == 422, result.body
        error = result.error
        assert error["code"] == "template_mismatch"
        assert [d["field"] for d in error["differences"]] == [field]
        assert error["template"]["name"] == send["template"]["name"]
        assert graph_fake.sent_messages() == []
        # The rate budget was not spent either
        rate_items = aws.client("dynamodb").scan(
            TableName=aws.ref("ConversationsTable"),
            FilterExpression="begins_with(PK, :rate)",
            ExpressionAttributeValues={":rate": {"S": "RATE#recipient#"}},
        )["Items"]
        assert rate_items == []

    def test_a_cache_never_synced_sends_as_before_and_maps_metas_refusal(
        self, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        result = api.send(_template_send("propery_update", _body("x")))
        assert result.status == 502
        assert result.error["graph_error"]["code"] == 132001

    def test_a_graph_outage_during_sync_never_blocks_a_send(self, api: ApiClient, graph_fake: GraphSimulator) -> None:
        api.templates()
        graph_fake.set_outage(True)
        assert api.scheduled_template_sync()["synced"] is False
        graph_fake.set_outage(False)
        assert api.send(_template_send("property_update", _body("דנה", "הרצל 10"))).status == 201


class TestStatusWebhooks:
    def test_a_paused_template_is_refused_at_once_and_sent_again_once_reinstated(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator
    ) -> None:
        api.templates()
        now = int(time.time())
        paused = meta.template_status_update("property_update", "he", "PAUSED", template_id=1003, at=now + 1)
        assert webhook(paused).status == 200
        assert _entry(api.templates().json(), "property_update")["status"] == "PAUSED"
        send = _template_send("property_update", _body("דנה", "הרצל 10"))
        assert api.send(send).error["differences"][0]["given"] == "PAUSED"
        reinstated = meta.template_status_update("property_update", "he", "REINSTATED", template_id=1003, at=now + 2)
        assert webhook(reinstated).status == 200
        assert api.send(send).status == 201

    def test_an_event_older_than_the_cache_is_skipped(self, api: ApiClient, webhook: Any) -> None:
        api.templates()
        stale = meta.template_status_update(
            "property_update", "he", "REJECTED", template_id=1003, at=int(time.time()) - 3600
        )
        assert webhook(stale).status == 200
        assert _entry(api.templates().json(), "property_update")["status"] == "APPROVED"

    def test_a_webhook_for_a_template_we_never_saw_is_a_logged_counted_skip(
        self, api: ApiClient, webhook: Any, log_output: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        api.templates()
        capsys.readouterr()
        unseen = meta.template_status_update("summer_sale", "he", "APPROVED", template_id=999)
        # And one naming a cached template under another template's id (another account's template)
        foreign = meta.template_status_update("property_update", "he", "DISABLED", template_id=4242)
        assert webhook(unseen).status == 200
        assert webhook(foreign).status == 200
        answer = api.templates().json()
        assert "summer_sale" not in {t["name"] for t in answer["templates"]}
        assert _entry(answer, "property_update")["status"] == "APPROVED"
        logged = log_output.getvalue()
        assert "template status update skipped" in logged and "summer_sale" in logged
        metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
        assert sum(m.get("TemplateStatusUpdatesSkipped", [0])[0] for m in metrics) == 2

    def test_an_event_without_the_template_name_is_counted_unusable(self, api: ApiClient, webhook: Any) -> None:
        broken = meta.template_status_update("property_update", "he", "PAUSED", template_id=1003)
        del broken["entry"][0]["changes"][0]["value"]["message_template_name"]
        assert webhook(broken).status == 200
