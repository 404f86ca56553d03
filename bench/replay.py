"""Replay a realistic day of Meta webhooks against the local stack, drain it, and check the promises.

    .venv/bin/python bench/replay.py                        # 10,000 webhooks, 500 leads, no faults
    .venv/bin/python bench/replay.py --fault-rate 0.1       # 10% of AWS attempts and Graph sends fail
    make replay                                             # the documented full run (docs/reliability.md)

By default it starts its own stack (`python -m local` on a free loopback port, simulator status webhooks
without delay, faults as asked) and stops it at the end; `--url` fires at a stack you started yourself
(faults are then whatever that stack was started with).

Phases: the day is cut into one slice per `--concurrency` level and each slice is fired with that many
threads; a valid webhook that is not answered 200 is retried like Meta does (at once, then with growing
pauses, bounded by `--max-attempts`). Then it waits until the inbound queue is empty, nothing is in flight
and the simulator delivered every status webhook, reads the truth (the stack's DynamoDB table on moto, the
simulator's record of every Graph request, the dead-letter queue) and prints the checks. Exit code 1 when
any check fails. docs/reliability.md defines each check and what "eligible for an auto-reply" means.
"""

from __future__ import annotations

import argparse
import heapq
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "layers" / "whatsapp"), str(ROOT / "bench")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from replay_data import ATTACK_KINDS, MALFORMED, MALFORMED_PART, Day, Webhook, describe, generate_day

from local.defaults import LOCAL_APP_SECRET
from local.faults import FAULT_HEADER, read_meters

READY_LINE = "Local stack ready"
COOLDOWN = timedelta(minutes=30)  # template.yaml AutoReplyCooldownMinutes default
# Meta retries "immediately, then with decreasing frequency"; seven days compressed into about a minute.
RETRY_PAUSES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
STATUS_STEPS = {"reaction": 1}  # the simulator reports sent/delivered/read for everything else
SILENT_OUTCOMES = ("cooldown", "opted_out", "superseded")


# --- the stack ----------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str, timeout: float = 30.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class StackOptions:
    fault_rate: float | None = None
    aws_fault_rate: float | None = None
    graph_fault_rate: float | None = None
    aws_fault_level: str | None = None
    fault_seed: int | None = 1
    max_instances: int = 4
    # Scaled down like the visibility timeout: the simulator's statuses arrive within seconds, retried on 5xx.
    evidence_wait: int | None = 60
    # DynamoDB capacity units from item sizes (local/capacity.py): doubles the reads moto serves.
    meter_capacity: bool = False
    # Seconds the Graph simulator waits before posting a send's statuses (Meta: about a second).
    status_delay: float = 0


class OwnStack:
    """`python -m local` as a child process (the way tests/e2e starts it), with metering on."""

    def __init__(self, options: StackOptions, workdir: Path) -> None:
        self.options = options
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.meter_dir = workdir / "meters"
        self.log_path = workdir / "stack.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "local", "--port", str(self.port), "--quiet"]
        command += ["--status-delay", str(self.options.status_delay)]
        command += ["--max-instances", str(self.options.max_instances)]
        for flag, value in (
            ("--fault-rate", self.options.fault_rate),
            ("--aws-fault-rate", self.options.aws_fault_rate),
            ("--graph-fault-rate", self.options.graph_fault_rate),
            ("--aws-fault-level", self.options.aws_fault_level),
            ("--fault-seed", self.options.fault_seed),
        ):
            if value is not None:
                command += [flag, str(value)]
        return command

    def start(self, timeout: float = 120.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WHATSAPP_", "LOCAL_"))}
        env["LOCAL_METER_DIR"] = str(self.meter_dir)
        if self.options.meter_capacity:
            env["LOCAL_METER_CAPACITY"] = "1"
        if self.options.evidence_wait is not None:
            env["REPLY_EVIDENCE_WAIT_SECONDS"] = str(self.options.evidence_wait)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.log_path.read_text(encoding="utf-8", errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the local stack did not start:\n" + self.log_tail())
            time.sleep(0.2)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children[int(fields[1])].append(int(entry.name))
    found, pending = [pid], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak resident memory of the stack's process tree (sum of RSS; shared pages count once per process)."""

    def __init__(self, pid: int | None, every: float = 0.5) -> None:
        self.pid = pid
        self.every = every
        self.peak_kib = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and self.pid is not None and Path(f"/proc/{self.pid}").exists():
            tree = _process_tree(self.pid)
            total = sum(_rss_kib(pid) for pid in tree)
            if total > self.peak_kib:
                self.peak_kib, self.peak_processes = total, len(tree)
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        if self.pid is not None and Path("/proc").exists():
            self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


# --- firing -------------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    status: int  # 0: no HTTP answer (connection failed)
    ms: float
    faults: int
    code: str | None


@dataclass
class Delivery:
    webhook: Webhook
    attempts: list[Attempt] = field(default_factory=list)
    gave_up: bool = False

    @property
    def final(self) -> int | None:
        return self.attempts[-1].status if self.attempts else None


@dataclass
class PhaseStats:
    concurrency: int
    webhooks: int
    requests: int
    seconds: float
    latencies_ms: list[float]

    def percentile(self, share: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Dispatcher:
    """Fires webhooks over keep-alive connections from `concurrency` threads; retries valid ones like Meta."""

    def __init__(self, url: str, max_attempts: int, progress: Progress) -> None:
        address = url.removeprefix("http://").split("/")[0]
        self.host, port = address.split(":")
        self.port = int(port)
        self.max_attempts = max_attempts
        self.progress = progress

    def run(self, deliveries: Sequence[Delivery], concurrency: int) -> float:
        heap: list[tuple[float, int, int]] = [(0.0, index, index) for index in range(len(deliveries))]
        heapq.heapify(heap)
        condition = threading.Condition()
        outstanding = [len(deliveries)]
        sequence = [len(deliveries)]

        def next_due() -> int | None:
            with condition:
                while True:
                    if outstanding[0] == 0:
                        return None
                    if heap:
                        due, _, index = heap[0]
                        wait = due - time.monotonic()
                        if wait <= 0:
                            heapq.heappop(heap)
                            return index
                        condition.wait(min(wait, 0.5))
                    else:
                        condition.wait(0.5)

        def settle(index: int, retry_in: float | None) -> None:
            with condition:
                if retry_in is None:
                    outstanding[0] -= 1
                else:
                    sequence[0] += 1
                    heapq.heappush(heap, (time.monotonic() + retry_in, sequence[0], index))
                condition.notify_all()

        def work() -> None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                while (index := next_due()) is not None:
                    delivery = deliveries[index]
                    attempt, connection = self._post(connection, delivery.webhook)
                    delivery.attempts.append(attempt)
                    retry_in = self._retry_in(delivery)
                    self.progress.record(attempt, retried=retry_in is not None, done=retry_in is None)
                    settle(index, retry_in)
            finally:
                connection.close()

        started = time.monotonic()
        threads = [threading.Thread(target=work, name=f"fire-{n}", daemon=True) for n in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started

    def _retry_in(self, delivery: Delivery) -> float | None:
        if not delivery.webhook.valid or delivery.final == 200:
            return None
        if len(delivery.attempts) >= self.max_attempts:
            delivery.gave_up = True
            return None
        return RETRY_PAUSES[min(len(delivery.attempts), len(RETRY_PAUSES) - 1)]

    def _post(self, connection: http.client.HTTPConnection, webhook: Webhook) -> tuple[Attempt, Any]:
        started = time.perf_counter()
        try:
            connection.request("POST", "/webhook", body=webhook.body, headers=webhook.headers)
            response = connection.getresponse()
            body = response.read()
            faults = int(response.getheader(FAULT_HEADER) or 0)
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
            return Attempt(0, (time.perf_counter() - started) * 1000, 0, "connection_failed"), connection
        code = None
        if status >= 400:
            try:
                document = json.loads(body)
                code = (document.get("error") or {}).get("code") or document.get("message")
            except (ValueError, AttributeError):
                code = None
        return Attempt(status, (time.perf_counter() - started) * 1000, faults, code), connection


class Progress:
    """One line on stderr: a bar on a terminal, a line per tenth otherwise. `phase_line`, when given, gets one
    line per phase (the day generated, each concurrency level, the drain, the checks), even when quiet: the
    short replay in `make test` reports through it past pytest's output capture."""

    def __init__(self, quiet: bool = False, phase_line: Callable[[str], None] | None = None) -> None:
        self.quiet = quiet
        self.phase_line = phase_line
        self.tty = sys.stderr.isatty()
        self._lock = threading.Lock()
        self.label = ""
        self.total = 0
        self.done = 0
        self.requests = 0
        self.retries = 0
        self.errors_5xx = 0
        self.started = time.monotonic()
        self._last_print = 0.0
        self._last_tenth = -1

    def begin(self, label: str, total: int) -> None:
        with self._lock:
            self.label, self.total, self.done, self.requests, self.retries, self.errors_5xx = label, total, 0, 0, 0, 0
            self.started = time.monotonic()
            self._last_tenth = -1

    def record(self, attempt: Attempt, *, retried: bool, done: bool) -> None:
        with self._lock:
            self.requests += 1
            self.retries += retried
            self.done += done
            self.errors_5xx += attempt.status >= 500 or attempt.status == 0
            self._show()

    def _show(self, final: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        rate = self.requests / max(now - self.started, 1e-6)
        share = self.done / self.total if self.total else 1.0
        line = (
            f"{self.label}  {self.done:,}/{self.total:,}  {rate:,.0f} req/s  "
            f"retries {self.retries:,}  5xx {self.errors_5xx:,}"
        )
        if self.tty:
            if final or now - self._last_print > 0.2:
                bar = "#" * int(share * 30)
                sys.stderr.write(f"\r  [{bar:<30}] {line}   ")
                sys.stderr.flush()
                self._last_print = now
        else:
            tenth = int(share * 10)
            if tenth != self._last_tenth or final:
                self._last_tenth = tenth
                sys.stderr.write(f"  {share:4.0%} {line}\n")
                sys.stderr.flush()

    def end(self) -> None:
        with self._lock:
            self._show(final=True)
            if self.tty and not self.quiet:
                sys.stderr.write("\n")

    def note(self, text: str) -> None:
        if not self.quiet:
            sys.stderr.write(f"  {text}\n")
            sys.stderr.flush()

    def phase(self, text: str) -> None:
        """A phase began or ended: a note, and one line to `phase_line`."""
        self.note(text)
        if self.phase_line is not None:
            self.phase_line(f"replay: {text}")


# --- draining -----------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """What the replay needs to know about a running stack (from /_local/info)."""

    url: str
    info: dict[str, Any]

    @property
    def aws_endpoint(self) -> str:
        return str(self.info["aws_endpoint"])

    def resource(self, logical_id: str) -> str:
        return str(self.info["resources"][logical_id])

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name="eu-west-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def graph_requests(self) -> list[dict[str, Any]]:
        return list(get_json(f"{self.url}/_local/graph/requests", timeout=60)["requests"])

    def deliveries(self) -> list[dict[str, Any]]:
        return list(get_json(f"{self.url}/_local/graph/deliveries", timeout=60)["deliveries"])


def _is_send(record: dict[str, Any]) -> bool:
    body = record.get("body")
    return isinstance(body, dict) and "status" not in body and str(record.get("path", "")).endswith("/messages")


def _expected_deliveries(requests: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(status webhooks the simulator owes for accepted sends, requests not answered yet)."""
    owed = sum(STATUS_STEPS.get(str(r["body"].get("type")), 3) for r in requests if _is_send(r) and r["status"] == 200)
    unanswered = sum(1 for record in requests if record.get("status") is None)
    return owed, unanswered


def drain(stack: Stack, timeout: float, progress: Progress) -> float:
    """Wait until the inbound queue is empty with nothing in flight and every status webhook was delivered."""
    sqs = stack.client("sqs")
    queue_url = stack.resource("InboundQueue")
    started = time.monotonic()
    last_phase_line = started
    settled = 0
    while time.monotonic() - started < timeout:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        visible = int(attributes["ApproximateNumberOfMessages"])
        in_flight = int(attributes["ApproximateNumberOfMessagesNotVisible"]) + int(
            attributes["ApproximateNumberOfMessagesDelayed"]
        )
        owed, unanswered = _expected_deliveries(stack.graph_requests())
        delivered = len(stack.deliveries())
        quiet = visible == 0 and in_flight == 0 and unanswered == 0 and delivered >= owed
        settled = settled + 1 if quiet else 0
        state = (
            f"draining {time.monotonic() - started:5.0f}s: queue {visible} waiting, {in_flight} in flight; "
            f"Graph {unanswered} unanswered; status webhooks {delivered}/{owed}"
        )
        # A phase line every half minute: retried records come back only after the visibility timeout.
        if time.monotonic() - last_phase_line >= 30:
            progress.phase(state)
            last_phase_line = time.monotonic()
        else:
            progress.note(state)
        if settled >= 3:
            return time.monotonic() - started
        time.sleep(2.0 if quiet else 3.0)
    raise TimeoutError(f"the stack did not drain within {timeout:.0f}s")


# --- the truth ----------------------------------------------------------------------------------------------


@dataclass
class Truth:
    messages: dict[str, dict[str, Any]]
    claims: dict[str, dict[str, Any]]
    leads: dict[str, dict[str, Any]]
    stats: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]


def read_truth(stack: Stack) -> Truth:
    from whatsapp_crm.store.dynamodb import lead_state, with_decision
    from whatsapp_crm.store.toolkit import from_item

    dynamodb = stack.client("dynamodb")
    messages: dict[str, dict[str, Any]] = {}
    claims: dict[str, dict[str, Any]] = {}
    partitions: dict[str, list[dict[str, Any]]] = {}
    stats: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=stack.resource("ConversationsTable")):
        for raw in page.get("Items", []):
            item = from_item(raw)
            pk, sk = str(item["PK"]), str(item["SK"])
            if pk.startswith("MSG#") and sk == "MSG":
                messages[pk[4:]] = item
            elif pk.startswith("MSG#") and sk == "REPLY":
                claims[pk[4:]] = item
            elif pk.startswith("LEAD#"):
                partitions.setdefault(pk[5:], []).append(item)
            elif pk.startswith("STATS#"):
                stats.append(item)
    # As readers see them (store/dynamodb.py): a conversation's unread count is the size of its unread tag
    # set (a lead's is the sum over its conversations, one per business number), and an inbound message
    # shows the decision its reply record holds.
    leads: dict[str, dict[str, Any]] = {}
    for wa_id, items in partitions.items():
        view = lead_state(wa_id, items)
        if view is not None:
            conversations = view.pop("conversations", {})
            view["unread_count"] = sum(int(c.get("unread_count") or 0) for c in conversations.values())
            leads[wa_id] = view
    messages = {wamid: with_decision(message, claims.get(wamid)) for wamid, message in messages.items()}
    sqs = stack.client("sqs")
    dead: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=stack.resource("InboundDeadLetterQueue"), MaxNumberOfMessages=10, VisibilityTimeout=300
        ).get("Messages", [])
        if not batch:
            break
        dead += [json.loads(message["Body"]) for message in batch]
    return Truth(messages, claims, leads, stats, stack.graph_requests(), stack.deliveries(), dead)


# --- the checks ---------------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    value: str
    ok: bool
    detail: str = ""
    examples: list[str] = field(default_factory=list)


def explain(truth: Truth, wamid: str) -> dict[str, Any]:
    """What the table holds about one message and its lead's other messages (for the JSON report)."""
    item = truth.messages.get(wamid) or {}
    wa_id = item.get("wa_id")
    keep = ("timestamp", "message_type", "text", "intent", "reply_status", "reply_at", "reply_wamid")
    timeline = []
    for other, message in truth.messages.items():
        if message.get("wa_id") == wa_id and message.get("direction") == "inbound":
            claim = truth.claims.get(other) or {}
            timeline.append(
                {
                    "wamid": other,
                    **{key: message.get(key) for key in keep},
                    "claim": {k: claim.get(k) for k in ("state", "outcome", "claimed_at", "finished_at", "attempts")},
                }
            )
    lead = truth.leads.get(str(wa_id)) or {}
    return {
        "wamid": wamid,
        "lead": {k: v for k, v in lead.items() if k.startswith(("opt", "last_auto_reply_at", "last_human"))},
        "timeline": sorted(timeline, key=lambda entry: str(entry["claim"].get("finished_at") or "")),
    }


def _parse(moment: Any) -> datetime | None:
    from whatsapp_crm.clock import parse_iso

    return parse_iso(str(moment)) if moment else None


@dataclass
class ReplyAudit:
    classified: int = 0
    no_intent: int = 0
    eligible: int = 0
    exactly_one: int = 0
    doubles: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unjustified: list[str] = field(default_factory=list)
    stray_sends: list[str] = field(default_factory=list)
    annotation_mismatch: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    explained: list[dict[str, Any]] = field(default_factory=list)


def _sends_by_inbound(requests: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    sends: dict[str, list[str]] = defaultdict(list)
    for record in requests:
        if not _is_send(record) or record.get("status") != 200:
            continue
        context = record["body"].get("context") or {}
        response = record.get("response") or {}
        wamid = ((response.get("messages") or [{}])[0]).get("id", "?")
        sends[str(context.get("message_id"))].append(str(wamid))
    return sends


class _ReplyRules:
    """The responder's silences, re-derived from what is stored: when each lead's intents were answered,
    when it opted out, and which opt-out messages it sent."""

    def __init__(self, inbound: dict[str, dict[str, Any]], intents: dict[str, Any], claims: dict[str, Any]) -> None:
        self.inbound = inbound
        self.answered: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        self.opted_out_at: dict[str, list[datetime]] = defaultdict(list)
        self.opt_messages: dict[str, list[float]] = defaultdict(list)
        for wamid, inquiry in intents.items():
            claim = claims.get(wamid) or {}
            finished = _parse(claim.get("finished_at"))
            if inquiry is None or finished is None:
                continue
            wa_id = str(inbound[wamid]["wa_id"])
            if claim.get("outcome") == "sent":
                self.answered[(wa_id, inquiry.intent.value)].append(finished)
            if inquiry.intent.value == "opt_out":
                self.opt_messages[wa_id].append(self._sent_at(wamid))
                if claim.get("outcome") in ("sent", "opted_out"):
                    self.opted_out_at[wa_id].append(finished)

    def _sent_at(self, wamid: str) -> float:
        moment = _parse(self.inbound[wamid]["timestamp"])
        return moment.timestamp() if moment else 0.0

    def justified(self, wamid: str, outcome: str, inquiry: Any, finished: datetime | None) -> bool:
        """Whether a silence (`cooldown`, `opted_out`, `superseded`) follows from the rules."""
        if finished is None:
            return False
        wa_id, intent = str(self.inbound[wamid]["wa_id"]), inquiry.intent.value
        if outcome == "cooldown":
            answered = self.answered[(wa_id, intent)]
            return inquiry.slot_id is None and any(t <= finished and finished - t < COOLDOWN for t in answered)
        if outcome == "opted_out":
            return any(t <= finished for t in self.opted_out_at[wa_id])
        if outcome == "superseded":
            own = self._sent_at(wamid)
            return intent in ("opt_out", "opt_in") and any(other > own for other in self.opt_messages[wa_id])
        return False


def _judge_unclassified(audit: ReplyAudit, wamid: str, item: dict[str, Any], replies: list[str]) -> None:
    audit.no_intent += 1
    audit.outcomes["no_intent"] += 1
    if replies:
        audit.stray_sends.append(wamid)
    if item.get("reply_status") != "no_intent":
        audit.annotation_mismatch.append(wamid)


def _judge(audit: ReplyAudit, wamid: str, claim: dict[str, Any], replies: list[str], silent: bool) -> None:
    outcome = str(claim.get("outcome")) if claim.get("state") in ("done", "failed_permanent") else "undecided"
    if silent:
        if replies:
            audit.stray_sends.append(wamid)
        return
    audit.eligible += 1
    if outcome == "sent" and len(replies) == 1 and replies[0] == claim.get("reply_wamid"):
        audit.exactly_one += 1
    elif len(replies) > 1:
        audit.doubles.append(wamid)
    elif outcome not in ("sent", "undecided", "failed"):
        audit.unjustified.append(wamid)  # a silence the rules do not explain
    else:
        audit.missing.append(wamid)  # undecided, failed, or a recorded reply Graph never accepted


def audit_replies(truth: Truth) -> ReplyAudit:
    """Every stored inbound message against the responder's rules (docs/reliability.md: eligibility)."""
    from whatsapp_crm.respond import classify
    from whatsapp_crm.webhook.models import InboundMessage

    audit = ReplyAudit()
    sends = _sends_by_inbound(truth.requests)
    inbound = {wamid: item for wamid, item in truth.messages.items() if item.get("direction") == "inbound"}
    intents = {w: classify(InboundMessage.model_validate(json.loads(i["raw"]))) for w, i in inbound.items()}
    rules = _ReplyRules(inbound, intents, truth.claims)
    for wamid, inquiry in intents.items():
        item, claim, replies = inbound[wamid], truth.claims.get(wamid) or {}, sends.get(wamid, [])
        if inquiry is None:
            _judge_unclassified(audit, wamid, item, replies)
            continue
        audit.classified += 1
        decided = claim.get("state") in ("done", "failed_permanent")
        outcome = str(claim.get("outcome")) if decided else "undecided"
        audit.outcomes[outcome] += 1
        if decided and item.get("reply_status") != outcome:
            audit.annotation_mismatch.append(wamid)
        silent = outcome in SILENT_OUTCOMES and rules.justified(
            wamid, outcome, inquiry, _parse(claim.get("finished_at"))
        )
        _judge(audit, wamid, claim, replies, silent)
    audit.stray_sends += [context for context in sends if context not in inbound]
    return audit


def _highest(names: Sequence[str]) -> int:
    from whatsapp_crm.records import StatusRank

    ranks = [rank for name in names if (rank := StatusRank.of(name)) is not None]
    return int(max(ranks)) if ranks else -1


def audit_statuses(truth: Truth, deliveries: Sequence[Delivery]) -> tuple[int, list[str]]:
    """Outbound messages whose stored status is not the highest status the webhook acknowledged.

    A status whose webhook was answered non-200 may still have been applied (the answer was lost), so the
    stored status may lie between the highest acknowledged and the highest attempted, never outside.
    """
    acked: dict[str, list[str]] = defaultdict(list)
    attempted: dict[str, list[str]] = defaultdict(list)
    for delivery in deliveries:
        for wamid, name in delivery.webhook.statuses:
            attempted[wamid].append(name)
            if delivery.final == 200:
                acked[wamid].append(name)
    for record in truth.deliveries:
        attempted[record["wamid"]].append(record["status"])
        if record.get("http_status") == 200:
            acked[record["wamid"]].append(record["status"])
    wrong: list[str] = []
    for wamid in attempted:
        item = truth.messages.get(wamid)
        stored = _highest([str(item.get("status"))]) if item else -1
        low, high = _highest(acked[wamid]), _highest(attempted[wamid])
        if not (low <= stored <= high) or (low >= 0 and item is None):
            wrong.append(wamid)
    return len(attempted), wrong


def audit_counts(truth: Truth) -> tuple[list[str], list[str]]:
    """Counters and unread counts against the distinct items: what a double write would inflate.

    The hourly counters are written after the event's own write, outside any transaction (table redesign,
    docs/table-design.md): a fault between the two leaves an event uncounted, so a counter may run short
    (reported) but never over (a failure)."""
    problems: list[str] = []
    short: list[str] = []
    inbound_by_lead: Counter[str] = Counter(
        str(item["wa_id"]) for item in truth.messages.values() if item.get("direction") == "inbound"
    )
    for wa_id, lead in truth.leads.items():
        if int(lead.get("unread_count") or 0) != inbound_by_lead.get(wa_id, 0):
            problems.append(f"lead {wa_id[-4:]}: unread_count {lead.get('unread_count')} != {inbound_by_lead[wa_id]}")
    totals: Counter[str] = Counter()
    for item in truth.stats:
        for name in ("received", "sent", "auto_replies", "failed"):
            totals[name] += int(item.get(name) or 0)
    outbound = [item for item in truth.messages.values() if item.get("direction") == "outbound"]
    expected = {
        "received": sum(inbound_by_lead.values()),
        "sent": sum(1 for item in outbound if item.get("sent_at")),
        "auto_replies": sum(1 for item in outbound if item.get("auto_reply") is True and item.get("sent_at")),
        "failed": sum(1 for item in outbound if item.get("status") == "failed"),
    }
    for name, count in expected.items():
        if totals[name] > count:
            problems.append(f"counter {name}: {totals[name]} > {count} items")
        elif totals[name] < count:
            short.append(f"{name} {totals[name]} of {count}")
    return problems, short


def audit_dead_letters(truth: Truth) -> list[str]:
    """Dead letters whose last error is not a permanent one (configuration or token errors that need a human)."""
    from whatsapp_crm.graph.errors import error_class_for

    wrong = []
    for body in truth.dead_letters:
        wamid = str(body.get("wamid"))
        error = (truth.claims.get(wamid) or {}).get("last_error") or {}
        code = error.get("code") if isinstance(error, dict) else None
        permanent = code is not None and not error_class_for(int(code)).retryable
        if not permanent:
            wrong.append(wamid)
    return wrong


def run_checks(day: Day, deliveries: Sequence[Delivery], truth: Truth, faults_on: bool) -> tuple[list[Check], Any]:
    checks: list[Check] = []
    valid = [d for d in deliveries if d.webhook.valid]
    sent_wamids = {wamid for d in valid for wamid in d.webhook.wamids}
    lost = sorted(wamid for wamid in sent_wamids if wamid not in truth.messages)
    gave_up = [d for d in valid if d.final != 200]
    checks.append(
        Check(
            "messages lost",
            f"{len(lost)} of {len(sent_wamids):,}",
            not lost and not gave_up,
            f"{len(gave_up)} valid webhooks never answered 200 after {RETRY_PAUSES.__len__()} tries" if gave_up else "",
            lost[:5],
        )
    )
    counts, short = audit_counts(truth)
    checks.append(
        Check(
            "stored twice (counters, unread counts)",
            str(len(counts)),
            not counts,
            f"counters short after faults: {', '.join(short)}" if short else "",
            counts[:5],
        )
    )
    audit = audit_replies(truth)
    checks.append(
        Check(
            "auto-replies per eligible inbound = 1",
            f"{audit.exactly_one:,}/{audit.eligible:,}",
            audit.exactly_one == audit.eligible and not audit.stray_sends,
            f"missing {len(audit.missing)}, unjustified silence {len(audit.unjustified)}, "
            f"stray sends {len(audit.stray_sends)}",
            (audit.missing + audit.unjustified + audit.stray_sends)[:5],
        )
    )
    checks.append(Check("double replies", str(len(audit.doubles)), not audit.doubles, "", audit.doubles[:5]))
    checks.append(
        Check(
            "inbound shows the responder's decision",
            f"{len(audit.annotation_mismatch)} differ",
            not audit.annotation_mismatch,
            "reply_status on the message vs the reply claim",
            audit.annotation_mismatch[:5],
        )
    )
    total_outbound, wrong_status = audit_statuses(truth, deliveries)
    checks.append(
        Check(
            "final status = highest received",
            f"{total_outbound - len(wrong_status):,}/{total_outbound:,}",
            not wrong_status,
            "",
            wrong_status[:5],
        )
    )
    unexplained = [
        a for d in valid for a in d.attempts if (a.status >= 500 or a.status == 0) and not (faults_on and a.faults)
    ]
    all_5xx = sum(1 for d in valid for a in d.attempts if a.status >= 500 or a.status == 0)
    checks.append(
        Check(
            "5xx on valid input",
            f"{len(unexplained)}",
            not unexplained,
            f"{all_5xx} answered 5xx in all, {all_5xx - len(unexplained)} met an injected fault and were retried",
            [f"{a.status} {a.code}" for a in unexplained[:5]],
        )
    )
    client_errors = [a for d in valid for a in d.attempts if 400 <= a.status < 500]
    checks.append(Check("4xx on valid input", str(len(client_errors)), not client_errors))
    bad = [d for d in deliveries if not d.webhook.valid]
    accepted = [d for d in bad if d.final not in d.webhook.expected_statuses]
    stored_bad = [w for d in bad for w in d.webhook.wamids if w in truth.messages]
    checks.append(
        Check(
            "tampered/malformed accepted",
            str(len(accepted) + len(stored_bad)),
            not accepted and not stored_bad,
            f"{sum(1 for d in bad if d.webhook.kind in ATTACK_KINDS)} unsigned/tampered, "
            f"{sum(1 for d in bad if d.webhook.kind in (MALFORMED, MALFORMED_PART))} malformed",
            [f"{d.webhook.kind} -> {d.final}" for d in accepted[:5]] + stored_bad[:5],
        )
    )
    dead_wrong = audit_dead_letters(truth)
    checks.append(
        Check(
            "DLQ holds only permanent errors",
            f"{len(truth.dead_letters)} dead letters, {len(dead_wrong)} not permanent",
            not dead_wrong,
            "",
            dead_wrong[:5],
        )
    )
    failing = [wamid for check in checks if not check.ok for wamid in check.examples if wamid.startswith("wamid.")]
    audit.explained = [explain(truth, wamid) for wamid in failing[:10]]
    return checks, audit


# --- report -------------------------------------------------------------------------------------------------


@dataclass
class Report:
    command: str
    started_at: str
    day: dict[str, Any]
    phases: list[PhaseStats]
    drain_seconds: float
    checks: list[Check]
    outcomes: dict[str, int]
    peak_rss_mib: float
    peak_processes: int
    meters: dict[str, Any]
    faults: dict[str, Any]
    explained: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def document(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "started_at": self.started_at,
            "ok": self.ok,
            "day": self.day,
            "faults": self.faults,
            "phases": [
                {
                    "concurrency": p.concurrency,
                    "webhooks": p.webhooks,
                    "requests": p.requests,
                    "seconds": round(p.seconds, 2),
                    "requests_per_second": round(p.requests / p.seconds, 1) if p.seconds else None,
                    "p50_ms": round(p.percentile(0.50), 1),
                    "p95_ms": round(p.percentile(0.95), 1),
                    "p99_ms": round(p.percentile(0.99), 1),
                    "max_ms": round(max(p.latencies_ms, default=0.0), 1),
                }
                for p in self.phases
            ],
            "drain_seconds": round(self.drain_seconds, 1),
            "checks": [
                {"name": c.name, "value": c.value, "ok": c.ok, "detail": c.detail, "examples": c.examples}
                for c in self.checks
            ],
            "responder_outcomes": self.outcomes,
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "peak_processes": self.peak_processes,
            "meters": self.meters,
            "explained_failures": self.explained,
        }

    def table(self) -> str:
        lines = [f"Replay: {self.command}", f"started {self.started_at}; faults {json.dumps(self.faults)}", ""]
        lines.append(
            f"{'concurrency':>11} {'webhooks':>9} {'requests':>9} {'req/s':>7} "
            f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        )
        for phase in self.document()["phases"]:
            lines.append(
                f"{phase['concurrency']:>11} {phase['webhooks']:>9,} {phase['requests']:>9,} "
                f"{phase['requests_per_second'] or 0:>7.1f} {phase['p50_ms']:>8.1f} {phase['p95_ms']:>8.1f} "
                f"{phase['p99_ms']:>8.1f} {phase['max_ms']:>8.1f}"
            )
        lines += [
            f"drained in {self.drain_seconds:.0f}s; peak RSS of the stack's process tree "
            f"{self.peak_rss_mib:,.0f} MiB ({self.peak_processes} processes)",
            "",
            f"{'check':<42} {'result':<32} ok",
        ]
        for check in self.checks:
            lines.append(f"{check.name:<42} {check.value:<32} {'PASS' if check.ok else 'FAIL'}")
            if check.detail:
                lines.append(f"{'':<42}   {check.detail}")
            if not check.ok and check.examples:
                lines.append(f"{'':<42}   e.g. {', '.join(check.examples[:3])}")
        lines += ["", "responder outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))]
        lines.append("RESULT: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


def summarize_meters(directory: Path | None, meters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Per function: invocations, handler durations, AWS calls and attempts, injected faults, log bytes."""
    if meters is None:
        if directory is None or not directory.exists():
            return {}
        meters = read_meters(directory)
    summary: dict[str, Any] = {}
    for meter in meters:
        entry = summary.setdefault(
            meter["function"],
            {"instances": 0, "invocations": 0, "records": 0, "errors": 0, "log_bytes": 0, "durations_ms": []},
        )
        entry["instances"] += 1
        for key in ("invocations", "records", "errors", "log_bytes"):
            entry[key] += meter[key]
        entry["durations_ms"] += meter["durations_ms"]
        for key in ("calls", "attempts", "faults", "capacity"):
            bucket = entry.setdefault(key, {})
            for name, count in meter.get(key, {}).items():
                bucket[name] = bucket.get(name, 0) + count
    for entry in summary.values():
        durations = sorted(entry.pop("durations_ms"))
        if durations:
            entry["duration_ms"] = {
                "mean": round(statistics.fmean(durations), 2),
                "p50": round(durations[len(durations) // 2], 2),
                "p95": round(durations[int(len(durations) * 0.95)], 2),
                "max": round(durations[-1], 2),
            }
    return summary


# --- main ---------------------------------------------------------------------------------------------------


@dataclass
class ReplayOptions:
    n: int = 10_000
    leads: int = 500
    seed: int = 20261125
    concurrency: tuple[int, ...] = (1, 4, 16)
    max_attempts: int = 8
    drain_timeout: float = 1200.0
    visibility_timeout: int | None = None
    url: str | None = None
    stack: StackOptions = field(default_factory=StackOptions)
    json_path: Path | None = None
    stack_log: Path | None = None
    quiet: bool = False
    command: str = ""


@contextmanager
def _stack(options: ReplayOptions, workdir: Path) -> Iterator[tuple[Stack, Path | None]]:
    if options.url:
        info = get_json(f"{options.url}/_local/info")
        meter_dir = (info.get("faults") or {}).get("meter_dir")
        yield Stack(options.url, info), Path(meter_dir) if meter_dir else None
        return
    own = OwnStack(options.stack, workdir)
    own.start()
    try:
        yield Stack(own.url, get_json(f"{own.url}/_local/info")), own.meter_dir
    except BaseException:
        sys.stderr.write("local stack log (tail):\n" + own.log_tail() + "\n")
        raise
    finally:
        own.stop()
        if options.stack_log is not None and own.log_path.exists():
            options.stack_log.write_bytes(own.log_path.read_bytes())


def _fire(
    day: Day, stack: Stack, options: ReplayOptions, progress: Progress
) -> tuple[list[Delivery], list[PhaseStats]]:
    deliveries = [Delivery(webhook) for webhook in day.webhooks]
    levels = options.concurrency
    size = -(-len(deliveries) // len(levels))
    phases: list[PhaseStats] = []
    dispatcher = Dispatcher(stack.url, options.max_attempts, progress)
    for number, concurrency in enumerate(levels):
        chunk = deliveries[number * size : (number + 1) * size]
        if not chunk:
            continue
        progress.begin(f"concurrency {concurrency:>3}", len(chunk))
        seconds = dispatcher.run(chunk, concurrency)
        progress.end()
        progress.phase(
            f"fired {len(chunk):,} webhooks at concurrency {concurrency} in {seconds:.0f} s "
            f"({progress.retries:,} retries, {progress.errors_5xx:,} 5xx)"
        )
        latencies = [attempt.ms for delivery in chunk for attempt in delivery.attempts]
        phases.append(PhaseStats(concurrency, len(chunk), len(latencies), seconds, latencies))
    return deliveries, phases


def run(options: ReplayOptions, phase_line: Callable[[str], None] | None = None) -> Report:
    progress = Progress(options.quiet, phase_line)
    started_at = datetime.now().astimezone().isoformat(timespec="seconds")
    day = generate_day(options.n, options.leads, seed=options.seed, app_secret=LOCAL_APP_SECRET)
    progress.phase(f"generated {len(day.webhooks):,} webhooks for {len(day.leads)} leads; starting the local stack")
    with tempfile.TemporaryDirectory(prefix="replay-") as workdir, _stack(options, Path(workdir)) as (stack, meters):
        if options.visibility_timeout is not None:
            stack.client("sqs").set_queue_attributes(
                QueueUrl=stack.resource("InboundQueue"),
                Attributes={"VisibilityTimeout": str(options.visibility_timeout)},
            )
        with RssSampler(stack.info.get("pid")) as rss:
            deliveries, phases = _fire(day, stack, options, progress)
            progress.phase("draining: the queue, retried records and status webhooks")
            drain_seconds = drain(stack, options.drain_timeout, progress)
            progress.phase(f"drained in {drain_seconds:.0f} s; checking what the stack stored and sent")
        truth = read_truth(stack)
        faults = dict(stack.info.get("faults") or {})
        faults_on = bool(faults.get("aws_rate") or faults.get("graph_rate"))
        checks, audit = run_checks(day, deliveries, truth, faults_on)
        failed = [check.name for check in checks if not check.ok]
        progress.phase(
            f"{len(checks) - len(failed)} of {len(checks)} checks passed" + (f"; failed: {failed}" if failed else "")
        )
        time.sleep(1.5)  # the workers write their meters every second
        meter_summary = summarize_meters(meters)
    return Report(
        command=options.command,
        started_at=started_at,
        day=describe(day),
        phases=phases,
        drain_seconds=drain_seconds,
        checks=checks,
        outcomes=dict(audit.outcomes),
        peak_rss_mib=rss.peak_kib / 1024,
        peak_processes=rss.peak_processes,
        meters=meter_summary,
        faults={k: v for k, v in faults.items() if k != "meter_dir"},
        explained=audit.explained,
    )


def parse_arguments(argv: Sequence[str] | None) -> ReplayOptions:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-n", "--webhooks", type=int, default=10_000, help="webhook POSTs in the day (10,000)")
    parser.add_argument("--leads", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated levels, one slice of the day each")
    parser.add_argument("--max-attempts", type=int, default=8, help="Meta-like tries per valid webhook")
    parser.add_argument("--drain-timeout", type=float, default=1200.0, help="seconds to wait for the queue")
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=None,
        help="shorten the inbound queue's visibility timeout (template: 180 s) so retried records return sooner",
    )
    parser.add_argument("--url", default=None, help="a running local stack (default: start one)")
    parser.add_argument("--fault-rate", type=float, default=None, help="AWS and Graph faults (own stack only)")
    parser.add_argument("--aws-fault-rate", type=float, default=None)
    parser.add_argument("--graph-fault-rate", type=float, default=None)
    parser.add_argument("--aws-fault-level", choices=["attempt", "call"], default=None)
    parser.add_argument("--fault-seed", type=int, default=1)
    parser.add_argument("--max-instances", type=int, default=4, help="concurrent instances per function")
    parser.add_argument(
        "--evidence-wait",
        type=int,
        default=60,
        help="seconds the responder awaits Meta's status of an unanswered send before resending (default: 300)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the full report here")
    parser.add_argument("--stack-log", type=Path, default=None, help="keep the started stack's log here")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    return ReplayOptions(
        n=args.webhooks,
        leads=args.leads,
        seed=args.seed,
        concurrency=tuple(int(level) for level in args.concurrency.split(",") if level.strip()),
        max_attempts=args.max_attempts,
        drain_timeout=args.drain_timeout,
        visibility_timeout=args.visibility_timeout,
        url=args.url,
        stack=StackOptions(
            fault_rate=args.fault_rate,
            aws_fault_rate=args.aws_fault_rate,
            graph_fault_rate=args.graph_fault_rate,
            aws_fault_level=args.aws_fault_level,
            fault_seed=args.fault_seed,
            max_instances=args.max_instances,
            evidence_wait=args.evidence_wait,
        ),
        json_path=args.json,
        stack_log=args.stack_log,
        quiet=args.quiet,
        command="python bench/replay.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    )


def main(
    argv: Sequence[str] | None = None,
    print_table: Callable[[str], None] = print,
    phase_line: Callable[[str], None] | None = None,
) -> int:
    options = parse_arguments(argv)
    report = run(options, phase_line)
    print_table(report.table())
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(report.document(), ensure_ascii=False, indent=2), encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
