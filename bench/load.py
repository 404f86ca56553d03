"""`make load`: signed webhooks at a fixed rate against the local stack (issue 11 point 3).

    .venv/bin/python bench/load.py                          # 50 webhooks/s for 20 s (1,000), its own stack
    .venv/bin/python bench/load.py --rate 100 --duration 10
    .venv/bin/python bench/load.py --find-max               # steps of 10 s at rising rates, drained between
    .venv/bin/python bench/load.py --url http://127.0.0.1:3000   # a stack you started (`make run`)

Each webhook is one Hebrew message from a lead who has not written before, so each one is owed an
auto-reply. The webhooks are signed before the clock starts and sent on a fixed schedule by enough threads
that a slow answer never delays the next send (an open loop); ack latency runs from the moment a webhook
was due, so a stack that falls behind shows it as latency rather than hiding it. The first `--warmup`
seconds are sent but not counted (instances starting). Then the stack is drained (the responder answers
everything queued; the simulator's sent/delivered/read status webhooks come back to the webhook) and the
replies the Graph simulator received are counted. CPU seconds of each process of the stack over the run say
which part saturates. Bounded: `--duration` and `--count` bound the sends, `--drain-timeout` the wait.

Target (issue 11): p99 <= 250 ms at 50 webhooks/s without faults. Exit code 1 when a run misses it (or, with
--find-max, never). docs/performance.md holds the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import ensure_paths

ensure_paths()

from replay import OwnStack, Progress, Stack, StackOptions, _is_send, _process_tree, drain, get_json

from local import meta_payloads as meta
from local.defaults import app_secret
from local.faults import read_meters

P99_TARGET_MS = 250.0
TARGET_RATE = 50.0
# What "the stack sustains a rate" means for --find-max: every webhook answered 200, sends kept on schedule,
# and Meta's own bar for a webhook endpoint ("less than 1% latency exceeds 1s").
SUSTAINED_P99_MS = 1000.0
FIND_MAX_RATES = (2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0)
TEXTS = (
    "שלום, ראיתי את המודעה",
    "היי, הדירה עדיין פנויה?",
    "Hi, is the apartment still available?",
    "אפשר לקבוע פגישה מחר בבוקר?",
    "בוקר טוב, אשמח לפרטים",
)


@dataclass
class Result:
    due: float
    started: float = 0.0  # when a sending thread took it (later than due when every thread was busy)
    status: int = 0
    latency_ms: float = 0.0  # from the moment it was due to the last byte of the answer
    error: str | None = None


@dataclass
class RunStats:
    rate: float
    sent: int
    counted: int
    seconds: float
    latencies_ms: list[float]
    send_lag_ms: list[float]
    statuses: Counter[int]
    errors: Counter[str]
    replies: int = 0
    drain_seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # role -> CPU seconds during the run and the drain
    wall_seconds: float = 0.0
    load_before: str = ""
    work: dict[str, FunctionWork] = field(default_factory=dict)

    def percentile(self, share: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    @property
    def achieved_rate(self) -> float:
        """Webhooks answered per second, from the first one due to the last answer."""
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values()) + sum(count for status, count in self.statuses.items() if status != 200)

    def sustained(self) -> bool:
        return (
            self.error_count == 0
            and self.achieved_rate >= 0.95 * self.rate
            and self.percentile(0.99) <= SUSTAINED_P99_MS
        )


def webhooks(count: int, run: str, secret: str) -> list[tuple[bytes, dict[str, str]]]:
    """Signed bodies, one message each from a lead of its own (a campaign's replies)."""
    now = int(time.time())
    prepared = []
    for index in range(count):
        lead = f"97253{run}{index:06d}"[:12]
        message = meta.text_message(lead, TEXTS[index % len(TEXTS)], timestamp=now)
        body = meta.wire_bytes(meta.envelope(meta.message_value([message], name="ליד")))
        prepared.append((body, meta.signed_headers(body, secret)))
    return prepared


def fire(url: str, rate: float, bodies: list[tuple[bytes, dict[str, str]]], threads: int) -> tuple[list[Result], float]:
    """Send bodies[i] at start + i / rate from a pool of threads, each with its own keep-alive connection."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    work: queue.Queue[int | None] = queue.Queue()
    results = [Result(due=0.0) for _ in bodies]
    start = time.perf_counter() + 0.2

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        while (index := work.get()) is not None:
            body, headers = bodies[index]
            result = results[index]
            result.started = time.perf_counter()
            try:
                connection.request("POST", "/webhook", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                result.status = response.status
            except (OSError, http.client.HTTPException) as error:
                result.error = type(error).__name__
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=60)
            result.latency_ms = (time.perf_counter() - result.due) * 1000
        connection.close()

    pool = [threading.Thread(target=worker, name=f"load-{n}", daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    for index in range(len(bodies)):
        due = start + index / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        results[index].due = due
        work.put(index)
    for _ in pool:
        work.put(None)
    for thread in pool:
        thread.join()
    return results, time.perf_counter() - start


# --- which part works how hard ----------------------------------------------------------------------------


def _role(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    words = [part.decode(errors="replace") for part in command if part]
    if "local.moto_fidelity" in words:
        return "moto (DynamoDB, SQS, Secrets Manager)"
    if "local.runtime" in words:
        return f"{words[words.index('local.runtime') + 1]} workers"
    if "local" in words:
        return "stack: HTTP API, SQS pollers, Graph simulator"
    return "other"


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds per role of the stack's process tree (and of this load generator) between start and stop;
    processes that start or end in between count from when they were first seen."""

    def __init__(self, stack_pid: int | None) -> None:
        self.stack_pid = stack_pid
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu", daemon=True)

    def _sample(self) -> None:
        pids = _process_tree(self.stack_pid) if self.stack_pid else []
        for pid in [os.getpid(), *pids]:
            seconds = _cpu_seconds(pid)
            if pid not in self._first:
                self._first[pid] = seconds
                self._roles[pid] = "load generator (this process)" if pid == os.getpid() else _role(pid)
            self._last[pid] = max(self._last.get(pid, 0.0), seconds)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    def by_role(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for pid, first in self._first.items():
            role = self._roles[pid]
            totals[role] = totals.get(role, 0.0) + self._last[pid] - first
        return dict(sorted(totals.items(), key=lambda item: -item[1]))


# --- what each function did (the stack's meters, LOCAL_METER_DIR) ----------------------------------------


@dataclass
class FunctionWork:
    invocations: int = 0
    aws_calls: Counter[str] = field(default_factory=Counter)
    durations_ms: list[float] = field(default_factory=list)


def _meters(directory: Path | None) -> dict[int, dict[str, Any]]:
    if directory is None or not directory.exists():
        return {}
    return {int(meter["pid"]): meter for meter in read_meters(directory)}


def work_between(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]) -> dict[str, FunctionWork]:
    """Per function: invocations, AWS calls by operation and handler durations between two meter readings."""
    work: dict[str, FunctionWork] = {}
    for pid, meter in after.items():
        earlier = before.get(pid, {"invocations": 0, "calls": {}, "durations_ms": []})
        entry = work.setdefault(meter["function"], FunctionWork())
        entry.invocations += meter["invocations"] - earlier["invocations"]
        for name, count in meter["calls"].items():
            entry.aws_calls[name] += count - earlier["calls"].get(name, 0)
        entry.durations_ms += meter["durations_ms"][len(earlier["durations_ms"]) :]
    return work


# --- one run ----------------------------------------------------------------------------------------------


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _replies(stack: Stack) -> int:
    return sum(1 for record in stack.graph_requests() if _is_send(record) and record.get("status") == 200)


def prime(stack: Stack, instances: int, drain_timeout: float) -> None:
    """Start every instance the run will use before the clock does: `instances` webhooks at once for the
    webhook's pool, drained so that the responder's instances start too (cold starts are not what this
    measures; docs/performance.md has them)."""
    bodies = webhooks(instances * 2, "p", app_secret())
    fire(stack.url, 1000.0, bodies, len(bodies))
    drain(stack, drain_timeout, Progress(quiet=True))


def run_once(
    stack: Stack, stack_pid: int | None, meter_dir: Path | None, args: argparse.Namespace, rate: float, label: str
) -> RunStats:
    count = min(args.count, int(rate * (args.duration + args.warmup)))
    warmup = min(count, int(rate * args.warmup))
    bodies = webhooks(count, label, app_secret())
    replies_before = _replies(stack)
    load_before = _load_average()
    meters_before = _meters(meter_dir)
    started = time.perf_counter()
    with CpuMeter(stack_pid) as meter:
        results, seconds = fire(stack.url, rate, bodies, args.threads)
        drained = drain(stack, args.drain_timeout, Progress(quiet=True))
    wall = time.perf_counter() - started
    counted = results[warmup:]
    stats = RunStats(
        rate=rate,
        sent=len(results),
        counted=len(counted),
        seconds=seconds,
        latencies_ms=[result.latency_ms for result in counted],
        send_lag_ms=[(result.started - result.due) * 1000 for result in counted],
        statuses=Counter(result.status for result in results if result.error is None),
        errors=Counter(result.error for result in results if result.error is not None),
        replies=_replies(stack) - replies_before,
        drain_seconds=drained,
        cpu=meter.by_role(),
        wall_seconds=wall,
        load_before=load_before,
    )
    time.sleep(1.5)  # the workers write their meters every second
    stats.work = work_between(meters_before, _meters(meter_dir))
    return stats


def report(stats: RunStats) -> str:
    lines = [
        f"rate {stats.rate:.0f} webhooks/s: {stats.sent:,} sent, all answered {stats.seconds:.1f} s after the "
        f"first was due ({stats.achieved_rate:.1f}/s answered), {stats.counted:,} counted after the warm-up; "
        f"load average before: {stats.load_before}",
        f"  ack latency from due: p50 {stats.percentile(0.50):.0f} ms, p95 {stats.percentile(0.95):.0f} ms, "
        f"p99 {stats.percentile(0.99):.0f} ms, max {max(stats.latencies_ms, default=float('nan')):.0f} ms "
        f"(of which waiting for a free sending thread: max {max(stats.send_lag_ms, default=0.0):.0f} ms)",
        f"  answers: {dict(sorted(stats.statuses.items()))}"
        + (f", connection errors {dict(stats.errors)}" if stats.errors else "")
        + f"; errors {stats.error_count}",
        f"  replies sent (Graph simulator): {stats.replies:,} of {stats.sent:,}; drained "
        f"{stats.drain_seconds:.0f} s after the last send; {stats.replies / stats.wall_seconds:.1f} replies/s "
        f"over the {stats.wall_seconds:.0f} s of sending and draining",
        f"  CPU over sending and draining (100% = one core; the machine has {os.cpu_count()}):",
    ]
    for role, seconds in stats.cpu.items():
        if seconds >= 0.05:
            lines.append(f"    {role:<48} {seconds:7.1f} s  {100 * seconds / stats.wall_seconds:5.0f}%")
    stack_cpu = {role: seconds for role, seconds in stats.cpu.items() if not role.startswith("load generator")}
    if stack_cpu and sum(stack_cpu.values()) > 0:
        busiest, seconds = max(stack_cpu.items(), key=lambda item: item[1])
        lines.append(
            f"  busiest: {busiest}, {100 * seconds / sum(stack_cpu.values()):.0f}% of the stack's CPU time "
            f"({1000 * seconds / stats.sent:.0f} ms per inbound webhook)"
        )
    if stats.work:
        lines.append("  per inbound webhook sent (the stack's meters): invocations, AWS calls; handler time p50/p95")
    for function, work in sorted(stats.work.items(), key=lambda item: -sum(item[1].aws_calls.values())):
        if not work.invocations:
            continue
        durations = sorted(work.durations_ms)
        calls = sum(work.aws_calls.values()) / stats.sent
        top = ", ".join(f"{name} {count / stats.sent:.1f}" for name, count in work.aws_calls.most_common(4))
        lines.append(
            f"    {function:<22} {work.invocations / stats.sent:4.1f} invocations, {calls:5.1f} AWS calls ({top}); "
            f"{durations[len(durations) // 2]:.0f}/{durations[int(len(durations) * 0.95)]:.0f} ms"
        )
    return "\n".join(lines)


@contextmanager
def _stack(args: argparse.Namespace) -> Iterator[tuple[Stack, int | None, Path | None]]:
    if args.url:
        info = get_json(f"{args.url}/_local/info")
        meter_dir = (info.get("faults") or {}).get("meter_dir")
        yield Stack(args.url, info), int(info["pid"]) if "pid" in info else None, Path(meter_dir) if meter_dir else None
        return
    with tempfile.TemporaryDirectory(prefix="load-") as workdir:
        own = OwnStack(StackOptions(fault_seed=None, max_instances=args.max_instances), Path(workdir))
        own.start()
        try:
            assert own.process is not None
            yield Stack(own.url, get_json(f"{own.url}/_local/info")), own.process.pid, own.meter_dir
        except BaseException:
            sys.stderr.write("local stack log (tail):\n" + own.log_tail() + "\n")
            raise
        finally:
            own.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="webhooks per second (50)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of counted sending (20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds sent first and not counted (3)")
    parser.add_argument("--count", type=int, default=20_000, help="at most this many webhooks per run")
    parser.add_argument("--threads", type=int, default=64, help="sending threads (open loop)")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the replies")
    parser.add_argument("--max-instances", type=int, default=4, help="instances per function (own stack)")
    parser.add_argument("--find-max", action="store_true", help=f"step through {FIND_MAX_RATES} webhooks/s")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--url", help="a running local stack instead of starting one")
    args = parser.parse_args(argv)
    documents: list[dict[str, Any]] = []
    ok = True
    with _stack(args) as (stack, stack_pid, meter_dir):
        prime(stack, args.max_instances, args.drain_timeout)
        rates = FIND_MAX_RATES if args.find_max else (args.rate,)
        highest = None
        for step, rate in enumerate(rates):
            stats = run_once(stack, stack_pid, meter_dir, args, rate, f"{step}")
            print(report(stats), flush=True)
            documents.append(
                {
                    "rate": rate,
                    "sent": stats.sent,
                    "achieved_rate": stats.achieved_rate,
                    "p50_ms": stats.percentile(0.5),
                    "p95_ms": stats.percentile(0.95),
                    "p99_ms": stats.percentile(0.99),
                    "errors": stats.error_count,
                    "replies": stats.replies,
                    "drain_seconds": stats.drain_seconds,
                    "wall_seconds": stats.wall_seconds,
                    "cpu_seconds": stats.cpu,
                    "load_before": stats.load_before,
                }
            )
            if not args.find_max:
                ok = stats.error_count == 0 and (rate > TARGET_RATE or stats.percentile(0.99) <= P99_TARGET_MS)
                break
            if not stats.sustained():
                break
            highest = rate
        if args.find_max:
            ok = highest is not None
            print(
                f"\nhighest rate sustained (all 200, on schedule, p99 <= {SUSTAINED_P99_MS:.0f} ms): "
                f"{highest if highest is not None else 'none'} webhooks/s"
            )
    if args.json:
        args.json.write_text(json.dumps(documents, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
