"""Batched webhooks inside the webhook's timeout (issue 11 point 2). Run: `.venv/bin/python bench/bench_batches.py`.

Meta batches up to 1,000 updates in one POST; the webhook's Lambda timeout is 10 s (template.yaml Globals),
and a timeout is a 5xx that Meta redelivers again and again. Two sizes, each timed two ways:

1. Stubbed network: the real Lambda entry (functions/webhook/app.py's lambda_handler) with real botocore
   clients; botocore's `before-send` hook answers each HTTP request after a pause drawn from 5-10 ms
   (DynamoDB's and SQS's typical in-region latency) with what the service would answer. The writes one
   after another (concurrency 1) and several at a time (whatsapp_crm.ingest.MAX_CONCURRENT_WRITES) in the
   same run. Target: <= 3 s per POST.
2. Local stack: `python -m local` started here, the same POSTs signed and sent over HTTP, the ack timed.
   Target: within a third of the timeout (3.3 s). moto is the floor there: the same writes made by this
   process straight to the stack's moto through the store, one after another and several at a time.

`--quick` runs the stubbed part only.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ensure_paths

ensure_paths()

from local import meta_payloads as meta
from local.apigw import http_api_event, lambda_context

TIMEOUT_SECONDS = 10.0  # template.yaml Globals.Function.Timeout (the webhook has no Timeout of its own)
STUBBED_TARGET_SECONDS = 3.0
LOCAL_TARGET_SECONDS = TIMEOUT_SECONDS / 3
# Lambda allots CPU in proportion to memory: 1,769 MB is one vCPU (AWS Lambda docs, "memory and computing power").
MB_PER_VCPU = 1769
WEBHOOK_MEMORY_MB = 512  # template.yaml Globals.Function.MemorySize
SECRET = "bench-batches-secret"
STATUSES_PER_POST = 1000
MESSAGES_PER_POST = 100


# --- the two POSTs ----------------------------------------------------------------------------------------


def statuses_body(count: int = STATUSES_PER_POST, run: str = "") -> bytes:
    """A campaign's statuses: sent, delivered and read of a message after another (count / 3 messages)."""
    statuses = []
    now = int(time.time()) - 600
    for index in range(count):
        message, step = divmod(index, 3)
        wamid = f"wamid.BATCH{run}OUT{message:05d}="
        lead = f"97252{message % 10_000_000:07d}"
        statuses.append(meta.status(wamid, ("sent", "delivered", "read")[step], lead, timestamp=now + step))
    return meta.wire_bytes(meta.envelope(meta.status_value(statuses)))


def messages_body(count: int = MESSAGES_PER_POST, leads: int = MESSAGES_PER_POST, run: str = "") -> bytes:
    """Replies to a campaign: `count` Hebrew text messages from `leads` leads, in one POST."""
    now = int(time.time()) - 60
    messages = [
        meta.text_message(
            f"97254{index % leads:07d}",
            f"שלום, ראיתי את המודעה. אפשר פרטים על הדירה? ({index})",
            wamid=f"wamid.BATCH{run}IN{index:05d}=",
            timestamp=now + index // leads,
        )
        for index in range(count)
    ]
    return meta.wire_bytes(meta.envelope(meta.message_value(messages, name="ליד")))


# --- 1. stubbed network -----------------------------------------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class StubbedNetwork:
    """Answers every botocore HTTP request after `low`-`high` ms, as DynamoDB or SQS would on success."""

    def __init__(self, low_ms: float = 5.0, high_ms: float = 10.0, seed: int = 11) -> None:
        self.low, self.high = low_ms / 1000, high_ms / 1000
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()

    def register(self, client: Any) -> None:
        client.meta.events.register("before-send", self.answer)

    def answer(self, request: Any, event_name: str = "", **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            pause = self._random.uniform(self.low, self.high)
            self.requests[operation] += 1
        time.sleep(pause)
        body = b"{}"
        if operation == "SendMessageBatch":
            entries = json.loads(request.body)["Entries"]
            body = json.dumps(
                {
                    "Successful": [
                        {
                            "Id": entry["Id"],
                            "MessageId": f"m-{entry['Id']}",
                            "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),
                            "SequenceNumber": "1",
                        }
                        for entry in entries
                    ],
                    "Failed": [],
                }
            ).encode()
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "stub"}
        return AWSResponse(request.url, 200, headers, _Raw(body))


@dataclass
class StubbedRow:
    name: str
    concurrency: int
    seconds: list[float]
    cpu_seconds: list[float]  # of this process, every thread
    requests_per_post: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def lambda_floor(self) -> float:
        """The CPU alone at the webhook's 512 MB, where Lambda gives 512/1769 of a vCPU."""
        return statistics.median(self.cpu_seconds) / (WEBHOOK_MEMORY_MB / MB_PER_VCPU)


def _stubbed_environment() -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_REGION="eu-west-1",
        TABLE_NAME="bench-conversations",
        INBOUND_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/123456789012/bench-inbound.fifo",
        WHATSAPP_APP_SECRET=SECRET,
        WHATSAPP_VERIFY_TOKEN="bench-verify",
        WHATSAPP_ACCESS_TOKEN="bench-token",
        WHATSAPP_PHONE_NUMBER_IDS=meta.DEMO_PHONE_NUMBER_ID,
        POWERTOOLS_SERVICE_NAME="bench",
        POWERTOOLS_METRICS_NAMESPACE="Bench",
        POWERTOOLS_LOG_LEVEL="WARNING",
        POWERTOOLS_TRACE_DISABLED="true",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)


def bench_stubbed(rounds: int) -> list[StubbedRow]:
    _stubbed_environment()
    from local.handlers import load_function_module
    from whatsapp_crm import ingest, wiring

    module = load_function_module("WebhookFunction")
    network = StubbedNetwork()
    # The handler's own cached adapters, with the network stubbed under their real botocore clients.
    network.register(wiring.conversation_store(os.environ["TABLE_NAME"]).table.client)
    network.register(wiring.inbound_queue(os.environ["INBOUND_QUEUE_URL"]).client)  # type: ignore[attr-defined]
    cases: list[tuple[str, Callable[[str], bytes]]] = [
        (f"{STATUSES_PER_POST:,} statuses ({STATUSES_PER_POST // 3 + 1} messages)", lambda run: statuses_body(run=run)),
        (f"{MESSAGES_PER_POST} messages from {MESSAGES_PER_POST} leads", lambda run: messages_body(run=run)),
        (
            f"{MESSAGES_PER_POST} messages from one lead (written in order)",
            lambda run: messages_body(leads=1, run=run),
        ),
    ]
    rows = []
    default = ingest.MAX_CONCURRENT_WRITES
    for name, make_body in cases:
        for concurrency in (1, default):
            ingest.MAX_CONCURRENT_WRITES = concurrency
            samples, cpu = [], []
            network.requests.clear()
            for round_number in range(rounds + 1):
                body = make_body(f"S{concurrency}R{round_number}")
                event = http_api_event("POST", "/webhook", body=body, headers=meta.signed_headers(body, SECRET))
                started, cpu_started = time.perf_counter(), time.process_time()
                with contextlib.redirect_stdout(io.StringIO()):  # Powertools' metrics and log lines
                    response = module.lambda_handler(event, lambda_context("WebhookFunction", int(TIMEOUT_SECONDS)))
                elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu_started
                if response["statusCode"] != 200:
                    raise RuntimeError(f"{name}: webhook answered {response['statusCode']}: {response.get('body')}")
                if round_number:  # the first POST warms the clients and the code paths
                    samples.append(elapsed)
                    cpu.append(cpu_used)
            requests = sum(network.requests.values()) / (rounds + 1)
            rows.append(StubbedRow(name, concurrency, samples, cpu, requests))
    ingest.MAX_CONCURRENT_WRITES = default
    return rows


# --- 2. the local stack -----------------------------------------------------------------------------------


@dataclass
class LocalRow:
    name: str
    seconds: list[float]
    statuses: list[int]
    floor_sequential: float
    floor_concurrent: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _post(url: str, body: bytes, secret: str) -> tuple[int, float]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    try:
        started = time.perf_counter()
        connection.request("POST", "/webhook", body=body, headers=meta.signed_headers(body, secret))
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def _floor(store: Any, body: bytes, concurrency: int) -> float:
    """The POST's DynamoDB writes made straight to moto through the store: moto's own speed."""
    from whatsapp_crm.ingest import inbound_record, status_update
    from whatsapp_crm.webhook.parse import decode_body, parse_notification

    notification = parse_notification(decode_body(body))
    received_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    writes: list[Callable[[], object]] = []
    for message in notification.messages:
        writes.append(functools.partial(store.record_inbound, inbound_record(message, received_at)))
    for status in notification.statuses:
        writes.append(functools.partial(store.record_status, status_update(status, received_at)))
    started = time.perf_counter()
    if concurrency == 1:
        for write in writes:
            write()
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(lambda write: write(), writes))
    return time.perf_counter() - started


def bench_local(rounds: int) -> list[LocalRow]:
    from replay import OwnStack, Stack, StackOptions, get_json

    from local.defaults import LOCAL_APP_SECRET
    from whatsapp_crm.ingest import MAX_CONCURRENT_WRITES
    from whatsapp_crm.store.dynamodb import DynamoConversationStore

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as workdir:
        own = OwnStack(StackOptions(fault_seed=None, evidence_wait=None), Path(workdir))
        own.start()
        try:
            stack = Stack(own.url, get_json(f"{own.url}/_local/info"))
            store = DynamoConversationStore(stack.resource("ConversationsTable"), client=stack.client("dynamodb"))
            cases: list[tuple[str, Callable[[str], bytes]]] = [
                (f"{STATUSES_PER_POST:,} statuses", lambda run: statuses_body(run=run)),
                (f"{MESSAGES_PER_POST} messages from {MESSAGES_PER_POST} leads", lambda run: messages_body(run=run)),
            ]
            for name, make_body in cases:
                seconds, statuses = [], []
                for round_number in range(rounds):
                    status, elapsed = _post(own.url, make_body(f"L{round_number}"), LOCAL_APP_SECRET)
                    statuses.append(status)
                    seconds.append(elapsed)
                    time.sleep(2)  # let the responder's work on the messages settle before the next POST
                floor_sequential = _floor(store, make_body("F1"), 1)
                floor_concurrent = _floor(store, make_body("FN"), MAX_CONCURRENT_WRITES)
                rows.append(LocalRow(name, seconds, statuses, floor_sequential, floor_concurrent))
        except BaseException:
            sys.stderr.write("local stack log (tail):\n" + own.log_tail() + "\n")
            raise
        finally:
            own.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed POSTs per case (stubbed)")
    parser.add_argument("--local-rounds", type=int, default=3, help="timed POSTs per case (local stack)")
    parser.add_argument("--quick", action="store_true", help="the stubbed network only")
    args = parser.parse_args(argv)
    with open("/proc/loadavg") as loadavg:
        print(f"machine: {os.cpu_count()} cores, load average {' '.join(loadavg.read().split()[:3])}")
    failed = False
    print("\n## One POST through the real Lambda entry, real botocore, network stubbed at 5-10 ms a request")
    print(f"(median of {args.rounds} POSTs after a warm-up; target <= {STUBBED_TARGET_SECONDS:.0f} s)")
    print("| POST | writes | median | min | max | HTTP requests | CPU | CPU alone at 512 MB |")
    print("|---|---|---|---|---|---|---|---|")
    for row in bench_stubbed(args.rounds):
        mode = "one after another" if row.concurrency == 1 else f"{row.concurrency} at a time"
        print(
            f"| {row.name} | {mode} | {row.median:.2f} s | {min(row.seconds):.2f} s "
            f"| {max(row.seconds):.2f} s | {row.requests_per_post:.0f} | {statistics.median(row.cpu_seconds):.2f} s "
            f"| {row.lambda_floor:.1f} s |"
        )
        if row.concurrency > 1 and "one lead" not in row.name and row.median > STUBBED_TARGET_SECONDS:
            failed = True
    if not args.quick:
        print("\n## One POST to the local stack (`python -m local`, moto), ack time over HTTP")
        print(f"(each of {args.local_rounds} POSTs; target <= {LOCAL_TARGET_SECONDS:.1f} s, a third of the timeout)")
        print("| POST | ack times | HTTP | moto floor, one after another | moto floor, at once |")
        print("|---|---|---|---|---|")
        for local_row in bench_local(args.local_rounds):
            times = ", ".join(f"{value:.2f}" for value in local_row.seconds)
            print(
                f"| {local_row.name} | {times} s (median {local_row.median:.2f} s) "
                f"| {sorted(set(local_row.statuses))} | {local_row.floor_sequential:.2f} s "
                f"| {local_row.floor_concurrent:.2f} s |"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
