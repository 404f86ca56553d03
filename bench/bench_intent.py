"""Intent engine benchmarks. Run: `.venv/bin/python bench/bench_intent.py`.

1. Throughput on one core (CPU time), over the hand-labelled messages: with a cold word cache (a freshly
   compiled engine sees every message for the first time) and warm (the same messages again, as a
   long-lived Lambda sees recurring words). Target: tens of thousands of messages per second. Plus one
   message at WhatsApp's 4096-character limit, and reply planning per intent.
2. Cold-load cost in fresh interpreters, median: importing the intent package, then the first
   `detect_intent` (reads and compiles data/intents.json), then the first reply (validates the texts);
   and the same three steps after the imports the responder makes anyway (Powertools, pydantic).
3. Accuracy on tests/unit/intent/labelled_messages.jsonl: overall, per split (dev was tuned on, holdout
   was not), per intent, per language, the named tricky negatives, and the confusion matrix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from zoneinfo import ZoneInfo

from _common import LAYER, ROOT, ensure_paths, fresh_process_seconds, median_ms

ensure_paths()

from whatsapp_crm.intent import Intent, IntentEngine, Language, detect_intent, plan_reply
from whatsapp_crm.intent.engine import read_intent_data
from whatsapp_crm.schedule import BusinessHours

LABELLED = ROOT / "tests" / "unit" / "intent" / "labelled_messages.jsonl"
COLD_RUNS = 15


@dataclass(frozen=True)
class Labelled:
    text: str
    intent: Intent
    language: Language
    tags: tuple[str, ...]
    split: str


def load_labelled() -> list[Labelled]:
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        Labelled(row["text"], Intent(row["intent"]), Language(row["language"]), tuple(row["tags"]), row["split"])
        for row in rows
    ]


def cpu_seconds(action: Callable[[], object]) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def throughput(texts: list[str]) -> tuple[float, float]:
    """Messages per CPU-second with a cold word cache and with a warm one (best of several passes)."""
    data = read_intent_data()
    cold = []
    for _ in range(20):
        fresh = IntentEngine.from_data(data)  # compiled outside the timing: only detection is measured
        cold.append(cpu_seconds(partial(_detect_all, fresh, texts)))
    engine = IntentEngine.from_data(data)
    for text in texts:
        engine.detect(text)
    warm = [cpu_seconds(lambda: [engine.detect(text) for _ in range(20) for text in texts]) / 20 for _ in range(5)]
    return len(texts) / min(cold), len(texts) / min(warm)


def _detect_all(engine: IntentEngine, texts: list[str]) -> None:
    for text in texts:
        engine.detect(text)


def _plan_many(intent: Intent, now: datetime, hours: BusinessHours, times: int) -> None:
    for _ in range(times):
        plan_reply(intent, Language.HE, now, hours)


def longest_message_ms(texts: list[str]) -> float:
    """CPU per message at WhatsApp's 4096-character limit, built from the labelled messages themselves."""
    long_text = " ".join(texts * 2)[:4096]
    detect_intent(long_text)
    return min(cpu_seconds(lambda: [detect_intent(long_text) for _ in range(100)]) for _ in range(3)) / 100 * 1000


def replies_per_second() -> dict[str, float]:
    hours = BusinessHours.parse()
    now = datetime(2026, 11, 25, 9, tzinfo=ZoneInfo("Asia/Jerusalem"))
    rates = {}
    for intent in (Intent.GREETING, Intent.AVAILABILITY, Intent.MEETING):
        plan_reply(intent, Language.HE, now, hours)
        best = min(cpu_seconds(partial(_plan_many, intent, now, hours, 2000)) for _ in range(3))
        rates[intent.value] = 2000 / best
    return rates


def cold_load() -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(LAYER)}
    first_reply = (
        "r = i.detect_intent('אפשר לקבוע פגישה?')\n"
        "i.plan_reply(r.intent, r.language, datetime(2026, 11, 25, 9, tzinfo=UTC), BusinessHours.parse())"
    )
    imports = (
        "import whatsapp_crm.intent as i\nfrom datetime import datetime, UTC\n"
        "from whatsapp_crm.schedule import BusinessHours"
    )
    steps = {
        "import whatsapp_crm.intent": "import whatsapp_crm.intent",
        "+ first detect_intent (read + compile cues)": "import whatsapp_crm.intent as i\ni.detect_intent('שלום')",
        "+ first plan_reply (validate texts, slots)": f"{imports}\n{first_reply}",
    }
    results = {label: median_ms(fresh_process_seconds(code, COLD_RUNS, env)) for label, code in steps.items()}
    # What the responder actually pays: its other imports (Powertools, pydantic) are loaded anyway.
    preload = "import aws_lambda_powertools, pydantic, json\nfrom aws_lambda_powertools.utilities import batch\n"
    timed = (
        preload + "t1 = time.perf_counter()\n" + imports + "\n" + first_reply + "\n"
        "sys.stdout.write(repr(time.perf_counter() - t1) + '\\n')"
    )
    marginal = [float(sample) for sample in _last_lines(timed, env)]
    results["all three, after the responder's other imports"] = median_ms(marginal)
    return results


def _last_lines(code: str, env: dict[str, str]) -> list[str]:
    outputs = []
    for _ in range(COLD_RUNS):
        completed = subprocess.run(
            [sys.executable, "-c", "import time, sys\n" + code], check=True, capture_output=True, text=True, env=env
        )
        outputs.append(completed.stdout.strip().splitlines()[-1])
    return outputs


def accuracy(messages: list[Labelled]) -> None:
    predicted = {message.text: detect_intent(message.text) for message in messages}

    def score(subset: list[Labelled]) -> str:
        right = sum(predicted[m.text].intent == m.intent for m in subset)
        return f"{right}/{len(subset)} = {right / len(subset):.3f}" if subset else "n/a"

    print(f"\nAccuracy (intent) on {len(messages)} labelled messages: {score(messages)}")
    for split in ("dev", "holdout"):
        print(f"  split {split:<8} {score([m for m in messages if m.split == split])}")
    print(f"  tricky negatives that must pass: {score([m for m in messages if 'must' in m.tags])}")
    print(f"  precedence messages: {score([m for m in messages if any(t.startswith('precedence:') for t in m.tags)])}")
    languages_right = sum(predicted[m.text].language == m.language for m in messages)
    print(f"  language detection: {languages_right}/{len(messages)}")
    print("\nPer intent (recall by label; precision by prediction):")
    for intent in Intent:
        labelled = [m for m in messages if m.intent == intent]
        claimed = [m for m in messages if predicted[m.text].intent == intent]
        precise = sum(m.intent == intent for m in claimed)
        print(f"  {intent.value:<13} recall {score(labelled):<20} precision {precise}/{len(claimed)}")
    print("\nPer language:")
    for language in Language:
        print(f"  {language.value}  {score([m for m in messages if m.language == language])}")
    print("\nConfusion matrix (rows: label, columns: predicted):")
    counts = Counter((m.intent, predicted[m.text].intent) for m in messages)
    names = [intent.value for intent in Intent]
    print("  " + " " * 13 + "".join(f"{name[:8]:>9}" for name in names))
    for row in Intent:
        print(f"  {row.value:<13}" + "".join(f"{counts[(row, column)]:>9}" for column in Intent))
    misses = [m for m in messages if predicted[m.text].intent != m.intent]
    print("\nMisread:")
    for m in misses:
        got = predicted[m.text]
        print(f"  [{m.split}] {m.intent.value} -> {got.intent.value}: {m.text!r} (cue {got.cue!r})")


def main() -> None:
    messages = load_labelled()
    texts = [message.text for message in messages]
    print(f"Intent engine benchmark ({len(texts)} messages, mean {sum(map(len, texts)) / len(texts):.0f} characters)")
    cold, warm = throughput(texts)
    print(f"\nThroughput, one core: {cold:,.0f} msgs/s with a cold word cache, {warm:,.0f} msgs/s warm")
    print(f"A 4096-character message (all labelled texts joined): {longest_message_ms(texts):.2f} ms")
    print("Replies planned per second (Hebrew): " + ", ".join(f"{k} {v:,.0f}" for k, v in replies_per_second().items()))
    print(f"\nCold load in fresh interpreters (median of {COLD_RUNS}, interpreter start-up excluded):")
    for label, milliseconds in cold_load().items():
        print(f"  {label:<45} {milliseconds:6.1f} ms")
    accuracy(messages)


if __name__ == "__main__":
    main()
