"""What the table's stream and the CRM events add per answered message (input to docs/cost.md, issue 14).

    .venv/bin/python bench/events_cost.py --burst 200 --trickle 20 --json .local/events-cost.json

On the local stack (`python -m local`, metering on, no faults), the cost profile's inbound workload: each
lead sends one Hebrew greeting, gets one auto-reply, and the Graph simulator posts sent, delivered and read
for it. Two runs:
1. burst: N leads at once, as under load: the stream piles up and EventsFunction takes big batches;
2. trickle: M leads one after another, each only once the previous one's events are all on the bus, as when
   messages come in one at a time: every burst of stream records is an invocation of its own.
Per answered message it reports stream records (all, and those the event source mapping's filter passes),
events by detail-type, PutEvents calls, EventsFunction invocations, its handler milliseconds and log bytes.
The stack's stream poller reads every 0.5 s and has no batching window; Lambda's MaximumBatchingWindowInSeconds
(1 s) would group at least as much, so the trickle's invocations are an upper bound.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "layers" / "whatsapp"), str(ROOT / "bench")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import print_and_save
from cost_profile import _post
from replay import OwnStack, Progress, Stack, StackOptions, drain, get_json, summarize_meters

from local import meta_payloads as meta
from local.defaults import LOCAL_APP_SECRET
from local.faults import read_meters

EVENTS_FUNCTION = "EventsFunction"
FILTERED_SORT_KEYS = ("MSG", "LEAD")


def passes_filter(record: dict[str, Any]) -> bool:
    """The event source mapping's FilterCriteria (template.yaml), which the local poller does not apply."""
    body = record["dynamodb"]
    sort_key = body["Keys"]["SK"]["S"]
    new = body.get("NewImage") or {}
    if sort_key in FILTERED_SORT_KEYS:
        return True
    if sort_key == "REPLY":
        return bool(new.get("intent", {}).get("S") == "meeting")
    return sort_key.startswith("CONV#") and "last_human_outbound_at" in new


def _greet(stack: Stack, wa_id: str) -> None:
    message = meta.text_message(wa_id, "שלום, ראיתי את המודעה", timestamp=int(time.time()) - 5)
    body = meta.wire_bytes(meta.envelope(meta.message_value([message], name="דנה")))
    status = _post(f"{stack.url}/webhook", body, meta.signed_headers(body, LOCAL_APP_SECRET))
    if status != 200:
        raise RuntimeError(f"webhook answered {status}")


def _events(stack: Stack) -> list[dict[str, Any]]:
    return list(get_json(f"{stack.url}/_local/events", timeout=60)["events"])


def _settle(stack: Stack, expected: int, timeout: float = 300.0) -> list[dict[str, Any]]:
    """The bus's events once at least `expected` arrived and three reads a second apart agree."""
    counts: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _events(stack)
        counts.append(len(events))
        if len(events) >= expected and len(counts) >= 3 and len(set(counts[-3:])) == 1:
            return events
        time.sleep(1.0)
    raise RuntimeError(f"events did not settle: {counts[-5:]}")


def stream_records(stack: Stack) -> Counter[str]:
    """Every record on the table's stream, by `<SK kind>` and whether the mapping's filter passes it."""
    streams = stack.client("dynamodbstreams")
    arn = streams.list_streams(TableName=stack.resource("ConversationsTable"))["Streams"][0]["StreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    position = iterator["ShardIterator"]
    counts: Counter[str] = Counter()
    while True:
        page = streams.get_records(ShardIterator=position, Limit=1000)
        for record in page.get("Records", []):
            counts["passes_filter" if passes_filter(record) else "filtered_out"] += 1
        if not page.get("Records"):
            return counts
        position = page["NextShardIterator"]


def _events_function(summary: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    now, earlier = summary.get(EVENTS_FUNCTION, {}), before.get(EVENTS_FUNCTION, {})
    calls = {
        name: count - earlier.get("calls", {}).get(name, 0)
        for name, count in now.get("calls", {}).items()
        if count - earlier.get("calls", {}).get(name, 0)
    }
    return {
        "invocations": now.get("invocations", 0) - earlier.get("invocations", 0),
        "records": now.get("records", 0) - earlier.get("records", 0),
        "log_bytes": now.get("log_bytes", 0) - earlier.get("log_bytes", 0),
        "calls": calls,
    }


def _durations(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[float]:
    seen = {meter["pid"]: len(meter["durations_ms"]) for meter in before}
    return [
        value
        for meter in after
        if meter["function"] == EVENTS_FUNCTION
        for value in meter["durations_ms"][seen.get(meter["pid"], 0) :]
    ]


def _per_message(
    label: str, count: int, events: list[dict[str, Any]], function: dict[str, Any], durations: list[float]
) -> dict[str, Any]:
    by_type = Counter(str(event["detail-type"]) for event in events)
    ordered = sorted(durations)
    return {
        "workload": label,
        "answered_messages": count,
        "events_per_message": round(len(events) / count, 3),
        "events_by_type": dict(sorted(by_type.items())),
        "invocations_per_message": round(function["invocations"] / count, 3),
        "records_per_invocation": round(function["records"] / function["invocations"], 2)
        if function["invocations"]
        else None,
        "put_events_calls_per_message": round(
            sum(n for name, n in function["calls"].items() if name.endswith(".PutEvents")) / count, 3
        ),
        "calls": function["calls"],
        "log_bytes_per_invocation": round(function["log_bytes"] / function["invocations"])
        if function["invocations"]
        else None,
        "handler_ms": {
            "mean": round(sum(ordered) / len(ordered), 2),
            "p50": round(ordered[len(ordered) // 2], 2),
            "p95": round(ordered[int(len(ordered) * 0.95)], 2),
        }
        if ordered
        else None,
    }


def run(burst: int, trickle: int, progress: Progress) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="events-cost-") as workdir:
        own = OwnStack(StackOptions(fault_seed=None), Path(workdir))
        own.start()
        try:
            stack = Stack(own.url, get_json(f"{own.url}/_local/info"))
            results: dict[str, Any] = {}
            seen_events = 0
            for label, count in (("burst", burst), ("trickle", trickle)):
                time.sleep(1.5)  # workers write their meters every second
                before_raw = read_meters(own.meter_dir)
                before = summarize_meters(own.meter_dir, before_raw)
                leads = [f"97254{index:07d}" for index in range(seen_events * 10, seen_events * 10 + count)]
                if label == "burst":
                    for wa_id in leads:
                        _greet(stack, wa_id)
                    drain(stack, 600, progress)
                    events = _settle(stack, seen_events + 2 * count)
                else:
                    for wa_id in leads:
                        already = len(_events(stack))
                        _greet(stack, wa_id)
                        drain(stack, 120, progress)
                        events = _settle(stack, already + 2)
                fresh = events[seen_events:]
                seen_events = len(events)
                time.sleep(1.5)
                after_raw = read_meters(own.meter_dir)
                function = _events_function(summarize_meters(own.meter_dir, after_raw), before)
                results[label] = _per_message(label, count, fresh, function, _durations(before_raw, after_raw))
            records = stream_records(stack)
            total = burst + trickle
            results["stream_records_per_message"] = {kind: round(n / total, 3) for kind, n in records.items()}
            return results
        finally:
            own.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--trickle", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    results = run(args.burst, args.trickle, Progress(args.quiet))
    print_and_save(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
