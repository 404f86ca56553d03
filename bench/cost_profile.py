"""AWS calls, capacity units, invocations and handler time per event, measured on the local stack
(input to docs/cost.md).

    .venv/bin/python bench/cost_profile.py --inbound 100 --outbound 100 --json .local/cost-profile.json

Clean workloads, each measured alone with the stack's botocore hooks (local/faults.py metering, and
local/capacity.py for DynamoDB capacity units computed from each item before and after each write):
1. inbound, one per reply kind (greeting, availability, meeting): N leads each send one Hebrew message
   that gets exactly one auto-reply of that kind (the same N leads each time: a greeting from a new lead,
   then availability and meeting questions from leads the table knows); the Graph simulator then posts
   sent, delivered and read for each reply, as Meta does;
2. outbound: M template sends through POST /messages (the CRM's sends), each followed by the simulator's
   three status webhooks.
Per event it reports Lambda invocations per function, AWS API calls per operation (and HTTP attempts),
DynamoDB write and read units (table, transactions' doubling, index entries, per item kind), handler
milliseconds (mean, p50, p95) and log bytes. Handler time here is this machine's CPU plus moto's latency on
loopback, not Lambda's arm64 at 512 MB calling real DynamoDB; docs/cost.md says how it uses it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "layers" / "whatsapp"), str(ROOT / "bench")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import print_and_save
from replay import OwnStack, Progress, Stack, StackOptions, drain, get_json, summarize_meters

from local import meta_payloads as meta
from local.capacity import item_size
from local.defaults import LOCAL_APP_SECRET
from local.faults import read_meters


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def _leads(count: int, offset: int) -> list[str]:
    return [f"97253{offset + index:07d}" for index in range(count)]


# One Hebrew message per reply kind; bench/cost_profile.py checks that each got the intended reply.
INBOUND_KINDS = {
    "greeting": "שלום",
    "availability": "מתי אפשר לדבר בטלפון?",
    "meeting": "שלום, אפשר לקבוע פגישה מחר?",
}


def inbound_workload(stack: Stack, count: int, text: str, offset: int) -> None:
    for wa_id in _leads(count, offset):
        message = meta.text_message(wa_id, text, timestamp=int(time.time()) - 5)
        body = meta.wire_bytes(meta.envelope(meta.message_value([message], name="דנה")))
        status = _post(f"{stack.url}/webhook", body, meta.signed_headers(body, LOCAL_APP_SECRET))
        if status != 200:
            raise RuntimeError(f"webhook answered {status}")


def outbound_workload(stack: Stack, count: int) -> None:
    for wa_id in _leads(count, 500_000):
        document = {
            "to": f"+{wa_id}",
            "type": "template",
            "template": {"name": "viewing_reminder", "language": {"code": "he"}},
        }
        body = json.dumps(document).encode()
        status = _post(f"{stack.url}/messages", body, {"content-type": "application/json"})
        if status != 201:
            raise RuntimeError(f"POST /messages answered {status}")


def item_sizes(stack: Stack) -> dict[str, dict[str, float]]:
    """Mean and max size (bytes) of each kind of item the workloads left in the table."""
    client = stack.client("dynamodb")
    sizes: dict[str, list[int]] = {}
    for page in client.get_paginator("scan").paginate(TableName=stack.resource("ConversationsTable")):
        for item in page.get("Items", []):
            pk, sk = item["PK"]["S"], item["SK"]["S"]
            direction = item.get("direction", {}).get("S", "")
            kind = f"{pk.split('#')[0]}/{sk.split('#')[0]}" + (f"/{direction}" if direction else "")
            size = item_size(item)
            sizes.setdefault(kind, []).append(size)
    return {kind: {"count": len(v), "mean": round(sum(v) / len(v)), "max": max(v)} for kind, v in sizes.items()}


def _replies_by_intent(stack: Stack) -> dict[str, int]:
    """How many auto-replies of each intent the table holds: each workload must have got its own kind."""
    client = stack.client("dynamodb")
    counts: dict[str, int] = {}
    for page in client.get_paginator("scan").paginate(TableName=stack.resource("ConversationsTable")):
        for item in page.get("Items", []):
            if item.get("direction", {}).get("S") == "outbound" and item.get("auto_reply", {}).get("BOOL"):
                intent = item.get("intent", {}).get("S", "?")
                counts[intent] = counts.get(intent, 0) + 1
    return counts


def _durations(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Handler milliseconds of the invocations between two raw meter readings, per function."""
    seen = {meter["pid"]: len(meter["durations_ms"]) for meter in before}
    window: dict[str, list[float]] = {}
    for meter in after:
        window.setdefault(meter["function"], []).extend(meter["durations_ms"][seen.get(meter["pid"], 0) :])
    stats = {}
    for function, values in window.items():
        if values:
            ordered = sorted(values)
            stats[function] = {
                "mean": round(sum(ordered) / len(ordered), 2),
                "p50": round(ordered[len(ordered) // 2], 2),
                "p95": round(ordered[int(len(ordered) * 0.95)], 2),
            }
    return stats


def _difference(after: dict[str, Any], before: dict[str, Any], events: int) -> dict[str, Any]:
    """Per-event figures of what happened between two meter summaries."""
    per_event: dict[str, Any] = {}
    for function, now in after.items():
        earlier = before.get(function, {})
        invocations = now["invocations"] - earlier.get("invocations", 0)
        if invocations == 0:
            continue
        calls = {
            name: round((count - earlier.get("calls", {}).get(name, 0)) / events, 3)
            for name, count in now.get("calls", {}).items()
            if count - earlier.get("calls", {}).get(name, 0) > 0
        }
        attempts = {
            name: round((count - earlier.get("attempts", {}).get(name, 0)) / events, 3)
            for name, count in now.get("attempts", {}).items()
            if count - earlier.get("attempts", {}).get(name, 0) > 0
        }
        per_event[function] = {
            "invocations_per_event": round(invocations / events, 3),
            "records_per_invocation": round((now["records"] - earlier.get("records", 0)) / invocations, 2)
            if now["records"]
            else None,
            "calls_per_event": calls,
            "http_attempts_per_event": attempts,
            "log_bytes_per_invocation": round((now["log_bytes"] - earlier.get("log_bytes", 0)) / invocations),
            "capacity_per_event": _capacity(now.get("capacity", {}), earlier.get("capacity", {}), events),
        }
    per_event["dynamodb"] = _totals(per_event)
    return per_event


def _capacity(now: dict[str, int], earlier: dict[str, int], events: int) -> dict[str, float]:
    """Write units (and read units, kept doubled in the meter to stay integral) per event."""
    figures = {}
    for name, value in now.items():
        delta = value - earlier.get(name, 0)
        if delta:
            key = "rru" if name == "rru_x2" else name
            figures[key] = round(delta / (2 if name == "rru_x2" else 1) / events, 3)
    return figures


def _totals(per_function: dict[str, Any]) -> dict[str, float]:
    """The whole event's DynamoDB units over every function (what docs/cost.md prices)."""
    totals: dict[str, float] = {}
    for figures in per_function.values():
        for name, value in figures.get("capacity_per_event", {}).items():
            totals[name] = round(totals.get(name, 0) + value, 3)
    return dict(sorted(totals.items()))


def run(inbound: int, outbound: int, progress: Progress) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cost-") as workdir:
        # Statuses 0.3 s apart after each send, as Meta posts them (about a second later): with none, a status
        # and the reply's record race for one item, and each process's before/after reads count the other's
        # write too.
        own = OwnStack(StackOptions(fault_seed=None, meter_capacity=True, status_delay=0.3), Path(workdir))
        own.start()
        try:
            stack = Stack(own.url, get_json(f"{own.url}/_local/info"))
            results: dict[str, Any] = {"inbound_messages_per_kind": inbound, "outbound_sends": outbound}
            workloads: list[tuple[str, int, Any]] = [
                # The same leads write all three: the greeting is a new lead's first message, availability
                # and meeting come from leads the table knows (their listing entry moves).
                (f"per_inbound_{kind}", inbound, lambda n, t=text: inbound_workload(stack, n, t, 0))
                for kind, text in INBOUND_KINDS.items()
            ]
            workloads.append(("per_outbound_send", outbound, lambda n: outbound_workload(stack, n)))
            readings = []
            for _name, count, workload in workloads:
                time.sleep(1.5)  # workers write their meters every second
                readings.append(read_meters(own.meter_dir))
                workload(count)
                drain(stack, 600, progress)
            time.sleep(1.5)
            readings.append(read_meters(own.meter_dir))
            results["replies_by_intent"] = _replies_by_intent(stack)
            results["item_bytes"] = item_sizes(stack)
            summaries = [summarize_meters(own.meter_dir, raw) for raw in readings]
            for index, (name, count, _workload) in enumerate(workloads):
                results[name] = _difference(summaries[index + 1], summaries[index], count)
                results[name]["handler_ms"] = _durations(readings[index], readings[index + 1])
            return results
        finally:
            own.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--inbound", type=int, default=100, help="leads per reply kind")
    parser.add_argument("--outbound", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    results = run(args.inbound, args.outbound, Progress(args.quiet))
    print_and_save(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
