"""Intent engine: accuracy on any corpus folder, and the engine's budgets. Markdown on stdout.

    .venv/bin/python bench/bench_intent.py --eval FOLDER [FOLDER ...]   accuracy only
    .venv/bin/python bench/bench_intent.py                              budgets, then accuracy on the team's file

Accuracy (`--eval`): every `*.jsonl` file in the folders, one message per line in the corpus format
(`text`, `intent`, `author`, `lang_group`, `hard_negative`), scored for this engine and for the previous
one (main at commit 75749ac, frozen in bench/previous_intent/) on the same lines: accuracy overall, per
author, per language group, per intent (precision and recall), the confusion matrix, opt-out recall and
false opt-outs, hard negatives.

How an "ask" counts (this engine only: when it cannot tell whether a message is an opt-out, the responder
asks the lead "shall we remove you?" with two buttons, and the lead's tap decides):
- accuracy: an ask is right on a real opt-out (the lead is asked, and removed on one tap) and wrong on
  anything else (a needless question), whatever the best reading behind it;
- opt-out recall counts decided opt-outs only; "honoured" adds the asked ones (the legal duty is met only
  if the lead answers, so both are shown); a false opt-out is a message removed at once that is not one
  (an ask is never a false opt-out: nobody is removed without tapping "remove me").

Budgets (no `--eval`): detections per CPU-second on one core (cold word cache and warm), a 4096-character
message, the responder's cold import and first detection with and without the model, and the size the
engine adds to the layer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from _common import LAYER, ROOT, ensure_paths, median_ms

ensure_paths()
sys.path.insert(0, str(ROOT / "bench"))

from previous_intent import engine as previous_engine

from whatsapp_crm.intent import Intent, detect_intent
from whatsapp_crm.intent.engine import IntentDetector, read_intent_data, read_model_data

TEAM_FILE = ROOT / "tests" / "unit" / "intent" / "labelled_messages.jsonl"
INTENT_DATA = LAYER / "whatsapp_crm" / "intent"
COLD_RUNS = 15
ASK = "ask"
LABELS = [intent.value for intent in Intent]


@dataclass(frozen=True)
class Line:
    text: str
    intent: str
    author: str
    lang_group: str
    hard_negative: bool


@dataclass(frozen=True)
class Decision:
    """What an engine did with a line: an intent, or "ask" (this engine's opt-out question)."""

    intent: str
    asked: bool = False

    @property
    def action(self) -> str:
        return ASK if self.asked else self.intent

    def right(self, label: str) -> bool:
        return label == Intent.OPT_OUT.value if self.asked else self.intent == label


def load_folders(folders: Iterable[Path]) -> list[Line]:
    lines = []
    for folder in folders:
        paths = sorted(folder.glob("*.jsonl")) if folder.is_dir() else [folder]
        for path in paths:
            for raw in path.read_text(encoding="utf-8").splitlines():
                if raw.strip():
                    row = json.loads(raw)
                    lines.append(
                        Line(
                            row["text"],
                            row["intent"],
                            row.get("author", path.stem),
                            row.get("lang_group", row.get("language", "?")),
                            bool(row.get("hard_negative", False)),
                        )
                    )
    return lines


def current(text: str) -> Decision:
    result = detect_intent(text)
    return Decision(result.intent.value, result.confirm_opt_out)


def previous(text: str) -> Decision:
    return Decision(previous_engine.detect_intent(text).intent.value)


# ------------------------------------------------------------------------------------------------ report


def _share(right: int, total: int) -> str:
    return f"{right}/{total} = {right / total:.3f}" if total else "–"


def _accuracy(pairs: Sequence[tuple[Line, Decision]]) -> str:
    return _share(sum(decision.right(line.intent) for line, decision in pairs), len(pairs))


def _groups(lines: Sequence[Line], key: Callable[[Line], str]) -> list[str]:
    return sorted({key(line) for line in lines})


def accuracy_report(lines: Sequence[Line], engines: dict[str, Callable[[str], Decision]]) -> str:
    decided = {name: [(line, engine(line.text)) for line in lines] for name, engine in engines.items()}
    names = list(engines)
    authors = len(_groups(lines, lambda line: line.author))
    out = [f"{len(lines)} lines, {authors} author{'' if authors == 1 else 's'}", ""]
    out += ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def row(title: str, cell: Callable[[list[tuple[Line, Decision]]], str]) -> None:
        out.append(f"| {title} | " + " | ".join(cell(decided[name]) for name in names) + " |")

    row("**accuracy**", _accuracy)
    for author in _groups(lines, lambda line: line.author):
        row(f"author {author}", partial(_accuracy_where, "author", author))
    for group in _groups(lines, lambda line: line.lang_group):
        row(f"language {group}", partial(_accuracy_where, "lang_group", group))
    row("hard negatives", lambda pairs: _accuracy([p for p in pairs if p[0].hard_negative]))
    opt_out = Intent.OPT_OUT.value
    row("opt-out recall (removed at once)", lambda pairs: _opt_out_recall(pairs, asked_too=False))
    row("opt-out honoured (removed or asked)", lambda pairs: _opt_out_recall(pairs, asked_too=True))
    row(
        "false opt-outs (removed, not an opt-out)",
        lambda pairs: str(sum(d.action == opt_out and line.intent != opt_out for line, d in pairs)),
    )
    row("asks on real opt-outs", lambda pairs: str(sum(d.asked and line.intent == opt_out for line, d in pairs)))
    row("asks on other messages", lambda pairs: str(sum(d.asked and line.intent != opt_out for line, d in pairs)))
    for name in names:
        out += ["", f"**{name}: per intent** (recall by label, precision by decision; an ask is not a decision)", ""]
        out += ["| intent | recall | precision |", "|---|---|---|"]
        for label in LABELS:
            labelled = [d for line, d in decided[name] if line.intent == label]
            claimed = [line for line, d in decided[name] if d.action == label]
            out.append(
                f"| {label} | {_share(sum(d.right(label) for d in labelled), len(labelled))} "
                f"| {_share(sum(line.intent == label for line in claimed), len(claimed))} |"
            )
        out += ["", f"**{name}: confusion matrix** (rows: label; columns: decision)", ""]
        columns = LABELS + ([ASK] if any(d.asked for _, d in decided[name]) else [])
        out += ["| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        counts = Counter((line.intent, d.action) for line, d in decided[name])
        for label in LABELS:
            out.append(f"| {label} | " + " | ".join(str(counts[(label, column)]) for column in columns) + " |")
    return "\n".join(out)


def _accuracy_where(field: str, value: str, pairs: Sequence[tuple[Line, Decision]]) -> str:
    return _accuracy([pair for pair in pairs if getattr(pair[0], field) == value])


def _opt_out_recall(pairs: Sequence[tuple[Line, Decision]], *, asked_too: bool) -> str:
    opt_out = Intent.OPT_OUT.value
    real = [d for line, d in pairs if line.intent == opt_out]
    return _share(sum(d.action == opt_out or (asked_too and d.asked) for d in real), len(real))


def reply_language_report(lines: Sequence[Line]) -> str:
    """Which language this engine would answer each line in, by the writer's language group.

    "he" lines should be answered in Hebrew and "en" lines (English, or another language in its own
    script or in Latin letters) in English. A "mixed" line can be either (Hebrew typed in Latin letters
    wants Hebrew, English with a Hebrew word English), so its split is shown, not scored.
    """
    out = ["| language group | lines | answered in Hebrew | answered in English |", "|---|---|---|---|"]
    for group in _groups(lines, lambda line: line.lang_group):
        answered = Counter(detect_intent(line.text).language.value for line in lines if line.lang_group == group)
        total = sum(answered.values())
        out.append(f"| {group} | {total} | {answered['he']} | {answered['en']} |")
    return "\n".join(out)


def misread(lines: Sequence[Line]) -> str:
    out = []
    for line in lines:
        decision = current(line.text)
        if not decision.right(line.intent):
            out.append(f"- [{line.author}] {line.intent} -> {decision.action}: {line.text!r}")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------- budgets


def cpu_seconds(action: Callable[[], object]) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def previous_throughput(texts: list[str]) -> float:
    """The previous engine, warm, on the same texts in the same run: the comparison for the budget."""
    for text in texts:
        previous_engine.detect_intent(text)
    runs = [cpu_seconds(lambda: [previous_engine.detect_intent(text) for _ in range(5) for text in texts]) / 5]
    runs += [cpu_seconds(lambda: [previous_engine.detect_intent(text) for _ in range(5) for text in texts]) / 5]
    return len(texts) / min(runs)


def _detect_all(engine: IntentDetector, texts: list[str]) -> None:
    for text in texts:
        engine.detect(text)


def throughput(texts: list[str]) -> tuple[float, float]:
    """Detections per CPU-second: a fresh engine (every word new to its caches), then warm (best of five)."""
    from whatsapp_crm.intent.engine import IntentEngine, OptOutThresholds
    from whatsapp_crm.intent.model import LinearIntentModel

    model_data, cue_data = read_model_data(), read_intent_data()
    cuts = OptOutThresholds(**model_data["opt_out_thresholds"])
    cold = []
    for _ in range(5):
        fresh = IntentDetector(IntentEngine.from_data(cue_data), LinearIntentModel.from_data(model_data), cuts)
        cold.append(cpu_seconds(partial(_detect_all, fresh, texts)))
    warm_engine = IntentDetector(IntentEngine.from_data(cue_data), LinearIntentModel.from_data(model_data), cuts)
    for text in texts:
        warm_engine.detect(text)
    warm = [cpu_seconds(lambda: [warm_engine.detect(text) for _ in range(5) for text in texts]) / 5 for _ in range(5)]
    return len(texts) / min(cold), len(texts) / min(warm)


def longest_message_ms(texts: list[str]) -> float:
    long_text = " ".join(texts)[:4096]
    detect_intent(long_text)
    return min(cpu_seconds(lambda: [detect_intent(long_text) for _ in range(20)]) for _ in range(3)) / 20 * 1000


def fresh_process_cpu_seconds(code: str, runs: int, env: dict[str, str]) -> list[float]:
    """CPU time of `code` in fresh interpreters (start-up excluded): unlike wall time, it does not grow when
    other processes load the machine (imports from a warm file cache are CPU-bound)."""
    timer = "import time, sys; t0 = time.process_time()\n" + code + "\nsys.stdout.write(repr(time.process_time() - t0))"
    samples = []
    for _ in range(runs):
        output = subprocess.run(
            [sys.executable, "-c", timer], check=True, capture_output=True, text=True, env=env, cwd=ROOT
        ).stdout
        samples.append(float(output.strip().splitlines()[-1]))
    return samples


def cold_load() -> dict[str, float]:
    """Fresh interpreters, median CPU time: the responder's own import, and its first detection, this engine
    vs the rules alone and vs the previous engine (what the responder paid before the model)."""
    env = {**os.environ, "PYTHONPATH": f"{LAYER}{os.pathsep}{ROOT / 'bench'}"}
    preload = "import aws_lambda_powertools, pydantic, json\nfrom aws_lambda_powertools.utilities import batch\n"
    steps = {
        "import whatsapp_crm.respond": "import whatsapp_crm.respond",
        "+ first detection, rules + model (this engine)": (
            "import whatsapp_crm.respond\nfrom whatsapp_crm.intent import detect_intent\ndetect_intent('שלום')"
        ),
        "+ first detection, rules alone": (
            "import whatsapp_crm.respond\nfrom whatsapp_crm.intent.engine import rules_engine\n"
            "rules_engine().detect('שלום')"
        ),
        "+ first detection, previous engine (75749ac)": (
            "import whatsapp_crm.respond\nfrom previous_intent.engine import detect_intent\ndetect_intent('שלום')"
        ),
        "first detection after the responder's imports, rules alone": (
            preload + "import whatsapp_crm.respond\nt1 = time.process_time()\n"
            "from whatsapp_crm.intent.engine import rules_engine\nrules_engine().detect('שלום')\nt0 = t1"
        ),
        "first detection after the responder's imports, this engine": (
            preload + "import whatsapp_crm.respond\nt1 = time.process_time()\n"
            "from whatsapp_crm.intent import detect_intent\ndetect_intent('שלום')\nt0 = t1"
        ),
        "first detection after the responder's imports, previous engine": (
            preload + "import whatsapp_crm.respond\nt1 = time.process_time()\n"
            "from previous_intent.engine import detect_intent\ndetect_intent('שלום')\nt0 = t1"
        ),
    }
    return {label: median_ms(fresh_process_cpu_seconds(code, COLD_RUNS, env)) for label, code in steps.items()}


def layer_growth() -> dict[str, int]:
    """Bytes the learned model and its code add to the layer's source (the .pyc files come on top in a build)."""
    data = INTENT_DATA / "data"
    files = [
        data / "intent_model.json",
        data / "intent_model.bin",
        INTENT_DATA / "model.py",
        INTENT_DATA / "cue_file.py",
    ]
    return {str(path.relative_to(LAYER)): path.stat().st_size for path in files}


def budgets(texts: list[str]) -> str:
    cold, warm = throughput(texts)
    out = [
        f"Detections per CPU-second, one core, over {len(texts)} messages (mean "
        f"{sum(map(len, texts)) / len(texts):.0f} characters): {cold:,.0f} with fresh caches, {warm:,.0f} warm "
        f"(budget: ≥ 20,000 warm); the previous engine, warm, same run: {previous_throughput(texts):,.0f}",
        f"A 4096-character message: {longest_message_ms(texts):.2f} ms",
        "",
        f"Cold load, fresh interpreters, median CPU time of {COLD_RUNS} (interpreter start-up excluded):",
        "",
        "| step | ms |",
        "|---|---|",
    ]
    out += [f"| {label} | {ms:.1f} |" for label, ms in cold_load().items()]
    sizes = layer_growth()
    out += ["", "Layer growth (source bytes; budget ≤ 5 MB):", ""]
    out += [f"- {name}: {size:,}" for name, size in sizes.items()]
    out.append(f"- total: {sum(sizes.values()):,}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Intent engine accuracy and budgets (Markdown)")
    parser.add_argument("--eval", nargs="+", type=Path, metavar="FOLDER", help="corpus folders (or JSONL files)")
    parser.add_argument("--errors", action="store_true", help="also list this engine's misread lines")
    args = parser.parse_args(argv)
    engines: dict[str, Callable[[str], Decision]] = {"previous engine (75749ac)": previous, "this engine": current}
    if args.eval:
        lines = load_folders(args.eval)
        print(f"## Intent accuracy on {', '.join(str(folder) for folder in args.eval)}\n")
        print(accuracy_report(lines, engines))
        print("\n**Reply language** (this engine)\n\n" + reply_language_report(lines))
        if args.errors:
            print("\nMisread by this engine:\n" + misread(lines))
        return 0
    team = load_folders([TEAM_FILE])
    print("## Intent engine budgets\n")
    print(budgets([line.text for line in team]))
    print(f"\n## Intent accuracy on {TEAM_FILE.relative_to(ROOT)} (training material: not an estimate)\n")
    print(accuracy_report(team, engines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
