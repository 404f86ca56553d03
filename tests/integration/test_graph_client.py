"""The Graph client over real HTTP against the loopback simulator: exact bodies, retries, errors, status webhooks."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from conftest import TEST_ACCESS_TOKEN, TEST_APP_SECRET
from local.graph_simulator import GraphSimulator
from whatsapp_crm.graph import (
    AuthError,
    GraphClient,
    GraphUnavailableError,
    InvalidParameterError,
    PairRateLimitError,
    RateLimitError,
    ReengagementRequiredError,
    TemplateError,
)
from whatsapp_crm.graph.errors import InvalidMessageError, error_from_response
from whatsapp_crm.phone import normalize_phone
from whatsapp_crm.send_models import AnyMessage, parse_send_request, text_message
from whatsapp_crm.signature import SignatureVerdict, verify

PHONE_NUMBER_ID = "106540352242922"
LEAD_E164 = "+972525551234"
LEAD_WA_ID = "972525551234"
INBOUND = "wamid.HBgMOTcyNTI1NTUxMjM0FQIAEhggQTdGMzE0"


def envelope(kind: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": LEAD_E164,
        "type": kind,
        kind: content,
        **extra,
    }


def message(kind: str, content: Any, **extra: Any) -> AnyMessage:
    """A send model as the send API parses it, addressed as the send use case addresses it."""
    return parse_send_request({"to": LEAD_E164, "type": kind, kind: content, **extra})


HI = text_message(LEAD_E164, "hi")


class TestSendsProduceMetaBodies:
    def test_text_reply_in_hebrew(self, graph_fake: GraphSimulator, graph_client: GraphClient) -> None:
        # Given a reply to a lead's message, built as the responder builds it
        reply = text_message(LEAD_E164, "שלום דנה, נדבר מחר 🙂", reply_to=INBOUND)
        # When it is sent
        result = graph_client.send_message(PHONE_NUMBER_ID, reply)
        # Then Meta receives the exact body, with the recipient in E.164 and the quote as context
        assert graph_fake.sent_messages() == [
            envelope(
                "text",
                {"preview_url": False, "body": "שלום דנה, נדבר מחר 🙂"},
                context={"message_id": INBOUND},
            )
        ]
        # And the caller learns the message id and who Meta resolved the number to
        assert result.message_id.startswith("wamid.")
        assert result.wa_id == LEAD_WA_ID
        assert result.input == LEAD_E164
        assert result.message_status is None

    def test_requests_go_to_the_numbers_messages_endpoint_as_json(
        self, graph_fake: GraphSimulator, graph_client: GraphClient
    ) -> None:
        graph_client.send_message(PHONE_NUMBER_ID, HI)
        (request,) = graph_fake.recorded()
        assert request.method == "POST"
        assert request.path == f"/v22.0/{PHONE_NUMBER_ID}/messages"
        assert request.headers["Content-Type"] == "application/json"

    def test_template_reports_its_pacing_status(self, graph_fake: GraphSimulator, graph_client: GraphClient) -> None:
        components = [{"type": "body", "parameters": [{"type": "text", "text": "דנה"}]}]
        template = {"name": "visit_followup", "language": {"code": "he"}, "components": components}
        result = graph_client.send_message(
            PHONE_NUMBER_ID, message("template", template, biz_opaque_callback_data="lead-7")
        )
        assert graph_fake.sent_messages() == [
            envelope(
                "template",
                {"name": "visit_followup", "language": {"code": "he"}, "components": components},
                biz_opaque_callback_data="lead-7",
            )
        ]
        assert result.message_status == "accepted"

    def test_media_by_id_and_by_link(self, graph_fake: GraphSimulator, graph_client: GraphClient) -> None:
        graph_client.send_message(PHONE_NUMBER_ID, message("image", {"id": "1013859600285441", "caption": "סלון"}))
        document = {"link": "https://example.com/plan.pdf", "filename": "plan.pdf"}
        graph_client.send_message(PHONE_NUMBER_ID, message("document", document))
        assert graph_fake.sent_messages() == [
            envelope("image", {"id": "1013859600285441", "caption": "סלון"}),
            envelope("document", {"link": "https://example.com/plan.pdf", "filename": "plan.pdf"}),
        ]

    def test_reply_buttons(self, graph_fake: GraphSimulator, graph_client: GraphClient) -> None:
        buttons = {
            "type": "button",
            "body": {"text": "מתי נוח לך?"},
            "footer": {"text": "אפשר גם לכתוב"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "slot_am", "title": "בוקר"}},
                    {"type": "reply", "reply": {"id": "slot_pm", "title": "ערב"}},
                ]
            },
        }
        graph_client.send_message(PHONE_NUMBER_ID, message("interactive", buttons, context={"message_id": INBOUND}))
        assert graph_fake.sent_messages() == [envelope("interactive", buttons, context={"message_id": INBOUND})]

    def test_list(self, graph_fake: GraphSimulator, graph_client: GraphClient) -> None:
        sections = [
            {"title": "תל אביב", "rows": [{"id": "ta-3", "title": "3 חדרים", "description": "פלורנטין"}]},
            {"title": "רמת גן", "rows": [{"id": "rg-4", "title": "4 חדרים"}]},
        ]
        listing = {
            "type": "list",
            "header": {"type": "text", "text": "נכסים"},
            "body": {"text": "נכסים זמינים"},
            "action": {"button": "הצג", "sections": sections},
        }
        graph_client.send_message(PHONE_NUMBER_ID, message("interactive", listing))
        assert graph_fake.sent_messages() == [envelope("interactive", listing)]

    def test_reaction_location_and_contacts(self, graph_fake: GraphSimulator, graph_client: GraphClient) -> None:
        card = {"name": {"formatted_name": "Yossi Agent", "first_name": "Yossi"}, "phones": [{"phone": "+97235551234"}]}
        office = {"latitude": 32.0853, "longitude": 34.7818, "name": "Office", "address": "Rothschild 1"}
        graph_client.send_message(PHONE_NUMBER_ID, message("reaction", {"message_id": INBOUND, "emoji": "👍"}))
        graph_client.send_message(PHONE_NUMBER_ID, message("location", office))
        graph_client.send_message(PHONE_NUMBER_ID, message("contacts", [card], context={"message_id": INBOUND}))
        assert graph_fake.sent_messages() == [
            envelope("reaction", {"message_id": INBOUND, "emoji": "👍"}),
            envelope(
                "location", {"latitude": 32.0853, "longitude": 34.7818, "name": "Office", "address": "Rothschild 1"}
            ),
            envelope("contacts", [card], context={"message_id": INBOUND}),
        ]

    def test_a_send_api_body_goes_as_written_addressed_to_the_normalized_number(
        self, graph_fake: GraphSimulator, graph_client: GraphClient
    ) -> None:
        # Given a send object from the send API, as a CRM integrator wrote it, with our own lead_id
        written = {"to": "00972 52 555 1234", "type": "text", "text": {"body": "x"}, "lead_id": "crm-7"}
        request = parse_send_request(written | {"context": {"message_id": INBOUND}})
        # When the send use case addresses it to the normalized number and it is sent
        result = graph_client.send_message(PHONE_NUMBER_ID, request.addressed_to(normalize_phone(request.to).e164))
        # Then Meta gets it complete, in E.164, without the CRM's id
        assert graph_fake.sent_messages() == [envelope("text", {"body": "x"}, context={"message_id": INBOUND})]
        assert result.wa_id == LEAD_WA_ID

    @pytest.mark.parametrize("to", ["00972 52 555 1234", "052-555-1234", LEAD_WA_ID])
    def test_a_number_not_in_e164_never_leaves(
        self, graph_fake: GraphSimulator, graph_client: GraphClient, to: str
    ) -> None:
        # Given a message whose number nobody normalized (Meta would prefix the business number's +1)
        unaddressed = parse_send_request({"to": to, "type": "text", "text": {"body": "x"}})
        # When it is sent, then it is refused before any request
        with pytest.raises(InvalidMessageError):
            graph_client.send_message(PHONE_NUMBER_ID, unaddressed)
        assert graph_fake.recorded() == []


class TestReadReceipts:
    def test_mark_as_read(self, graph_fake: GraphSimulator, graph_client: GraphClient) -> None:
        graph_client.mark_as_read(PHONE_NUMBER_ID, INBOUND)
        assert graph_fake.reads() == [{"messaging_product": "whatsapp", "status": "read", "message_id": INBOUND}]
        assert graph_fake.sent_messages() == []

    def test_mark_as_read_with_typing_indicator(self, graph_fake: GraphSimulator, graph_client: GraphClient) -> None:
        graph_client.mark_as_read(PHONE_NUMBER_ID, INBOUND, typing_indicator=True)
        assert graph_fake.reads() == [
            {
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": INBOUND,
                "typing_indicator": {"type": "text"},
            }
        ]


class TestRetries:
    def test_a_transient_error_is_retried_and_the_message_sent_once(
        self, graph_fake: GraphSimulator, graph_client: GraphClient, graph_sleeps: list[float]
    ) -> None:
        # Given Meta fails the first attempt with "something went wrong"
        graph_fake.fail_next(131000)
        # When a text is sent
        result = graph_client.send_message(PHONE_NUMBER_ID, HI)
        # Then the client backed off once, resent, and the lead receives exactly one message
        assert result.message_id.startswith("wamid.")
        assert [request.status for request in graph_fake.recorded()] == [500, 200]
        assert len(graph_fake.sent_messages()) == 1
        assert len(graph_sleeps) == 1
        assert 0 < graph_sleeps[0] <= 0.5

    def test_an_outage_is_retried_up_to_the_attempt_bound_then_reported_unavailable(
        self, graph_fake: GraphSimulator, graph_client: GraphClient, graph_sleeps: list[float]
    ) -> None:
        # Given the Graph API answers every request with a bare 500
        graph_fake.set_outage(True)
        # When a text is sent
        with pytest.raises(GraphUnavailableError) as unavailable:
            graph_client.send_message(PHONE_NUMBER_ID, HI)
        # Then it was tried three times with growing backoff, and nothing reached the lead
        assert len(graph_fake.recorded()) == 3
        assert graph_fake.sent_messages() == []
        assert len(graph_sleeps) == 2
        assert graph_sleeps[1] <= 1.0
        assert unavailable.value.http_status == 500
        assert unavailable.value.retryable is True

    def test_timeouts_are_retried_then_reported_unavailable(self, graph_fake: GraphSimulator) -> None:
        # Given a Graph API that holds every request far longer than the client's read timeout
        graph_fake.delay_next(30, times=3)
        sleeps: list[float] = []
        client = GraphClient(TEST_ACCESS_TOKEN, base_url=graph_fake.base_url, read_timeout=0.2, sleep=sleeps.append)
        # When a text is sent
        with client, pytest.raises(GraphUnavailableError) as unavailable:
            client.send_message(PHONE_NUMBER_ID, HI)
        # Then every attempt timed out and the client gave up after its attempt bound
        assert len(graph_fake.recorded()) == 3
        assert len(sleeps) == 2
        assert "ReadTimeout" in str(unavailable.value)

    def test_the_retry_budget_in_seconds_stops_retries_before_the_attempt_bound(
        self, graph_fake: GraphSimulator
    ) -> None:
        # Given every request times out, and a client allowing many attempts but only ~1 s in all
        graph_fake.delay_next(30, times=10)
        sleeps: list[float] = []
        client = GraphClient(
            TEST_ACCESS_TOKEN,
            base_url=graph_fake.base_url,
            read_timeout=0.3,
            max_attempts=10,
            max_retry_seconds=1.2,
            sleep=sleeps.append,
        )
        # When a text is sent
        with client, pytest.raises(GraphUnavailableError):
            client.send_message(PHONE_NUMBER_ID, HI)
        # Then the time budget, not the attempt count, ended it: two timeouts plus backoff exceed 1.2 s
        assert len(graph_fake.recorded()) == 2
        assert len(sleeps) == 1

    def test_an_unreachable_api_is_retried_then_reported_unavailable(self) -> None:
        # Given a port nothing listens on any more
        with GraphSimulator() as gone:
            base_url = gone.base_url
        sleeps: list[float] = []
        with GraphClient(TEST_ACCESS_TOKEN, base_url=base_url, sleep=sleeps.append) as client:
            # When a text is sent
            with pytest.raises(GraphUnavailableError) as unavailable:
                client.send_message(PHONE_NUMBER_ID, HI)
        # Then the client retried connecting, then gave up with a retryable error
        assert len(sleeps) == 2
        assert "ConnectionError" in str(unavailable.value)


class TestErrorsRaisedAtOnce:
    def test_a_permanent_error_is_raised_with_meta_s_fields_and_not_retried(
        self, graph_fake: GraphSimulator, graph_client: GraphClient, graph_sleeps: list[float]
    ) -> None:
        # Given the lead has not written for over 24 hours
        graph_fake.fail_next(131047, details="Message failed to send because more than 24 hours have passed")
        # When a free-form text is sent
        with pytest.raises(ReengagementRequiredError) as refused:
            graph_client.send_message(PHONE_NUMBER_ID, HI)
        # Then the caller learns exactly what Meta said, after one request and no waiting
        error = refused.value
        assert error.code == 131047
        assert error.title == "Re-engagement message"
        assert error.details == "Message failed to send because more than 24 hours have passed"
        assert error.fbtrace_id
        assert error.http_status == 400
        assert error.as_dict()["fbtrace_id"] == error.fbtrace_id
        assert len(graph_fake.recorded()) == 1
        assert graph_sleeps == []

    @pytest.mark.parametrize(
        ("code", "http_status", "expected"),
        [(131056, 400, PairRateLimitError), (130429, 429, RateLimitError), (130429, 400, RateLimitError)],
    )
    def test_rate_limits_are_not_retried_but_carry_a_hint(
        self,
        graph_fake: GraphSimulator,
        graph_client: GraphClient,
        graph_sleeps: list[float],
        code: int,
        http_status: int,
        expected: type[RateLimitError],
    ) -> None:
        # Given Meta refuses for a rate limit
        graph_fake.fail_next(code, http_status)
        # When a text is sent
        with pytest.raises(expected) as limited:
            graph_client.send_message(PHONE_NUMBER_ID, HI)
        # Then it is raised at once, for the caller to reschedule after the hint
        assert len(graph_fake.recorded()) == 1
        assert graph_sleeps == []
        assert limited.value.retry_after_seconds >= 6

    def test_an_unknown_template_is_a_template_error(self, graph_fake: GraphSimulator) -> None:
        with GraphSimulator(access_token=TEST_ACCESS_TOKEN, known_templates={"hello_world"}) as strict:
            with GraphClient(TEST_ACCESS_TOKEN, base_url=strict.base_url) as client:
                with pytest.raises(TemplateError) as refused:
                    unknown = {"name": "no_such_template", "language": {"code": "he"}}
                    client.send_message(PHONE_NUMBER_ID, message("template", unknown))
        assert refused.value.code == 132001
        assert refused.value.http_status == 404

    def test_a_wrong_token_is_an_auth_error_that_never_shows_the_token(
        self, graph_fake: GraphSimulator, log_output: io.StringIO
    ) -> None:
        wrong = "EAAGwrongwrongwrongwrongwrongwrong0000"
        with GraphClient(wrong, base_url=graph_fake.base_url) as client, pytest.raises(AuthError) as refused:
            client.send_message(PHONE_NUMBER_ID, HI)
        assert refused.value.code == 190
        assert wrong not in str(refused.value)
        assert wrong not in repr(refused.value)
        assert wrong not in log_output.getvalue()

    def test_retry_logs_never_show_the_token_or_the_number(
        self, graph_fake: GraphSimulator, graph_client: GraphClient, log_output: io.StringIO
    ) -> None:
        graph_fake.fail_next(131016)
        graph_client.send_message(PHONE_NUMBER_ID, HI)
        logged = log_output.getvalue()
        assert "131016" in logged
        assert TEST_ACCESS_TOKEN not in logged
        assert LEAD_WA_ID not in logged

    def test_random_failures_follow_the_ratio(self, graph_fake: GraphSimulator, graph_client: GraphClient) -> None:
        graph_fake.fail_ratio(1.0, codes=[130429])
        with pytest.raises(RateLimitError):
            graph_client.send_message(PHONE_NUMBER_ID, HI)
        graph_fake.fail_ratio(0.0)
        assert graph_client.send_message(PHONE_NUMBER_ID, HI).message_id


class TestSimulatorRefusesWhatMetaWould:
    @pytest.mark.parametrize(
        ("message", "code"),
        [
            ({"type": "text", "text": {"body": "x" * 4097}}, 100),
            ({"type": "text"}, 131008),
            ({"type": "image", "image": {"link": "http://example.com/a.png"}}, 131009),
            (
                {
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "body": {"text": "pick"},
                        "action": {
                            "buttons": [{"type": "reply", "reply": {"id": str(i), "title": str(i)}} for i in range(4)]
                        },
                    },
                },
                131009,
            ),
            (
                {
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "body": {"text": "pick"},
                        "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "x" * 21}}]},
                    },
                },
                100,
            ),
            (
                {
                    "type": "interactive",
                    "interactive": {
                        "type": "list",
                        "body": {"text": "pick"},
                        "action": {
                            "button": "open",
                            "sections": [{"rows": [{"id": str(i), "title": str(i)} for i in range(11)]}],
                        },
                    },
                },
                131009,
            ),
            ({"type": "carrier_pigeon", "carrier_pigeon": {}}, 100),
        ],
    )
    def test_invalid_bodies_get_meta_shaped_errors(
        self, graph_fake: GraphSimulator, message: dict[str, Any], code: int
    ) -> None:
        # Posted raw: the client only sends the validated model, which refuses all of these itself.
        response = requests.post(
            graph_fake.messages_url(PHONE_NUMBER_ID),
            json={"messaging_product": "whatsapp", "recipient_type": "individual", "to": LEAD_E164, **message},
            headers={"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"},
            timeout=5,
        )
        refused = error_from_response(response.status_code, response.json())
        assert isinstance(refused, InvalidParameterError)
        assert refused.code == code
        assert refused.fbtrace_id
        assert graph_fake.sent_messages() == []

    def test_a_recipient_without_plus_is_refused(self, graph_fake: GraphSimulator) -> None:
        # Meta would prepend the business number's country code (+1) and message someone else.
        body = envelope("text", {"body": "hi"}) | {"to": LEAD_WA_ID}
        response = requests.post(
            graph_fake.messages_url(PHONE_NUMBER_ID),
            json=body,
            headers={"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"},
            timeout=5,
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == 131009

    def test_the_authorization_header_is_not_recorded(
        self, graph_fake: GraphSimulator, graph_client: GraphClient
    ) -> None:
        graph_client.send_message(PHONE_NUMBER_ID, HI)
        (request,) = graph_fake.recorded()
        assert all(name.lower() != "authorization" for name in request.headers)
        assert TEST_ACCESS_TOKEN not in json.dumps(request.headers)


class _StatusReceiver:
    """A webhook endpoint on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.answers: list[int] = []  # statuses to answer with first (then 200)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"

    def statuses(self) -> list[dict[str, Any]]:
        return [json.loads(body)["entry"][0]["changes"][0]["value"]["statuses"][0] for body, _ in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_StatusReceiver]:
    endpoint = _StatusReceiver()
    yield endpoint
    endpoint.close()


class TestStatusWebhooks:
    def simulator(self, receiver: _StatusReceiver) -> GraphSimulator:
        return GraphSimulator(
            access_token=TEST_ACCESS_TOKEN, webhook_url=receiver.url, app_secret=TEST_APP_SECRET, status_delay=0
        )

    def test_an_accepted_send_is_reported_sent_delivered_read_with_meta_s_signature(
        self, receiver: _StatusReceiver
    ) -> None:
        with self.simulator(receiver) as simulator, GraphClient(TEST_ACCESS_TOKEN, base_url=simulator.base_url) as c:
            # When a text is accepted
            result = c.send_message(PHONE_NUMBER_ID, text_message(LEAD_E164, "שלום"))
            deliveries = simulator.wait_for_deliveries(3)
        # Then three signed status webhooks follow, in order, about that message and that lead
        assert [delivery.http_status for delivery in deliveries] == [200, 200, 200]
        statuses = receiver.statuses()
        assert [status["status"] for status in statuses] == ["sent", "delivered", "read"]
        assert {status["id"] for status in statuses} == {result.message_id}
        assert {status["recipient_id"] for status in statuses} == {LEAD_WA_ID}
        for body, headers in receiver.received:
            assert verify(body, headers["x-hub-signature-256"], TEST_APP_SECRET) is SignatureVerdict.VALID

    def test_a_status_webhook_answered_5xx_is_retried_like_meta_does(self, receiver: _StatusReceiver) -> None:
        # Given a webhook that fails twice (an outage of our endpoint)
        receiver.answers = [500, 503]
        with self.simulator(receiver) as simulator, GraphClient(TEST_ACCESS_TOKEN, base_url=simulator.base_url) as c:
            # When a send is accepted
            c.send_message(PHONE_NUMBER_ID, HI)
            first = simulator.wait_for_deliveries(1)[0]
        # Then the `sent` status is posted again until it is taken, and no status is lost
        assert (first.status, first.http_status, first.attempts) == ("sent", 200, 3)
        assert [status["status"] for status in receiver.statuses()][:3] == ["sent", "sent", "sent"]

    def test_an_asynchronous_failure_is_reported_as_a_failed_status(self, receiver: _StatusReceiver) -> None:
        with self.simulator(receiver) as simulator, GraphClient(TEST_ACCESS_TOKEN, base_url=simulator.base_url) as c:
            # Given Meta accepts the send but later finds the 24 h window closed
            simulator.fail_async_next(131047)
            result = c.send_message(PHONE_NUMBER_ID, HI)
            simulator.wait_for_deliveries(1)
        # Then the only status is `failed`, carrying the error code
        (status,) = receiver.statuses()
        assert status["id"] == result.message_id
        assert status["status"] == "failed"
        assert status["errors"][0]["code"] == 131047
