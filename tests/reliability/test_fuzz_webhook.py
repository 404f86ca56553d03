"""Property tests: whatever Meta (or anyone holding the app secret) signs, the webhook answers without a 5xx
and leaves no partial write; whatever the CRM posts to /messages is a 4xx with a clear code or a valid send.

Real handlers against moto's server over HTTP (the `aws` and `function_env` fixtures). A 5xx to a body
that can never succeed would make Meta redeliver it for a week; a partial write (a message without its
lead update, a lead whose unread count disagrees with its stored messages) would show a wrong inbox.

Example counts are modest for CI (`FUZZ_EXAMPLES`, default 60 per property). With CI set, runs are
derandomized (the same examples every run) and nothing is kept in .hypothesis between runs.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TEST_APP_SECRET, AwsStack
from local import meta_payloads as meta
from local.apigw import http_api_event, lambda_context
from local.graph_simulator import GraphSimulator
from local.handlers import load_function_module

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
IN_CI = bool(os.environ.get("CI"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=IN_CI,
    database=None if IN_CI else settings.default.database,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
LEADS = ("972525551234", "972545550199", "972501112233")

# --- strategies -----------------------------------------------------------------------------------------------

LONE_SURROGATES = st.sampled_from(["\ud83d", "\udc00", "a\ud800b", "שלום\udfff"])
HEBREW = st.text(st.characters(min_codepoint=0x0590, max_codepoint=0x05FF), max_size=40)
EMOJI = st.sampled_from(["🙂", "👍🏽", "🏠🔑", "👨‍👩‍👧", "🇮🇱", "❤️"])
TEXTS = st.one_of(
    st.text(max_size=60),
    HEBREW,
    st.lists(st.one_of(HEBREW, EMOJI, st.text(max_size=5)), max_size=6).map("".join),
    st.sampled_from(["", " ", "\x00", "\\u05e9", "</script>", "https:\\/\\/x.co\\/1", "\u202eRTL override"]),
)
HUGE_NUMBERS = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([2**63, -(2**63) - 1, 10**308, 1e308, -0.0, 1.5e-300]),
    st.floats(allow_nan=True, allow_infinity=True),
)
LEAVES = st.one_of(st.none(), st.booleans(), HUGE_NUMBERS, TEXTS)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(TEXTS, st.sampled_from(["id", "type"])), children, max_size=3),
    ),
    max_leaves=10,
)


def _deeply_nested(depth: int, inner: Any) -> Any:
    for _ in range(depth):
        inner = [inner] if depth % 2 else {"x": inner}
    return inner


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every position in a JSON document (the root excluded)."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _replace(document: Any, path: tuple[Any, ...], value: Any, *, delete: bool) -> None:
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


def _message_envelope(wa_id: str, text: str, wamid: str) -> dict[str, Any]:
    message = meta.text_message(wa_id, text, wamid=wamid, timestamp=int(time.time()) - 30)
    return meta.envelope(meta.message_value([message], name="דנה כהן"))


def _status_envelope(wa_id: str, wamid: str) -> dict[str, Any]:
    return meta.envelope(meta.status_value([meta.status(wamid, "delivered", wa_id)]))


# --- the webhook and the table's invariants ------------------------------------------------------------------


class Webhook:
    def __init__(self, aws: AwsStack, function_env: Callable[..., dict[str, str]]) -> None:
        function_env("WebhookFunction")
        self.module = load_function_module("WebhookFunction")
        self.aws = aws
        self.serial = 0

    def wamid(self) -> str:
        self.serial += 1
        return f"wamid.FUZZ{self.serial:06d}{time.time_ns() % 10**9:09d}=="

    def post(self, body: bytes) -> dict[str, Any]:
        event = http_api_event("POST", "/webhook", body=body, headers=meta.signed_headers(body, TEST_APP_SECRET))
        return dict(self.module.lambda_handler(event, lambda_context("WebhookFunction")))

    def items(self) -> list[dict[str, Any]]:
        from whatsapp_crm.store.toolkit import from_item

        client = self.aws.client("dynamodb")
        pages = client.get_paginator("scan").paginate(TableName=self.aws.ref("ConversationsTable"))
        return [from_item(item) for page in pages for item in page.get("Items", [])]

    def assert_no_partial_write(self) -> None:
        """Each stored inbound message moved its conversation once and its hourly counter once; nothing else
        moved."""
        items = self.items()
        inbound = Counter(
            str(item["wa_id"]) for item in items if item["SK"] == "MSG" and item.get("direction") == "inbound"
        )
        from whatsapp_crm.store.dynamodb import lead_view

        # The unread count as readers see it (a set of message tags since the table redesign), summed over
        # the lead's conversations (one per business number since issue 14)
        leads: Counter[str] = Counter()
        for item in items:
            if str(item["SK"]).startswith("CONV#"):
                leads[str(item["PK"])[5:]] += int(lead_view(dict(item)).get("unread_count") or 0)
        for wa_id, count in inbound.items():
            assert wa_id in leads, f"message of {wa_id} stored without its conversation"
            assert leads[wa_id] == count, f"lead {wa_id}: unread_count vs {count} messages"
        for wa_id, unread in leads.items():
            assert unread == inbound.get(wa_id, 0), f"lead {wa_id} counts messages never stored"
        received = sum(int(item.get("received") or 0) for item in items if str(item["PK"]).startswith("STATS#"))
        assert received == sum(inbound.values())


@pytest.fixture
def webhook(aws: AwsStack, function_env: Callable[..., dict[str, str]]) -> Webhook:
    return Webhook(aws, function_env)


def _status_of(answer: dict[str, Any]) -> int:
    return int(answer["statusCode"])


@FUZZ
@given(data=st.data())
def test_any_value_anywhere_in_a_signed_envelope_is_answered_without_5xx_or_partial_write(
    webhook: Webhook, data: st.DataObject
) -> None:
    # Given a correct message or status envelope with one position replaced, removed or joined by a stranger
    wa_id = data.draw(st.sampled_from(LEADS))
    base = data.draw(st.sampled_from(["message", "status"]))
    document = (
        _message_envelope(wa_id, "שלום", webhook.wamid())
        if base == "message"
        else _status_envelope(wa_id, webhook.wamid())
    )
    path = data.draw(st.sampled_from(list(_paths(document))))
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "add":
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict):
            parent[data.draw(TEXTS)] = data.draw(JSON_VALUES)
    else:
        _replace(document, path, data.draw(JSON_VALUES), delete=action == "delete")

    # When Meta's wire form of it arrives correctly signed
    answer = webhook.post(meta.wire_bytes(document))

    # Then it is stored (200), skipped (200) or refused (400), never a 5xx, and the table stays consistent
    assert _status_of(answer) in (200, 400), answer
    webhook.assert_no_partial_write()


@FUZZ
@given(text=TEXTS, wa_id=st.sampled_from(LEADS))
def test_any_text_is_stored_once_with_its_lead(webhook: Webhook, text: str, wa_id: str) -> None:
    # Given a message whose text is anything a phone can send, Hebrew, emoji, RTL marks or broken UTF-16
    wamid = webhook.wamid()
    body = meta.wire_bytes(_message_envelope(wa_id, text, wamid))

    # When it arrives twice (Meta redelivers)
    first, second = webhook.post(body), webhook.post(body)

    # Then both answers are 200 and the message is stored once, with the text exactly as sent
    assert (_status_of(first), _status_of(second)) == (200, 200), (first, second)
    stored = [item for item in webhook.items() if item.get("wamid") == wamid and item["SK"] == "MSG"]
    assert len(stored) == 1
    if text.encode("utf-16", "surrogatepass").decode("utf-16", "replace") == text and text:
        assert stored[0].get("text") == text
    webhook.assert_no_partial_write()


@FUZZ
@given(text=LONE_SURROGATES, wa_id=st.sampled_from(LEADS))
def test_a_text_with_a_lone_surrogate_is_not_a_5xx(webhook: Webhook, text: str, wa_id: str) -> None:
    # Given a message whose text holds half of a surrogate pair (Meta's wire form escapes it as \\udXXX)
    body = meta.wire_bytes(_message_envelope(wa_id, text, webhook.wamid()))

    # When it arrives signed
    answer = webhook.post(body)

    # Then it is stored or skipped, with 200: a 5xx would be redelivered for a week and never succeed
    assert _status_of(answer) == 200, answer
    webhook.assert_no_partial_write()


# Unix seconds that fit datetime (years 1..9999): what a sane parser must handle without a 5xx.
SANE_SECONDS = st.integers(min_value=-62_135_596_800, max_value=253_402_300_799)


@FUZZ
@given(
    timestamp=st.one_of(SANE_SECONDS, SANE_SECONDS.map(str), TEXTS, st.none(), st.booleans(), st.floats(-1e9, 1e10)),
    depth=st.sampled_from([0, 50, 900, 5000]),
)
def test_odd_timestamps_and_deep_nesting_are_never_a_5xx(webhook: Webhook, timestamp: Any, depth: int) -> None:
    # Given a message with an odd timestamp and, sometimes, a context nested deeper than any parser likes
    message = meta.text_message(LEADS[0], "היי", wamid=webhook.wamid())
    message["timestamp"] = timestamp
    if depth:
        message["context"] = _deeply_nested(depth, {"id": "wamid.x"})
    body = json.dumps(meta.envelope(meta.message_value([message])), ensure_ascii=True, allow_nan=True).encode()

    # When it arrives signed
    answer = webhook.post(body)

    # Then the webhook answers 200 or 400, and the table stays consistent
    assert _status_of(answer) in (200, 400), answer
    webhook.assert_no_partial_write()


@pytest.mark.parametrize("timestamp", ["999999999999", 10**20, str(2**63)])
def test_a_timestamp_beyond_year_9999_is_not_a_5xx(webhook: Webhook, timestamp: Any) -> None:
    # Given a message whose timestamp no calendar holds
    message = meta.text_message(LEADS[0], "היי", wamid=webhook.wamid())
    message["timestamp"] = timestamp

    # When it arrives signed
    answer = webhook.post(meta.wire_bytes(meta.envelope(meta.message_value([message]))))

    # Then the part is skipped or the body refused, never a 5xx
    assert _status_of(answer) in (200, 400), answer


@FUZZ
@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_arbitrary_signed_bytes_are_refused_with_400_or_skipped(webhook: Webhook, raw: bytes) -> None:
    # When arbitrary bytes arrive with a valid signature
    answer = webhook.post(raw)

    # Then they are refused (400) or, if they happen to be an envelope, handled (200): never a 5xx
    assert _status_of(answer) in (200, 400), answer
    webhook.assert_no_partial_write()


# --- the send API -------------------------------------------------------------------------------------------

SEND_BODIES: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": {"body": "הדירה עדיין פנויה 🏠"}},
    "image": {"type": "image", "image": {"link": "https://cdn.example/flat.jpg", "caption": "הסלון"}},
    "template": {"type": "template", "template": {"name": "viewing_reminder", "language": {"code": "he"}}},
    "buttons": {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "מתי נוח?"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "מחר"}}]},
        },
    },
}


@pytest.fixture
def send_api(aws: AwsStack, function_env: Callable[..., dict[str, str]], graph_fake: GraphSimulator) -> Any:
    from integration.api_client import ApiClient

    webhook = Webhook(aws, function_env)
    for wa_id in LEADS:  # every lead wrote recently: the 24-hour window is open for free-form sends
        assert _status_of(webhook.post(meta.wire_bytes(_message_envelope(wa_id, "שלום", webhook.wamid())))) == 200
    return ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)


@FUZZ
@given(data=st.data())
def test_any_send_body_is_a_clear_4xx_or_a_real_send(
    send_api: Any, graph_fake: GraphSimulator, data: st.DataObject
) -> None:
    # Given a valid send body with one position replaced or removed, or any JSON at all
    kind = data.draw(st.sampled_from([*SEND_BODIES, "anything"]))
    if kind == "anything":
        body: Any = data.draw(JSON_VALUES)
    else:
        body = {"to": "+" + data.draw(st.sampled_from(LEADS)), **json.loads(json.dumps(SEND_BODIES[kind]))}
        path = data.draw(st.sampled_from(list(_paths(body))))
        _replace(body, path, data.draw(JSON_VALUES), delete=data.draw(st.booleans()))
    sends_before = len(graph_fake.sent_messages())

    # When the CRM posts it
    answer = send_api.send(None, raw=json.dumps(body, ensure_ascii=False, allow_nan=True))

    # Then it is a 4xx naming what is wrong, or a 201 whose message really went to Graph; never a 5xx
    assert answer.status < 500, answer
    if answer.status == 201:
        assert len(graph_fake.sent_messages()) == sends_before + 1
    else:
        assert 400 <= answer.status < 500
        assert answer.error["code"] and answer.error["message"]
        assert len(graph_fake.sent_messages()) == sends_before


# --- issue 10: values at Meta's and DynamoDB's limits ----------------------------------------------------------

# Meta's Unix seconds at and around the calendar's ends and the plausible range (2009 .. a day after receipt).
EXTREME_SECONDS = st.one_of(
    st.sampled_from([0, 1, 1_230_767_999, 253_402_250_000, 253_402_300_799]),
    st.integers(min_value=int(time.time()) + 2 * 86_400, max_value=253_402_300_799),
    st.integers(min_value=0, max_value=1_230_767_999),
)
# Strings over DynamoDB's key limits (2,048 bytes partition, 1,024 sort) and its 400 KB item limit.
OVERSIZED = st.one_of(
    st.sampled_from([1_025, 2_049, 3_000]).map(lambda size: "A" * size),
    st.sampled_from([700, 1_100]).map(lambda size: "ש" * size),  # 2 bytes each in UTF-8
    st.just("x" * 300_000),
)


@settings(FUZZ, max_examples=max(10, EXAMPLES // 3))
@given(
    timestamp=st.one_of(st.none(), EXTREME_SECONDS),
    field=st.sampled_from(["id", "from", "text", "none"]),
    oversized=OVERSIZED,
)
def test_extreme_timestamps_and_oversized_strings_never_cost_the_good_part_or_a_read(
    webhook: Webhook,
    function_env: Callable[..., dict[str, str]],
    graph_fake: GraphSimulator,
    timestamp: int | None,
    field: str,
    oversized: str,
) -> None:
    from integration.api_client import ApiClient

    # Given one POST: a good message, and one with an extreme timestamp and/or an oversized id, sender or text
    good = meta.text_message(LEADS[0], "שלום", wamid=webhook.wamid())
    odd = meta.text_message(LEADS[1], "היי", wamid=webhook.wamid())
    if timestamp is not None:
        odd["timestamp"] = str(timestamp)
    if field == "text":
        odd["text"] = {"body": oversized}
    elif field != "none":
        odd[field] = oversized
    body = meta.wire_bytes(meta.envelope(meta.message_value([odd, good])))

    # When it arrives signed, twice
    first, second = webhook.post(body), webhook.post(body)

    # Then both answers are 200 (never a 5xx Meta would retry for a week), the good message is stored once,
    # and every read of the stored conversations still answers
    assert (_status_of(first), _status_of(second)) == (200, 200), (first, second)
    assert [item["wamid"] for item in webhook.items() if item.get("wamid") == good["id"]] == [good["id"]]
    webhook.assert_no_partial_write()
    api = ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID)
    listed = api.conversations("limit=100")
    assert listed.status == 200, listed.body
    for conversation in listed.json()["conversations"]:
        assert api.messages(conversation["wa_id"]).status in (200, 400)
    function_env("WebhookFunction")


# Sender ids Meta might send that are no phone number: emoji, symbols, letters, long digit runs, other scripts'
# digits, business-scoped user ids.
NON_PHONE_SENDERS = st.one_of(
    st.text(st.characters(categories=["So", "Lo", "Nd", "Po", "Zs"]), min_size=1, max_size=40),
    st.integers(min_value=16, max_value=300).map(lambda size: "9" * size),
    st.text(st.sampled_from("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹"), min_size=8, max_size=15),
    st.from_regex(r"IL\.[0-9]{10,25}", fullmatch=True),
)


@settings(FUZZ, max_examples=max(10, EXAMPLES // 3))
@given(sender_id=NON_PHONE_SENDERS)
def test_a_non_phone_sender_id_is_stored_and_never_a_5xx(webhook: Webhook, sender_id: str) -> None:
    # Given a greeting whose sender id is no phone number
    message = meta.text_message(sender_id, "שלום", wamid=webhook.wamid())
    # When it arrives signed
    answer = webhook.post(meta.wire_bytes(meta.envelope(meta.message_value([message]))))
    # Then it is acknowledged and stored with its lead (the responder never claims it: test_edges_numbers.py)
    assert _status_of(answer) == 200, answer
    webhook.assert_no_partial_write()


# phone_number_ids a webhook may name that are not this deployment's: other numbers, near misses of ours,
# odd strings Meta never sends.
OWN_NUMBERS = (meta.DEMO_PHONE_NUMBER_ID, "110022003300")
FOREIGN_PHONE_NUMBER_IDS = st.one_of(
    st.from_regex(r"[1-9][0-9]{11,15}", fullmatch=True),
    st.sampled_from([meta.DEMO_PHONE_NUMBER_ID + "0", meta.DEMO_PHONE_NUMBER_ID[:-1], " " + meta.DEMO_PHONE_NUMBER_ID]),
    TEXTS,
).filter(lambda number: number not in OWN_NUMBERS)


@settings(FUZZ, max_examples=max(10, EXAMPLES // 3))
@given(foreign=FOREIGN_PHONE_NUMBER_IDS, kind=st.sampled_from(["message", "status"]))
def test_parts_for_a_foreign_phone_number_id_are_never_stored(
    aws: AwsStack, function_env: Callable[..., dict[str, str]], foreign: str, kind: str
) -> None:
    # Given a deployment that owns two numbers, and a message or status addressed to another
    webhook = Webhook(aws, function_env)
    function_env("WebhookFunction", WHATSAPP_PHONE_NUMBER_IDS=",".join(OWN_NUMBERS))
    wamid = webhook.wamid() + foreign[:3].encode().hex()
    if kind == "message":
        value = meta.message_value([meta.text_message(LEADS[0], "שלום", wamid=wamid)], phone_number_id=foreign)
    else:
        value = meta.status_value([meta.status(wamid, "read", LEADS[0])], phone_number_id=foreign)
    before = len(webhook.items())
    # When it arrives signed
    answer = webhook.post(meta.wire_bytes(meta.envelope(value)))
    # Then it is acknowledged and nothing of it is stored (no message, no lead, no counter)
    assert _status_of(answer) == 200, answer
    assert [item for item in webhook.items() if item.get("wamid") == wamid] == []
    assert len(webhook.items()) == before
