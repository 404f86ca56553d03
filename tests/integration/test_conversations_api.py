"""The read API and /health through the real ConversationsFunction, on moto's DynamoDB and the Graph fake."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from conftest import AwsStack
from integration.api_client import ApiClient
from local import meta_payloads as meta
from local.graph_simulator import GraphSimulator
from whatsapp_crm.clock import iso
from whatsapp_crm.read_api import CursorSigner, Position
from whatsapp_crm.records import InboundRecord, OutboundRecord, PreferenceChange, SentBy

LEAD = "972525551234"
OTHER_LEAD = "972545550199"


@pytest.fixture
def api(aws: AwsStack, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)


def _lead_writes(
    webhook: Any, wa_id: str = LEAD, text: str = "שלום", *, seconds_ago: int = 60, name: str = "דנה"
) -> str:
    message = meta.text_message(wa_id, text, timestamp=int(time.time()) - seconds_ago)
    assert webhook(meta.envelope(meta.message_value([message], name=name))).status == 200
    return str(message["id"])


def _inbound(wamid: str, wa_id: str, at: datetime, text: str) -> InboundRecord:
    return InboundRecord(
        wamid=wamid,
        wa_id=wa_id,
        phone_number_id=meta.DEMO_PHONE_NUMBER_ID,
        message_type="text",
        timestamp=iso(at),
        received_at=iso(at),
        raw_json="{}",
        text=text,
        preview=text,
    )


def _outbound(wamid: str, wa_id: str, at: datetime, text: str) -> OutboundRecord:
    return OutboundRecord(
        wamid=wamid,
        wa_id=wa_id,
        phone_number_id=meta.DEMO_PHONE_NUMBER_ID,
        message_type="text",
        timestamp=iso(at),
        sent_by=SentBy.HUMAN,
        text=text,
        preview=text,
    )


def _thread(table: Any, wa_id: str, count: int, start: datetime) -> list[str]:
    """`count` messages, inbound and outbound interleaved, some sharing a second; newest-first wamids."""
    written: list[tuple[str, str]] = []
    for index in range(count):
        at = start + timedelta(seconds=30 * (index - index % 7 // 6))  # every 7th repeats the previous second
        wamid = f"wamid.T{wa_id[-4:]}{index:05d}"
        if index % 5 == 4:
            table.record_outbound(_outbound(wamid, wa_id, at, f"reply {index}"))
        else:
            table.record_inbound(_inbound(wamid, wa_id, at, f"message {index}"))
        written.append((iso(at), wamid))
    return [wamid for _, wamid in sorted(written, reverse=True)]


def _all_pages(api: ApiClient, wa_id: str, limit: int) -> tuple[list[str], int]:
    ids: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = f"limit={limit}" + (f"&cursor={quote(cursor)}" if cursor else "")
        result = api.messages(wa_id, query)
        assert result.status == 200, result.body
        page = result.json()
        assert page["wa_id"] == wa_id
        ids.extend(message["id"] for message in page["messages"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages


class TestConversations:
    def test_leads_come_newest_first_with_what_an_agent_needs(
        self, api: ApiClient, aws: AwsStack, webhook: Any, table: Any
    ) -> None:
        # Given two leads, the other one active more recently, one of them opted out, one asking for a meeting
        _lead_writes(webhook, LEAD, "יש חניה?", seconds_ago=600)
        _lead_writes(webhook, LEAD, "ומחסן?", seconds_ago=500)
        _lead_writes(webhook, OTHER_LEAD, "Is it still available?", seconds_ago=60, name="John")
        table.record_preference(PreferenceChange(wa_id=OTHER_LEAD, opted_out=True, timestamp=iso(datetime.now(UTC))))
        meeting = {"slot_id": "s1", "slot_start": "2026-11-26T08:00:00Z", "status": "requested"}
        aws.client("dynamodb").update_item(
            TableName=aws.ref("ConversationsTable"),
            Key={"PK": {"S": f"LEAD#{LEAD}"}, "SK": {"S": "LEAD"}},
            UpdateExpression="SET meeting_request = :m",
            ExpressionAttributeValues={":m": {"M": {key: {"S": value} for key, value in meeting.items()}}},
        )
        # When the CRM lists conversations
        result = api.conversations()
        # Then the newest is first and each carries its state
        assert result.status == 200
        page = result.json()
        assert [c["wa_id"] for c in page["conversations"]] == [OTHER_LEAD, LEAD]
        assert page["next_cursor"] is None
        other, lead = page["conversations"]
        assert other["name"] == "John"
        assert other["opted_out"] is True
        assert lead["name"] == "דנה"
        assert lead["unread_count"] == 2
        assert lead["awaits_response"] is True
        assert lead["last_message_preview"] == "ומחסן?"
        expected_close = datetime.strptime(lead["last_message_at"], "%Y-%m-%dT%H:%M:%SZ") + timedelta(hours=24)
        assert lead["window_expires_at"] == expected_close.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert lead["meeting"] == meeting
        assert other["meeting"] is None

    def test_conversations_page_without_gaps_or_repeats(self, api: ApiClient, table: Any) -> None:
        start = datetime.now(UTC) - timedelta(days=1)
        leads = [f"97252555{index:04d}" for index in range(12)]
        for index, wa_id in enumerate(leads):
            table.record_inbound(_inbound(f"wamid.L{index:04d}", wa_id, start + timedelta(minutes=index), "hi"))
        seen: list[str] = []
        cursor = None
        while True:
            result = api.conversations("limit=5" + (f"&cursor={quote(cursor)}" if cursor else ""))
            assert result.status == 200
            seen.extend(c["wa_id"] for c in result.json()["conversations"])
            cursor = result.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(leads))

    def test_without_a_limit_a_page_holds_the_50_most_recent_leads(self, api: ApiClient, table: Any) -> None:
        # Given 60 leads who each wrote once, a minute apart
        start = datetime.now(UTC) - timedelta(hours=2)
        leads = [f"97252556{index:04d}" for index in range(60)]
        for index, wa_id in enumerate(leads):
            table.record_inbound(_inbound(f"wamid.D{index:04d}", wa_id, start + timedelta(minutes=index), "hi"))
        # When the CRM lists conversations without asking for a page size
        page = api.conversations().json()
        # Then it gets the 50 most recently active, and a cursor to the other 10
        assert [c["wa_id"] for c in page["conversations"]] == list(reversed(leads))[:50]
        assert page["next_cursor"]
        rest = api.conversations("cursor=" + quote(page["next_cursor"])).json()
        assert [c["wa_id"] for c in rest["conversations"]] == list(reversed(leads))[50:]
        assert rest["next_cursor"] is None

    @pytest.mark.parametrize("limit", ["0", "101", "ten"])
    def test_a_limit_outside_1_to_100_is_a_400(self, api: ApiClient, limit: str) -> None:
        result = api.conversations(f"limit={limit}")
        assert result.status == 400
        assert result.error["field"] == "limit"


class TestMessages:
    @pytest.mark.parametrize("limit", [100, 37])
    def test_250_messages_page_newest_first_without_gaps_or_repeats(
        self, api: ApiClient, table: Any, limit: int
    ) -> None:
        # Given a 250-message thread (in and out, some in the same second) beside another lead's thread
        start = datetime.now(UTC) - timedelta(days=2)
        expected = _thread(table, LEAD, 250, start)
        _thread(table, OTHER_LEAD, 20, start)
        # When the CRM pages through it
        ids, pages = _all_pages(api, LEAD, limit)
        # Then every message comes exactly once, newest first, and nothing of the other lead
        assert ids == expected
        assert pages == -(-250 // limit)

    def test_without_a_limit_a_page_holds_the_newest_50(self, api: ApiClient, table: Any) -> None:
        # Given a 60-message thread
        expected = _thread(table, LEAD, 60, datetime.now(UTC) - timedelta(hours=3))
        # When the CRM reads it without asking for a page size
        first = api.messages(LEAD)
        # Then it gets the newest 50 and a cursor to the rest
        assert first.status == 200, first.body
        page = first.json()
        assert [message["id"] for message in page["messages"]] == expected[:50]
        assert page["next_cursor"]
        # And the cursor brings the remaining 10, and no further cursor
        rest = api.messages(LEAD, "cursor=" + quote(page["next_cursor"])).json()
        assert [message["id"] for message in rest["messages"]] == expected[50:]
        assert rest["next_cursor"] is None

    def test_a_thread_shows_direction_text_statuses_and_replies(self, api: ApiClient, webhook: Any, table: Any) -> None:
        # Given an inbound message, our reply to it, and Meta's statuses for the reply
        inbound = _lead_writes(webhook, text="אפשר לראות היום?")
        reply_at = datetime.now(UTC) - timedelta(seconds=30)
        table.record_outbound(replace(_outbound("wamid.OUT1", LEAD, reply_at, "כן, ב-17:00"), reply_to=inbound))
        for status in ("sent", "delivered", "read"):
            assert webhook(meta.envelope(meta.status_value([meta.status("wamid.OUT1", status, LEAD)]))).status == 200
        # When the CRM reads the thread
        messages = api.messages(LEAD).json()["messages"]
        # Then the newest (ours) is first, with its ticks; the lead's message follows
        ours, theirs = messages
        assert ours["id"] == "wamid.OUT1"
        assert ours["direction"] == "outbound"
        assert ours["text"] == "כן, ב-17:00"
        assert ours["status"] == "read"
        assert [entry["status"] for entry in ours["status_history"]] == ["accepted", "sent", "delivered", "read"]
        assert ours["auto_reply"] is False
        assert ours["reply_to"] == inbound
        assert theirs["id"] == inbound
        assert theirs["direction"] == "inbound"
        assert theirs["text"] == "אפשר לראות היום?"
        assert theirs["status"] is None

    def test_a_send_known_only_from_its_statuses_is_listed_as_unknown(self, api: ApiClient, webhook: Any) -> None:
        # Given a status for a message sent outside this API (e.g. from WhatsApp Manager)
        _lead_writes(webhook)
        failed = meta.status("wamid.ELSEWHERE", "failed", LEAD, error_code=131026)
        assert webhook(meta.envelope(meta.status_value([failed]))).status == 200
        # When the thread is read, it is there, typed unknown, with its error
        listed = {m["id"]: m for m in api.messages(LEAD).json()["messages"]}
        assert listed["wamid.ELSEWHERE"]["type"] == "unknown"
        assert listed["wamid.ELSEWHERE"]["direction"] == "outbound"
        assert listed["wamid.ELSEWHERE"]["status"] == "failed"
        assert listed["wamid.ELSEWHERE"]["error"]["code"] == 131026

    @pytest.mark.parametrize("spelling", ["972525551234", "+972525551234", "0525551234"])
    def test_the_wa_id_may_be_written_any_way_a_number_is(self, api: ApiClient, webhook: Any, spelling: str) -> None:
        _lead_writes(webhook)
        result = api.messages(quote(spelling))
        assert result.status == 200
        assert result.json()["wa_id"] == LEAD
        assert len(result.json()["messages"]) == 1

    def test_an_unknown_lead_is_404_and_an_impossible_one_400(self, api: ApiClient) -> None:
        assert api.messages(OTHER_LEAD).error["code"] == "not_found"
        invalid = api.messages("12")
        assert invalid.status == 400
        assert invalid.error["field"] == "wa_id"


class TestCursors:
    @pytest.fixture
    def first_page(self, api: ApiClient, table: Any) -> dict[str, Any]:
        start = datetime.now(UTC) - timedelta(hours=5)
        _thread(table, LEAD, 12, start)
        _thread(table, OTHER_LEAD, 12, start)
        page: dict[str, Any] = api.messages(LEAD, "limit=5").json()
        assert page["next_cursor"]
        return page

    @pytest.mark.parametrize(
        "tamper",
        [
            lambda c: "garbage",
            lambda c: "v1.e30.AAAA",
            lambda c: c[:-3],
            lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),
            lambda c: c.split(".")[0] + "." + c.split(".")[1][:-2] + "xx." + c.split(".")[2],
            lambda c: "v2" + c[2:],
            lambda c: c + ".extra",
            lambda c: "é" * 20,
        ],
        ids=[
            "garbage",
            "empty-json",
            "truncated",
            "signature-flipped",
            "payload-edited",
            "version",
            "extra",
            "unicode",
        ],
    )
    def test_a_garbled_or_tampered_cursor_is_a_400(
        self, api: ApiClient, first_page: dict[str, Any], tamper: Callable[[str], str]
    ) -> None:
        result = api.messages(LEAD, "cursor=" + quote(tamper(first_page["next_cursor"])))
        assert result.status == 400
        assert result.error["code"] == "validation_error"
        assert result.error["field"] == "cursor"

    def test_a_cursor_forged_with_another_key_is_a_400(self, api: ApiClient, first_page: dict[str, Any]) -> None:
        forged = CursorSigner(b"k" * 32).issue("messages", OTHER_LEAD, Position(pk="MSG#x", sort_key="9999"))
        result = api.messages(OTHER_LEAD, "cursor=" + quote(forged))
        assert result.status == 400
        assert result.error["field"] == "cursor"

    def test_a_cursor_never_opens_another_leads_thread(self, api: ApiClient, first_page: dict[str, Any]) -> None:
        # Given a valid cursor for LEAD's thread, when it is used on OTHER_LEAD's thread or the lead list
        moved = api.messages(OTHER_LEAD, "cursor=" + quote(first_page["next_cursor"]))
        listing = api.conversations("cursor=" + quote(first_page["next_cursor"]))
        # Then both are refused and nothing of either thread is returned
        assert (moved.status, listing.status) == (400, 400)
        assert "wamid" not in moved.body

    def test_the_same_cursor_continues_where_the_page_ended(self, api: ApiClient, first_page: dict[str, Any]) -> None:
        second = api.messages(LEAD, "limit=5&cursor=" + quote(first_page["next_cursor"])).json()
        first_ids = [m["id"] for m in first_page["messages"]]
        second_ids = [m["id"] for m in second["messages"]]
        assert len(second_ids) == 5
        assert not set(first_ids) & set(second_ids)


class TestMarkRead:
    def test_reading_resets_unread_and_blue_ticks_the_last_message(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given two unread messages from the lead
        _lead_writes(webhook, text="שלום", seconds_ago=120)
        last = _lead_writes(webhook, text="יש מעלית?", seconds_ago=60)
        # When an agent opens the thread and marks it read
        assert api.messages(LEAD).status == 200
        assert table.get_lead(LEAD)["unread_count"] == 2  # reading alone changes nothing
        result = api.mark_read(LEAD)
        # Then the count is zero and WhatsApp got a read receipt for the newest message
        assert result.status == 200
        assert result.json() == {
            "wa_id": LEAD,
            "phone_number_id": meta.DEMO_PHONE_NUMBER_ID,
            "unread_count": 0,
            "read_receipt": {"message_id": last, "status": "sent"},
        }
        assert graph_fake.reads() == [{"messaging_product": "whatsapp", "status": "read", "message_id": last}]
        assert api.conversations().json()["conversations"][0]["unread_count"] == 0

    def test_a_refused_receipt_still_clears_the_badge(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        last = _lead_writes(webhook)
        graph_fake.fail_next(131009, include_reads=True)
        result = api.mark_read(LEAD)
        assert result.status == 200
        body = result.json()
        assert body["unread_count"] == 0
        assert body["read_receipt"]["message_id"] == last
        assert body["read_receipt"]["status"] == "failed"
        assert body["read_receipt"]["graph_error"]["code"] == 131009
        assert table.get_lead(LEAD)["unread_count"] == 0

    def test_marking_an_unknown_lead_is_404(self, api: ApiClient, graph_fake: GraphSimulator) -> None:
        assert api.mark_read(OTHER_LEAD).status == 404
        assert graph_fake.recorded() == []


class TestHealth:
    def _sequence(self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator) -> None:
        """3 messages received, 4 sent through the API, 1 of those reported failed by Meta."""
        for text in ("שלום", "יש חניה?", "ומחסן?"):
            _lead_writes(webhook, text=text)
        sent = [api.send({"to": LEAD, "type": "text", "text": {"body": f"תשובה {n}"}}) for n in range(4)]
        assert [r.status for r in sent] == [201] * 4
        failed = meta.status(sent[0].json()["message_id"], "failed", LEAD, error_code=131026)
        assert webhook(meta.envelope(meta.status_value([failed]))).status == 200
        # A redelivered failure is not counted twice.
        assert webhook(meta.envelope(meta.status_value([failed]))).status == 200

    def test_figures_follow_what_happened(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator, table: Any
    ) -> None:
        # Given a known sequence of events and a threshold of 50 %
        api.overrides.update(HEALTH_ERROR_RATE_THRESHOLD="0.5", HEALTH_MIN_SENDS="1")
        self._sequence(api, webhook, graph_fake)
        # When /health is read
        result = api.health()
        # Then it reports exactly those figures, and 1 failure in 4 sends is healthy under 50 %
        assert result.status == 200
        report = result.json()
        assert report["last_24h"] == {"received": 3, "sent": 4, "failed": 1, "error_rate": 0.25}
        assert report["status"] == "healthy"
        assert report["checks"]["table"]["ok"] is True
        assert report["checks"]["secret"]["ok"] is True
        assert report["last_activity"] == table.get_lead(LEAD)["last_message_at"]

    def test_sends_meta_refuses_make_it_degraded(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator
    ) -> None:
        # Given a revoked token: Meta refuses every send with 190, none is accepted
        api.overrides.update(HEALTH_ERROR_RATE_THRESHOLD="0.2", HEALTH_MIN_SENDS="1")
        _lead_writes(webhook)
        graph_fake.fail_next(190, http_status=401, times=3)
        refused = [api.send({"to": LEAD, "type": "text", "text": {"body": f"תשובה {n}"}}) for n in range(3)]
        assert [r.status for r in refused] == [502] * 3
        # When /health is read
        report = api.health().json()
        # Then the operator sees a failing service, not a healthy one with nothing sent
        assert report["status"] == "degraded"
        assert report["last_24h"] == {"received": 1, "sent": 0, "failed": 3, "error_rate": 1.0}
        assert report["checks"]["error_rate"]["ok"] is False

    def test_an_error_rate_over_the_threshold_is_degraded(
        self, api: ApiClient, webhook: Any, graph_fake: GraphSimulator
    ) -> None:
        api.overrides.update(HEALTH_ERROR_RATE_THRESHOLD="0.2", HEALTH_MIN_SENDS="1")
        self._sequence(api, webhook, graph_fake)
        result = api.health()
        # Then the service still works, so the code is 200 and the body says degraded (issue 10)
        assert result.status == 200
        report = result.json()
        assert report["status"] == "degraded"
        assert report["checks"]["error_rate"]["ok"] is False
        assert report["checks"]["error_rate"]["threshold"] == 0.2

    def test_an_unreadable_secret_is_unhealthy_503(self, api: ApiClient) -> None:
        # Given no env overrides, and the deployed secret still missing its access token
        api.overrides.update(WHATSAPP_ACCESS_TOKEN="", WHATSAPP_APP_SECRET="", WHATSAPP_VERIFY_TOKEN="")
        result = api.health()
        # Then status checks and load balancers see it in the code (issue 10), and the body says why
        assert result.status == 503
        report = result.json()
        assert report["status"] == "unhealthy"
        assert report["checks"]["secret"] == {
            "ok": False,
            "detail": "the WhatsApp secret cannot be read or is incomplete",
        }
        assert report["checks"]["table"]["ok"] is True

    def test_an_unreadable_table_is_unhealthy_503(self, api: ApiClient) -> None:
        api.overrides.update(TABLE_NAME="no-such-table")
        result = api.health()
        assert result.status == 503
        report = result.json()
        assert report["status"] == "unhealthy"
        assert report["checks"]["table"]["ok"] is False
        assert report["last_24h"]["received"] == 0


class TestNumberFilter:
    """`?phone_number_id=`: leads whose latest message to us was to that business number."""

    FIRST = meta.DEMO_PHONE_NUMBER_ID
    SECOND = meta.DEMO_SECOND_PHONE_NUMBER_ID

    @pytest.fixture
    def two_numbers(self, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> ApiClient:
        return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=f"{self.FIRST},{self.SECOND}")

    @staticmethod
    def _leads(table: Any, count: int, on_second: Callable[[int], bool]) -> dict[str, list[str]]:
        """`count` leads a minute apart, those `on_second` picks writing to the second number; newest first."""
        start = datetime.now(UTC) - timedelta(hours=3)
        by_number: dict[str, list[str]] = {TestNumberFilter.FIRST: [], TestNumberFilter.SECOND: []}
        for index in range(count):
            wa_id = f"97252557{index:04d}"
            number = TestNumberFilter.SECOND if on_second(index) else TestNumberFilter.FIRST
            record = _inbound(f"wamid.N{index:04d}", wa_id, start + timedelta(minutes=index), "hi")
            table.record_inbound(replace(record, phone_number_id=number))
            by_number[number].insert(0, wa_id)
        return by_number

    @staticmethod
    def _pages(api: ApiClient, query: str) -> list[list[dict[str, Any]]]:
        pages: list[list[dict[str, Any]]] = []
        cursor: str | None = None
        while True:
            result = api.conversations(query + (f"&cursor={quote(cursor)}" if cursor else ""))
            assert result.status == 200, result.body
            pages.append(result.json()["conversations"])
            cursor = result.json()["next_cursor"]
            if cursor is None:
                return pages

    def test_each_number_lists_only_its_leads_in_full_pages(
        self, two_numbers: ApiClient, table: Any, aws: AwsStack
    ) -> None:
        # Given 40 leads, every third on the second number, and one stored before numbers were recorded
        expected = self._leads(table, 40, lambda index: index % 3 == 0)
        # (stored as the lead item held its one conversation then, without a number)
        client, name, legacy = aws.client("dynamodb"), aws.ref("ConversationsTable"), expected[self.FIRST][-1]
        key = {"PK": {"S": f"LEAD#{legacy}"}, "SK": {"S": f"CONV#{self.FIRST}"}}
        item = client.get_item(TableName=name, Key=key)["Item"]
        client.delete_item(TableName=name, Key=key)
        del item["last_phone_number_id"]
        item["SK"] = {"S": "LEAD"}
        item["GSI1SK"] = {"S": item["GSI1SK"]["S"].rsplit("#", 1)[0]}
        client.put_item(TableName=name, Item=item)
        for number, other in ((self.FIRST, self.SECOND), (self.SECOND, self.FIRST)):
            # When the CRM pages through one number's conversations, 4 at a time
            pages = self._pages(two_numbers, f"limit=4&phone_number_id={number}")
            listed = [conversation["wa_id"] for page in pages for conversation in page]
            # Then it gets exactly that number's leads, newest first, in full pages (the legacy lead under
            # the first number, as the list shows it), and none of the other number's
            assert listed == expected[number]
            assert all(len(page) == 4 for page in pages[:-1])
            assert {c["phone_number_id"] for page in pages for c in page} == {number}
            assert not set(listed) & set(expected[other])

    def test_a_page_cut_short_never_skips_a_lead(
        self, two_numbers: ApiClient, table: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from whatsapp_crm.store import read_api as store_read_api

        # Given a number with the newest lead and the 15 oldest, 80 leads of the other number between them,
        # and a store that follows each shard for one Query only: shards stop reading before they find one
        expected = self._leads(table, 96, lambda index: index < 15 or index == 95)
        monkeypatch.setattr(store_read_api, "FILTER_ROUNDS", 1)
        # When the CRM pages through that number's conversations
        pages = self._pages(two_numbers, f"limit=2&phone_number_id={self.SECOND}")
        # Then pages may come short (cut where the reading stopped), but every lead comes once, in order
        assert [c["wa_id"] for page in pages for c in page] == expected[self.SECOND]
        assert all(len(page) <= 2 for page in pages)

    def test_a_number_not_ours_is_a_400_naming_the_field(self, two_numbers: ApiClient, table: Any) -> None:
        self._leads(table, 3, lambda index: index % 2 == 0)
        for unknown in ("123456789012345", "", " "):
            result = two_numbers.conversations(f"phone_number_id={quote(unknown)}")
            assert result.status == 400, unknown
            assert result.error["code"] == "validation_error"
            assert result.error["field"] == "phone_number_id"

    def test_a_cursor_works_only_under_the_filter_it_was_issued_for(self, two_numbers: ApiClient, table: Any) -> None:
        # Given next_cursors of the whole list and of each number's list
        self._leads(table, 12, lambda index: index % 2 == 0)
        cursors = {
            scope: two_numbers.conversations("limit=2" + (f"&phone_number_id={scope}" if scope else "")).json()[
                "next_cursor"
            ]
            for scope in ("", self.FIRST, self.SECOND)
        }
        assert all(cursors.values())
        # When each is used under another filter (or none), it is refused; under its own it works
        for issued, cursor in cursors.items():
            for used in ("", self.FIRST, self.SECOND):
                query = f"limit=2&cursor={quote(cursor)}" + (f"&phone_number_id={used}" if used else "")
                result = two_numbers.conversations(query)
                if used == issued:
                    assert result.status == 200, result.body
                else:
                    assert result.status == 400, (issued, used)
                    assert result.error["field"] == "cursor"
