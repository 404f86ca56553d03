"""The Graph simulator owns the two demo numbers, as a WABA with two numbers does (issue 14): each sends and
reports statuses as itself, a number it does not own is refused as Meta refuses it, and the WABA lists both."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest

from conftest import TEST_ACCESS_TOKEN
from local import meta_payloads as meta
from local.graph_simulator import GraphSimulator
from local.template_catalogue import DEFAULT_WABA_ID
from whatsapp_crm.graph import GraphClient, InvalidParameterError
from whatsapp_crm.send_models import text_message

LEAD = "972525551234"
STRANGER_NUMBER = "100000000000001"


@pytest.fixture
def two_numbers() -> Iterator[GraphSimulator]:
    with GraphSimulator(access_token=TEST_ACCESS_TOKEN, phone_numbers=meta.DEMO_NUMBERS) as simulator:
        yield simulator


def _get(simulator: GraphSimulator, path: str) -> Any:
    request = urllib.request.Request(
        simulator.base_url + path, headers={"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_each_of_the_two_numbers_sends_as_itself(two_numbers: GraphSimulator) -> None:
    with GraphClient(TEST_ACCESS_TOKEN, base_url=two_numbers.base_url) as client:
        first = client.send_message(meta.DEMO_PHONE_NUMBER_ID, text_message(f"+{LEAD}", "שלום מהסניף הראשון"))
        second = client.send_message(meta.DEMO_SECOND_PHONE_NUMBER_ID, text_message(f"+{LEAD}", "שלום מהסניף השני"))
    assert first.message_id != second.message_id
    assert [record.phone_number_id for record in two_numbers.recorded()] == [
        meta.DEMO_PHONE_NUMBER_ID,
        meta.DEMO_SECOND_PHONE_NUMBER_ID,
    ]


def test_a_number_the_waba_does_not_own_is_refused_like_meta_refuses_it(two_numbers: GraphSimulator) -> None:
    with GraphClient(TEST_ACCESS_TOKEN, base_url=two_numbers.base_url) as client:
        with pytest.raises(InvalidParameterError) as refused:
            client.send_message(STRANGER_NUMBER, text_message(f"+{LEAD}", "hello"))
    assert refused.value.code == 100
    assert STRANGER_NUMBER in str(refused.value.details)
    assert two_numbers.sent_messages() == []


def test_the_waba_lists_both_numbers(two_numbers: GraphSimulator) -> None:
    listed = _get(two_numbers, f"/v22.0/{DEFAULT_WABA_ID}/phone_numbers")
    assert [number["id"] for number in listed["data"]] == [meta.DEMO_PHONE_NUMBER_ID, meta.DEMO_SECOND_PHONE_NUMBER_ID]
    assert listed["data"][1]["display_phone_number"] == "+1 555-078-3882"


def test_status_webhooks_name_the_number_that_sent() -> None:
    # Given a simulator that posts its status webhooks to a receiver of ours
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    try:
        with GraphSimulator(
            access_token=TEST_ACCESS_TOKEN,
            phone_numbers=meta.DEMO_NUMBERS,
            webhook_url=url,
            app_secret="secret",
            status_delay=0,
            status_sequence=("sent",),
        ) as simulator:
            with GraphClient(TEST_ACCESS_TOKEN, base_url=simulator.base_url) as client:
                client.send_message(meta.DEMO_SECOND_PHONE_NUMBER_ID, text_message(f"+{LEAD}", "hello"))
            simulator.wait_for_deliveries(1)
    finally:
        server.shutdown()
    # Then the status names the second number, with its own display number
    [document] = received
    metadata = document["entry"][0]["changes"][0]["value"]["metadata"]
    assert metadata == {"display_phone_number": "15550783882", "phone_number_id": meta.DEMO_SECOND_PHONE_NUMBER_ID}
