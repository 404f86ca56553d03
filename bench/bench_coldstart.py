"""Cold start of every function: import plus first event, against `import boto3` + one client + one call.

Run: `.venv/bin/python bench/bench_coldstart.py [--runs 11]` (part of `make bench`).

Each sample is a fresh interpreter that, with the clock running, imports the function's handler module
the way Lambda does (its CodeUri first on sys.path, then the layer's sources) and hands it the function's
own event from events/ (the files README's `sam local invoke` lines use); the baseline imports boto3,
builds a DynamoDB client and makes one GetItem. Both go through `stubbed_network`: real botocore and
requests, canned answers instead of sockets (so neither pays a TLS handshake, which Lambda would add to
both). The environment is what template.yaml gives the function, with Lambda's own variables; bytecode
is compiled beforehand and never written during a sample (Lambda's disk is read-only; `make build`
ships .pyc). Interpreter start-up is excluded, as Lambda's runtime start is the same for every function.
All variants are interleaved, so load on this shared machine hits each alike; the ratio is what counts.

Each sample also reports the calls its first event made (AWS operations and Graph requests) and the
answer, so a path that stopped early (a refusal instead of a send) shows in the table.

`--instructions` counts instead of timing: each variant runs once under valgrind (`cachegrind
--cache-sim=no`, Debian's `valgrind` package) with PYTHONHASHSEED=0, and its instructions minus those of
the same interpreter running the prelude alone are the instructions of import + first event. The count is
the same from run to run and whatever the machine's load, so a change of a few percent shows where CPU
times on a shared machine cannot; it weighs every instruction alike (no cache misses, no I/O), so it is a
companion to the CPU ratio, not a replacement.

`--before DIR` measures another checkout's functions too (its code, layer and template.yaml, through this
bench's stub), each right after this checkout's, for a before/after in one interleaved run. `--stack` adds
the baseline plus, one after another, the libraries every function builds on before any code of ours
(Powertools' Logger and Metrics, pydantic, the HTTP resolver, the batch utility): the floor of the house style.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT, ensure_paths

ensure_paths()

from local.defaults import LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN
from local.meta_payloads import DEMO_PHONE_NUMBER_ID, DEMO_WABA_ID
from local.template import CreatedResources, function_environment, load_template

BENCH = Path(__file__).resolve().parent
TARGET = 1.5

# Function -> the event its cold start answers (events/ files: what a real first request looks like).
FUNCTIONS: dict[str, str] = {
    "WebhookFunction": "webhook_post_text_he.json",
    "ResponderFunction": "responder_sqs_fifo_batch.json",
    "SendFunction": "send_text.json",
    "ConversationsFunction": "conversations_list.json",
    "TemplatesFunction": "templates_list.json",
    "MediaFunction": "media_upload.json",
    "InboxFunction": "inbox_page.json",
    "EventsFunction": "events_table_stream_batch.json",
}
BASELINE = "import boto3 + client + GetItem"
BEFORE = " (before)"

# --stack: the baseline plus, cumulatively, what the functions build on before any code of ours runs (the
# house style: Powertools' Logger and Metrics, pydantic, Powertools' HTTP resolver, its batch utility).
STACK: dict[str, str] = {
    "+ Powertools Logger and Metrics": "from aws_lambda_powertools import Logger, Metrics\nLogger()\nMetrics()",
    "+ pydantic (BaseModel, Field)": "from pydantic import BaseModel, ConfigDict, Field, ValidationError",
    "+ APIGatewayHttpResolver": (
        "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver\nAPIGatewayHttpResolver()"
    ),
    "+ SqsFifoPartialProcessor": (
        "from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor\nSqsFifoPartialProcessor()"
    ),
}

PRELUDE = """
import json, sys, time
sys.path[:0] = {paths!r}
import stubbed_network
stubbed_network.configure(app_secret={app_secret!r}, verify_token={verify_token!r})
stubbed_network.install()
"""

HANDLER = (
    PRELUDE
    + """
class Context:
    function_name = {function!r}
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:" + {function!r}
    aws_request_id = "bench-request"
    def get_remaining_time_in_millis(self):
        return {timeout_ms}
event = json.loads(open({event!r}, encoding="utf-8").read())
started, cpu_started = time.perf_counter(), time.process_time()
import importlib
handler = getattr(importlib.import_module({module!r}), {handler!r})
answer = handler(event, Context())
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
status = answer.get("statusCode") if isinstance(answer, dict) else None
failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
sys.__stdout__.write("\\nBENCH " + json.dumps({{"seconds": elapsed, "cpu": cpu, "status": status, "failures": failures,
    "calls": dict(stubbed_network.calls), "modules": len(sys.modules)}}) + "\\n")
"""
)

BOTO3 = (
    PRELUDE
    + """
started, cpu_started = time.perf_counter(), time.process_time()
import boto3
client = boto3.client("dynamodb")
client.get_item(TableName="bench", Key={{"PK": {{"S": "LEAD#1"}}, "SK": {{"S": "LEAD"}}}})
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
sys.__stdout__.write("\\nBENCH " + json.dumps({{"seconds": elapsed, "cpu": cpu, "status": None, "failures": None,
    "calls": dict(stubbed_network.calls), "modules": len(sys.modules)}}) + "\\n")
"""
)


@dataclass
class Variant:
    name: str
    code: str
    env: dict[str, str]
    samples: list[float] = field(default_factory=list)  # wall ms
    cpu: list[float] = field(default_factory=list)  # CPU ms of the process (less hurt by other processes)
    last: dict[str, object] = field(default_factory=dict)


def lambda_environment(
    function: str | None, task_root: Path | None, template: dict[str, Any] | None = None
) -> dict[str, str]:
    """Lambda's own variables, then template.yaml's for the function (resources named by their logical ids)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        # Lambda's trace header for an unsampled request (the X-Ray SDK reads it; nothing is emitted).
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
    }
    if function is None or task_root is None:
        return env
    template = template or load_template()
    created = CreatedResources(refs={key: key for key in template.get("Resources", {})}, attributes={})
    parameters = {"WhatsAppPhoneNumberIds": DEMO_PHONE_NUMBER_ID, "WhatsAppBusinessAccountId": DEMO_WABA_ID}
    env.update(function_environment(template, function, created, parameters))
    env.update({"LAMBDA_TASK_ROOT": str(task_root), "AWS_LAMBDA_FUNCTION_NAME": function})
    # Every AWS address resolves to the stub; a real endpoint keeps botocore's own resolution path.
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def fresh_event(name: str, scratch: Path) -> Path:
    """The event file with its moments moved to now: a message from 2025 is past the 24-hour window."""
    event = json.loads((ROOT / "events" / name).read_text(encoding="utf-8"))
    now = int(time.time())
    for record in event.get("Records", []):
        if "body" not in record:
            continue  # a stream record: its moments do not gate anything
        body = json.loads(record["body"])
        if "timestamp" in body:
            body.update(timestamp=now, received_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
            body.get("message", {})["timestamp"] = str(now)
        record["body"] = json.dumps(body, ensure_ascii=False)
    path = scratch / name
    path.write_text(json.dumps(event, ensure_ascii=False), encoding="utf-8")
    return path


def variants(scratch: Path, before: Path | None = None) -> list[Variant]:
    """The baseline and every function of this checkout; with `before` (another checkout of the project), each
    function of that checkout too, right after this one's (its code, layer and template.yaml; this bench's stub)."""
    common = {"app_secret": LOCAL_APP_SECRET, "verify_token": LOCAL_VERIFY_TOKEN}
    found = [Variant(BASELINE, BOTO3.format(paths=[str(BENCH)], **common), lambda_environment(None, None))]
    trees = [(ROOT, "")] + ([(before.resolve(), BEFORE)] if before is not None else [])
    templates = {root: load_template(root / "template.yaml") for root, _ in trees}
    for function, event in FUNCTIONS.items():
        for root, suffix in trees:
            found.append(function_variant(function, fresh_event(event, scratch), root, templates[root], suffix))
    return found


def stack_variants() -> list[Variant]:
    """The baseline with the house-style libraries added one after another (cumulative), no code of ours."""
    common = {"app_secret": LOCAL_APP_SECRET, "verify_token": LOCAL_VERIFY_TOKEN}
    code, found = BOTO3.format(paths=[str(BENCH)], **common), []
    for name, lines in STACK.items():
        code = code.replace("elapsed, cpu =", lines + "\nelapsed, cpu =", 1)
        found.append(Variant(name, code, lambda_environment(None, None) | {"PYDANTIC_DISABLE_PLUGINS": "true"}))
    return found


def function_variant(function: str, event: Path, root: Path, template: dict[str, Any], suffix: str) -> Variant:
    common = {"app_secret": LOCAL_APP_SECRET, "verify_token": LOCAL_VERIFY_TOKEN}
    properties = template["Resources"][function]["Properties"]
    module, _, handler = str(properties["Handler"]).rpartition(".")
    task_root = root / str(properties["CodeUri"])
    code = HANDLER.format(
        paths=[str(BENCH), str(task_root), str(root / "layers" / "whatsapp")],
        function=function,
        event=str(event),
        module=module,
        handler=handler,
        timeout_ms=int(properties.get("Timeout", template["Globals"]["Function"]["Timeout"])) * 1000,
        **common,
    )
    return Variant(function + suffix, code, lambda_environment(function, task_root, template))


def sample(variant: Variant, write_bytecode: bool = False) -> None:
    env = dict(variant.env)
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE")
    result = subprocess.run(
        [sys.executable, "-c", variant.code], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH ")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{variant.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    report = json.loads(lines[-1].removeprefix("BENCH "))
    variant.last = report
    if not write_bytecode:
        variant.samples.append(float(report["seconds"]) * 1000)
        variant.cpu.append(float(report["cpu"]) * 1000)


def instructions(variant: Variant) -> int:
    """Instructions of import + first event: the variant under cachegrind minus its prelude alone."""
    env = variant.env | {"PYTHONHASHSEED": "0"}
    prelude_only = variant.code.split("started, cpu_started")[0] + "sys.__stdout__.write('\\nBENCH {}\\n')\n"
    counts = []
    for code in (variant.code, prelude_only):
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
        result = subprocess.run(
            [*command, sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=False
        )
        found = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
        if result.returncode != 0 or found is None or "BENCH " not in result.stdout:
            raise SystemExit(f"{variant.name} failed under valgrind:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        counts.append(int(found[1].replace(",", "")))
    return counts[0] - counts[1]


def table_row(variant: Variant, figures: list[str]) -> str:
    """One line of a results table: the variant, its figures, its modules, its first event's calls, its answer."""
    calls = ", ".join(f"{name} {count}" for name, count in sorted(dict(variant.last["calls"]).items()))  # type: ignore[call-overload]
    answer = variant.last["status"] if variant.last["status"] is not None else variant.last["failures"]
    function = variant.name.removesuffix(BEFORE)
    event = f" ({FUNCTIONS[function]})" if function in FUNCTIONS else ""
    answer_text = "" if answer is None else str(answer)
    cells = [f"{variant.name}{event}", *figures, str(variant.last["modules"]), calls, answer_text]
    return "| " + " | ".join(cells) + " |"


def verdict(worst: float) -> str:
    return f"\nWorst ratio {worst:.2f}x (target <= {TARGET}x): {'met' if worst <= TARGET else 'not met'}."


def count_instructions(measured: list[Variant]) -> int:
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    counts = {variant.name: instructions(variant) for variant in measured}
    baseline = counts[BASELINE]
    print("Cold start, import + first event, in instructions (valgrind cachegrind, PYTHONHASHSEED=0; the same")
    print(f"count on every run and at any load); CPython {platform.python_version()} on {platform.machine()}.\n")
    print("| function (event) | instructions (millions) | ratio | modules | first event's calls | answer |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for variant in measured:
        ratio = counts[variant.name] / baseline
        if variant.name in FUNCTIONS:  # not the baseline, --stack or --before
            worst = max(worst, ratio)
        print(table_row(variant, [f"{counts[variant.name] / 1e6:,.0f}", f"{ratio:.2f}x"]))
    print(verdict(worst))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--only", action="append", help="measure only these functions (repeatable)")
    parser.add_argument("--instructions", action="store_true", help="count instructions under valgrind instead")
    parser.add_argument("--stack", action="store_true", help="also the baseline plus the house-style libraries alone")
    parser.add_argument(
        "--before", type=Path, help="another checkout of the project: its functions measured too, interleaved"
    )
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        measured = [
            v
            for v in variants(Path(scratch), args.before)
            if v.name == BASELINE or not args.only or v.name.removesuffix(BEFORE) in args.only
        ]
        if args.stack:
            measured[1:1] = stack_variants()
        for variant in measured:
            sample(variant, write_bytecode=True)  # compiles whatever has no .pyc yet
        if args.instructions:
            return count_instructions(measured)
        for _ in range(args.runs):
            for variant in measured:
                sample(variant)
    baseline = statistics.median(measured[0].samples)
    baseline_cpu = statistics.median(measured[0].cpu)
    load = os.getloadavg()
    print(f"Cold start, import + first event, median of {args.runs} fresh interpreters each (interleaved);")
    print(
        f"CPython {platform.python_version()} on {platform.machine()}, load average {load_at_start:.1f} at the start, "
        f"{load[0]:.1f} at the end."
    )
    if args.before is not None:
        print(f"Each function `(before)` is the same function in {args.before}, sampled right after this checkout's.")
    print("CPU is the process's own CPU time (what other processes on a shared machine disturb least); the")
    print("verdict uses the worse of the two ratios.\n")
    print(
        "| function (event) | wall median ms | wall min ms | wall ratio | CPU median ms | CPU ratio | modules "
        "| first event's calls | answer |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for variant in measured:
        median = statistics.median(variant.samples)
        ratio = median / baseline
        cpu = statistics.median(variant.cpu)
        cpu_ratio = cpu / baseline_cpu
        if variant.name in FUNCTIONS:  # not the baseline, --stack or --before
            worst = max(worst, ratio, cpu_ratio)
        figures = [f"{median:.0f}", f"{min(variant.samples):.0f}", f"{ratio:.2f}x", f"{cpu:.0f}", f"{cpu_ratio:.2f}x"]
        print(table_row(variant, figures))
    print(verdict(worst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
