"""The local stack from its real entry point (`python -m local`), driven over HTTP only, then stopped with Ctrl-C.

Parts that need a function which is not in template.yaml yet are skipped, and say so; a function that is in
the template but fails is a failure.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from e2e.harness import (
    StackProcess,
    alive,
    clean_environment,
    descendants,
    eventually,
    free_port,
    http,
    port_refuses,
)
from local import meta_payloads as meta
from local.defaults import LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN
from local.template import ROOT, load_template

HEBREW = "שלום, אפשר לקבוע פגישה מחר?"
TEMPLATE = load_template()


def _has_function(logical_id: str) -> bool:
    return logical_id in TEMPLATE.get("Resources", {})


@dataclass
class RunningStack:
    stack: StackProcess
    url: str
    info: dict[str, Any]
    children: set[int]

    def get(self, path: str) -> Any:
        return http("GET", self.url + path)

    def post_webhook(self, document: dict[str, Any], secret: str = LOCAL_APP_SECRET) -> Any:
        body = meta.wire_bytes(document)
        return http("POST", self.url + "/webhook", body, meta.signed_headers(body, secret))

    def graph_requests(self) -> list[dict[str, Any]]:
        return list(self.get("/_local/graph/requests").json()["requests"])

    def deliveries(self) -> list[dict[str, Any]]:
        return list(self.get("/_local/graph/deliveries").json()["deliveries"])


@pytest.fixture(scope="module")
def running() -> Iterator[RunningStack]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local", "--port", str(port), "--status-delay", "0.05"],
        cwd=ROOT,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stack = StackProcess(process)
    try:
        stack.wait_ready()
        url = f"http://127.0.0.1:{port}"
        info = http("GET", url + "/_local/info").json()
        yield RunningStack(stack, url, info, descendants(process.pid))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def lead() -> str:
    return "97252" + "".join(random.choice("0123456789") for _ in range(7))


def test_the_stack_serves_every_function_of_the_template(running: RunningStack) -> None:
    functions = {lid for lid, res in TEMPLATE["Resources"].items() if res["Type"] == "AWS::Serverless::Function"}
    assert set(running.info["functions"]) == functions
    assert running.info["simulator"] is True
    # Routes that need IAM in AWS are open locally, and the banner says so.
    if any(route["authorizer"] != "NONE" for route in running.info["routes"]):
        assert "Authenticated routes are OPEN here" in running.stack.log()


def test_meta_handshake_answers_the_challenge(running: RunningStack) -> None:
    ok = running.get(f"/webhook?hub.mode=subscribe&hub.verify_token={LOCAL_VERIFY_TOKEN}&hub.challenge=1158201444")
    wrong = running.get("/webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1158201444")
    assert (ok.status, ok.body) == (200, b"1158201444")
    assert wrong.status == 403


def test_a_bad_signature_is_refused_and_an_unknown_route_is_apigateways_404(running: RunningStack) -> None:
    document = meta.envelope(meta.message_value([meta.text_message("972500000000", "x")]))
    refused = running.post_webhook(document, secret="not-the-app-secret")
    missing = running.get("/no/such/route")
    assert refused.status == 403
    assert refused.json()["error"]["code"] == "signature_mismatch"
    assert (missing.status, missing.json()) == (404, {"message": "Not Found"})


def _wamid_of(record: dict[str, Any]) -> str | None:
    response = record.get("response")
    if record.get("status") == 200 and isinstance(response, dict) and response.get("messages"):
        return str(response["messages"][0]["id"])
    return None


@dataclass
class Conversation:
    lead: str
    inbound_wamid: str
    reply: dict[str, Any]

    @property
    def reply_wamid(self) -> str:
        return str(self.reply["response"]["messages"][0]["id"])


@pytest.fixture(scope="module")
def conversation(running: RunningStack, lead: str) -> Conversation:
    if not _has_function("ResponderFunction"):
        pytest.skip("ResponderFunction is not in template.yaml yet")
    message = meta.text_message(lead, HEBREW)
    assert running.post_webhook(meta.envelope(meta.message_value([message], name="דנה"))).status == 200

    def reply() -> dict[str, Any] | None:
        for record in running.graph_requests():
            body = record["body"] if isinstance(record["body"], dict) else {}
            if record["status"] == 200 and body.get("context", {}).get("message_id") == message["id"]:
                return record
        return None

    found = eventually("the auto-reply at the Graph simulator", reply)
    return Conversation(lead, message["id"], found)


def test_a_signed_hebrew_message_gets_an_auto_reply_from_the_receiving_number(
    running: RunningStack, conversation: Conversation
) -> None:
    reply = conversation.reply
    assert reply["phone_number_id"] == meta.DEMO_PHONE_NUMBER_ID
    assert reply["body"]["to"] == f"+{conversation.lead}"
    reads = [r for r in running.graph_requests() if isinstance(r["body"], dict) and r["body"].get("status") == "read"]
    assert any(r["body"]["message_id"] == conversation.inbound_wamid for r in reads)


def test_the_simulators_status_webhooks_are_accepted_by_the_webhook(
    running: RunningStack, conversation: Conversation
) -> None:
    def ticks() -> list[dict[str, Any]] | None:
        mine = [d for d in running.deliveries() if d["wamid"] == conversation.reply_wamid]
        return mine if len(mine) == 3 else None

    delivered = eventually("sent, delivered and read webhooks", ticks)
    assert [d["status"] for d in delivered] == ["sent", "delivered", "read"]
    assert {d["http_status"] for d in delivered} == {200}


def test_the_conversations_api_shows_the_thread_with_ticks(running: RunningStack, conversation: Conversation) -> None:
    if not _has_function("ConversationsFunction"):
        pytest.skip("ConversationsFunction is not in template.yaml yet")
    path = f"/conversations/{conversation.lead}/messages"

    def thread() -> list[dict[str, Any]] | None:
        answer = running.get(path)
        assert answer.status == 200, answer.body
        messages: list[dict[str, Any]] = answer.json()["messages"]
        by_id = {message["id"]: message for message in messages}
        reply = by_id.get(conversation.reply_wamid)
        return messages if reply is not None and reply.get("status") == "read" else None

    messages = eventually("the reply to show as read", thread)
    by_id = {message["id"]: message for message in messages}
    inbound = by_id[conversation.inbound_wamid]
    assert (inbound["direction"], inbound["text"]) == ("inbound", HEBREW)
    assert by_id[conversation.reply_wamid]["direction"] == "outbound"
    # Newest first (a reply in the same second as its message may tie with it).
    stamps = [message["timestamp"] for message in messages]
    assert stamps == sorted(stamps, reverse=True)


def test_the_send_api_reaches_the_simulator(running: RunningStack, conversation: Conversation) -> None:
    if not _has_function("SendFunction"):
        pytest.skip("SendFunction is not in template.yaml yet")
    text = "דנה, הדירה ברחוב הרצל פנויה לביקור מחר ב-10:00"
    request = {"to": f"+{conversation.lead}", "type": "text", "text": {"body": text}}
    answer = http(
        "POST",
        running.url + "/messages",
        json.dumps(request, ensure_ascii=False).encode("utf-8"),
        {"content-type": "application/json"},
    )
    assert answer.status == 201, answer.body
    wamid = answer.json()["message_id"]
    sent = [record for record in running.graph_requests() if _wamid_of(record) == wamid]
    assert len(sent) == 1
    assert sent[0]["body"]["text"]["body"] == text
    assert sent[0]["body"]["to"] == f"+{conversation.lead}"


def test_templates_come_from_the_simulators_catalogue_and_are_checked_before_a_send(running: RunningStack) -> None:
    # When the CRM lists the templates on the local stack
    listed = running.get("/templates").json()
    names = {(t["name"], t["language"], t["status"]) for t in listed["templates"]}
    # Then the simulator's catalogue is there, statuses included
    assert ("property_update", "he", "APPROVED") in names and ("price_drop_alert", "he", "PAUSED") in names
    # And a template send with the wrong parameters is refused before it reaches the simulator
    wa_id = "97252" + "".join(random.choice("0123456789") for _ in range(7))
    request = {
        "to": f"+{wa_id}",
        "type": "template",
        "template": {"name": "property_update", "language": {"code": "he"}},
    }
    before = len(running.graph_requests())
    answer = http("POST", running.url + "/messages", json.dumps(request).encode(), {"content-type": "application/json"})
    assert answer.status == 422 and answer.json()["error"]["code"] == "template_mismatch"
    assert len(running.graph_requests()) == before


def test_a_leads_photo_with_a_wrong_checksum_shows_unavailable(running: RunningStack) -> None:
    added = http("POST", running.url + "/_local/graph/media?sample=photo&faults=wrong_sha256", b"", {}).json()
    wa_id = "97252" + "".join(random.choice("0123456789") for _ in range(7))
    photo = {
        "from": wa_id,
        "id": meta.new_wamid(),
        "timestamp": str(int(time.time())),
        "type": "image",
        "image": {"id": added["media_id"], "mime_type": "image/jpeg"},
    }
    assert running.post_webhook(meta.envelope(meta.message_value([photo]))).status == 200

    def decided() -> dict[str, Any] | None:
        messages = running.get(f"/conversations/{wa_id}/messages").json().get("messages", [])
        media = next((m.get("media") for m in messages if m["id"] == photo["id"]), None)
        return media if media and media["status"] != "pending" else None

    media = eventually("the archiver's decision", decided, 60)
    assert (media["status"], media["reason"]) == ("unavailable", "checksum_mismatch")


def test_make_demo_shows_a_photo_archived_and_a_brochure_sent(running: RunningStack) -> None:
    port = running.url.rsplit(":", 1)[1]
    demo = subprocess.run(
        [sys.executable, "-m", "local.demo", "--port", port, "--bidi", "logical", "--timeout", "60"],
        cwd=ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "archived: image/jpeg" in demo.stdout and "✓ matches Meta's" in demo.stdout
    assert "POST /media → 201" in demo.stdout and "the agent's brochure" in demo.stdout
    sent = [r for r in running.graph_requests() if isinstance(r["body"], dict) and r["body"].get("type") == "document"]
    assert sent and sent[-1]["status"] == 200
    # And the demo ends with the CRM events of its conversation, as the bus delivered them
    events = demo.stdout.split("CRM events on the bus", 1)[1]
    for detail_type in ("message.received", "meeting.requested", "auto_reply.sent", "meeting.booked"):
        assert detail_type in events, events


def test_the_table_stream_publishes_a_redelivered_message_once_on_the_event_bus(
    running: RunningStack, lead: str
) -> None:
    # Given a lead's message that Meta delivers twice
    message = meta.text_message(lead, "hello, is the flat still available?")
    document = meta.envelope(meta.message_value([message]))
    assert running.post_webhook(document).status == 200
    assert running.post_webhook(document).status == 200

    # And a later message, whose stream record comes after anything the redelivery could have written
    later = meta.text_message(lead, "and is there parking?")
    assert running.post_webhook(meta.envelope(meta.message_value([later]))).status == 200

    def received() -> list[dict[str, Any]] | None:
        events = running.get(f"/_local/events?wa_id={lead}&detail_type=message.received").json()["events"]
        return events if later["id"] in {event["detail"]["wamid"] for event in events} else None

    # When the stack's stream feeding has run EventsFunction, the bus received the first message once
    events = eventually("the later message's message.received", received, 30)
    [event] = [event for event in events if event["detail"]["wamid"] == message["id"]]
    assert event["source"] == "whatsapp-crm" and "text" not in event["detail"]
    assert event["detail"]["phone_number_id"] == meta.DEMO_PHONE_NUMBER_ID


def test_ctrl_c_stops_every_process_and_frees_every_port(running: RunningStack) -> None:
    # Given the running stack, its child processes and the ports it listens on
    process = running.stack.process
    children = descendants(process.pid) | running.children
    assert children, "the stack should run moto and function workers as child processes"
    urls = [running.url, running.info["aws_endpoint"], running.info["graph"]]
    # When it gets Ctrl-C
    process.send_signal(signal.SIGINT)
    # Then it exits cleanly, and nothing it started is left
    assert process.wait(timeout=60) == 0, running.stack.log()
    leftovers = eventually("the children to exit", lambda: None if any(alive(pid) for pid in children) else [], 10)
    assert leftovers == []
    assert all(port_refuses(url) for url in urls)
    assert "nothing left running" in running.stack.log()


def test_a_killed_stack_leaves_no_orphan() -> None:
    # Given a stack that gets no chance to clean up (SIGKILL)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local", "--port", str(port), "--quiet"],
        cwd=ROOT,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stack = StackProcess(process)
    try:
        stack.wait_ready()
        children = descendants(process.pid)
        assert children
        # When it is killed
        process.kill()
        process.wait()
        # Then moto (parent-death signal) and the function workers (their stdin closes) exit by themselves
        eventually("orphans to exit", lambda: None if any(alive(pid) for pid in children) else [], 15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
