"""Issue 14, point 2 as behaviour: a lead who writes to two of our numbers has two conversations, keyed by
number and wa_id, each with its own 24-hour window, unread count and thread; the opt-out is the business's
(every number's); rate limits are per sending number. The real webhook, responder, send and conversations
handlers against moto's server and the Graph fake."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import AwsStack
from integration.api_client import ApiClient
from integration.test_responder import Responder
from local import meta_payloads as meta
from local.graph_simulator import GraphSimulator
from local.handlers import load_function_module

FIRST, SECOND = meta.DEMO_PHONE_NUMBER_ID, "110022003300"
OWN_LIST = f"{FIRST},{SECOND}"
LEAD = "972525551234"
TEXT = {"type": "text", "text": {"body": "אשמח לעזור"}}
TEMPLATE = {"type": "template", "template": {"name": "hello_world", "language": {"code": "en"}}}


@pytest.fixture
def api(function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST)


@pytest.fixture
def respond(
    aws: AwsStack, graph_fake: GraphSimulator, function_env: Callable[..., dict[str, str]]
) -> Callable[[], None]:
    """One pass of the responder over the queue, in its own environment (the API client sets its own)."""

    def run() -> None:
        function_env("ResponderFunction", WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST, **graph_fake.environment())
        assert Responder(aws, load_function_module("ResponderFunction")).run().failed_ids == set()

    return run


def _writes(webhook: Any, number: str, body: str, *, hours_ago: float = 0) -> str:
    """The lead writes `body` to our `number`; the message's wamid."""
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    message = meta.text_message(LEAD, body, timestamp=int(at.timestamp()))
    assert webhook(meta.envelope(meta.message_value([message], phone_number_id=number))).status == 200
    return str(message["id"])


def _sends(graph_fake: GraphSimulator) -> list[Any]:
    return [record for record in graph_fake.recorded() if record.accepted and record.is_send]


def _conversations(api: ApiClient, query: str = "") -> dict[str, dict[str, Any]]:
    result = api.conversations(query)
    assert result.status == 200, result.body
    return {entry["phone_number_id"]: entry for entry in result.json()["conversations"] if entry["wa_id"] == LEAD}


def _thread(api: ApiClient, query: str = "") -> dict[str, Any]:
    result = api.messages(LEAD, query)
    assert result.status == 200, result.body
    document: dict[str, Any] = result.json()
    return document


class TestTwoConversations:
    def test_each_number_has_its_own_window_thread_and_unread_count(
        self, webhook: Any, respond: Callable[[], None], api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        # Given a lead who wrote to our first number 25 hours ago and to our second just now
        old = _writes(webhook, FIRST, "שלום, הדירה עוד פנויה?", hours_ago=25)
        fresh = _writes(webhook, SECOND, "שלום, מה נשמע?", hours_ago=0.01)  # half a minute ago: the reply is newer
        # When the responder runs
        respond()
        # Then only the fresh message is answered, from the number it was written to
        [reply] = _sends(graph_fake)
        assert reply.phone_number_id == SECOND
        assert reply.body["context"] == {"message_id": fresh}
        # And the listing has one conversation per number, each with its own window and unread count
        listed = _conversations(api)
        assert set(listed) == {FIRST, SECOND}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert listed[FIRST]["window_expires_at"] < now < listed[SECOND]["window_expires_at"]
        assert (listed[FIRST]["unread_count"], listed[SECOND]["unread_count"]) == (1, 1)
        assert set(_conversations(api, f"phone_number_id={FIRST}")) == {FIRST}
        # And each thread holds its own number's messages; the default is the number the lead last wrote to
        first = _thread(api, f"phone_number_id={FIRST}")
        assert (first["phone_number_id"], [m["id"] for m in first["messages"]]) == (FIRST, [old])
        second = _thread(api)
        assert second["phone_number_id"] == SECOND
        assert [m["id"] for m in second["messages"]] == [reply.response["messages"][0]["id"], fresh]

    def test_free_text_goes_only_where_that_number_s_window_is_open(
        self, webhook: Any, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        # Given the lead wrote to the first number 25 hours ago and to the second an hour ago
        _writes(webhook, FIRST, "שלום", hours_ago=25)
        _writes(webhook, SECOND, "שלום", hours_ago=1)
        # When the CRM sends free text from the first number
        closed = api.send({"to": LEAD, **TEXT, "from_phone_number_id": FIRST})
        # Then it is refused: that conversation's window closed, a template is needed
        assert closed.status == 422, closed.body
        assert closed.error["code"] == "outside_customer_service_window"
        assert api.send({"to": LEAD, **TEMPLATE, "from_phone_number_id": FIRST}).status == 201
        # And free text from the second number (named, or by default: the lead's latest) goes out from it
        assert api.send({"to": LEAD, **TEXT, "from_phone_number_id": SECOND}).status == 201
        assert api.send({"to": LEAD, **TEXT}).status == 201
        assert [send.phone_number_id for send in _sends(graph_fake)] == [FIRST, SECOND, SECOND]

    def test_reading_one_conversation_leaves_the_other_unread(
        self, webhook: Any, api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        # Given one unread message in each conversation
        _writes(webhook, FIRST, "שלום")
        second = _writes(webhook, SECOND, "עדיין פנוי?")
        # When an agent marks the second number's conversation read
        marked = api.mark_read(LEAD, f"phone_number_id={SECOND}")
        # Then only that one is read, and the blue ticks go from that number
        assert marked.status == 200, marked.body
        assert (marked.json()["phone_number_id"], marked.json()["unread_count"]) == (SECOND, 0)
        assert [(read.phone_number_id, read.body["message_id"]) for read in graph_fake.recorded() if read.is_read] == [
            (SECOND, second)
        ]
        listed = _conversations(api)
        assert (listed[FIRST]["unread_count"], listed[SECOND]["unread_count"]) == (1, 0)

    def test_a_number_that_is_not_ours_is_a_400_on_threads_and_reads(self, webhook: Any, api: ApiClient) -> None:
        _writes(webhook, FIRST, "שלום")
        for result in (api.messages(LEAD, "phone_number_id=999"), api.mark_read(LEAD, "phone_number_id=999")):
            assert result.status == 400, result.body
            assert result.error["field"] == "phone_number_id"


class TestOneBusiness:
    def test_an_opt_out_on_one_number_silences_the_other_and_an_opt_in_on_either_restores_both(
        self, webhook: Any, respond: Callable[[], None], api: ApiClient, graph_fake: GraphSimulator
    ) -> None:
        # Given the lead asks the first number to stop, and is confirmed once from it
        _writes(webhook, FIRST, "הסר")
        respond()
        assert [send.phone_number_id for send in _sends(graph_fake)] == [FIRST]
        # When they write to the second number
        _writes(webhook, SECOND, "שלום, אפשר לקבוע פגישה?")
        respond()
        # Then nothing is answered there, and the CRM cannot free-text them from it either
        assert len(_sends(graph_fake)) == 1
        refused = api.send({"to": LEAD, **TEXT, "from_phone_number_id": SECOND})
        assert refused.status == 409, refused.body
        assert refused.error["code"] == "recipient_opted_out"
        # And both conversations are listed as opted out
        assert {number: entry["opted_out"] for number, entry in _conversations(api).items()} == {
            FIRST: True,
            SECOND: True,
        }
        # When they write START to the second number
        _writes(webhook, SECOND, "START")
        respond()
        # Then both numbers answer again
        _writes(webhook, FIRST, "שלום")
        respond()
        assert [send.phone_number_id for send in _sends(graph_fake)][-1] == FIRST
        assert api.send({"to": LEAD, **TEXT, "from_phone_number_id": SECOND}).status == 201


class TestRateLimits:
    def test_a_number_at_its_limit_does_not_hold_back_the_other(
        self, webhook: Any, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator
    ) -> None:
        # Given a limit of 2 sends a second per number, and a second that has used up the first number's
        api = ApiClient(
            function_env,
            graph_fake,
            WHATSAPP_PHONE_NUMBER_IDS=OWN_LIST,
            RATE_LIMIT_PER_NUMBER_PER_SECOND="2",
        )
        now = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)
        leads = [f"97252555{index:04d}" for index in range(5)]
        first = [
            api.send({"to": lead, **TEMPLATE, "from_phone_number_id": FIRST}, clock=lambda: now) for lead in leads[:3]
        ]
        assert [result.status for result in first] == [201, 201, 429]
        assert first[-1].error["code"] == "rate_limited"
        # When the second number sends in the same second
        second = [
            api.send({"to": lead, **TEMPLATE, "from_phone_number_id": SECOND}, clock=lambda: now) for lead in leads[3:]
        ]
        # Then it has its own budget
        assert [result.status for result in second] == [201, 201]
        assert [send.phone_number_id for send in _sends(graph_fake)] == [FIRST, FIRST, SECOND, SECOND]
