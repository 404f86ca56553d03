"""The engine's fast paths decide exactly what their plain definitions decide, on every training line.

The scorer sums cached per-word shares instead of the model's features one by one, the rules find patterns
through a per-candidate-set index with shortcuts for one-word and gapless patterns, and `normalize` folds
characters in two cheap steps instead of one dict translation (docs/performance.md: together they make a
warm detection cheaper). Each plain version is written out here as the definition, and every line of the
corpus and the team's file must get the same reading from both."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from whatsapp_crm.intent import engine as engine_module
from whatsapp_crm.intent import normalize as normalize_module
from whatsapp_crm.intent.engine import IntentDetector, IntentEngine, OptOutThresholds, read_intent_data, read_model_data
from whatsapp_crm.intent.model import LinearIntentModel
from whatsapp_crm.intent.normalize import tokenize

ROOT = Path(__file__).resolve().parents[3]
CORPUS_FILES = [
    *sorted((ROOT / "tests/data/intent_corpus/train").glob("*.jsonl")),
    ROOT / "tests/unit/intent/labelled_messages.jsonl",
]
AWKWARD = ["", "🙂🙂", "x" * 4096, "הסר " * 300, "STOP stop Stop", "\u200fשלום\u200e, call me", "שָׁלוֹם", "a, b, c."]


def corpus_texts() -> list[str]:
    texts = [*AWKWARD]
    for path in CORPUS_FILES:
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


def plain_find(
    index: engine_module._FirstWordIndex, words: Sequence[frozenset[str]], clause: int, gap_stops: frozenset[str]
) -> Iterator[engine_module._Hit]:
    """Every pattern that one of a word's keys starts, tried once per word in the cue file's order, with the
    general matcher (the definition)."""
    for start, word in enumerate(words):
        starting = {id(pattern): pattern for key in word for pattern in index.by_key.get(key, ())}
        for _, pattern in sorted(starting.items(), key=lambda item: index._rank[item[0]]):
            positions = pattern.match(words, start, gap_stops)
            if positions is not None:
                yield engine_module._Hit(pattern, clause, positions)


def test_the_cached_scorer_gives_the_plain_sum_of_the_features_on_every_line() -> None:
    # Given the shipped model
    model = LinearIntentModel.from_data(read_model_data())
    scorer = model._intents
    for text in corpus_texts()[::3]:  # every third line: the plain sum is slow, the decisions test takes all
        clauses = tokenize(text)
        # Then the cached, inlined scoring equals bias + sum(count * weight) / sqrt(n) over message_features
        # (to float rounding: the cache sums per word, the definition per feature)
        got, expected = scorer.logits(clauses), scorer.reference_logits(clauses)
        assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-9, text


def test_the_indexed_pattern_search_reads_every_line_as_the_plain_search_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given one engine searched the fast way and the same engine searched the plain way
    data = read_model_data()
    detector = IntentDetector(
        IntentEngine.from_data(read_intent_data()),
        LinearIntentModel.from_data(data),
        OptOutThresholds(**data["opt_out_thresholds"]),
    )
    texts = corpus_texts()
    fast = [(detector.rules.read(text), detector.detect(text)) for text in texts]
    monkeypatch.setattr(engine_module, "_find", plain_find)
    plain = [(detector.rules.read(text), detector.detect(text)) for text in texts]
    # Then every reading and every decision (intent, language, cue, confidence, ask) is the same
    for text, got, expected in zip(texts, fast, plain, strict=True):
        assert got == expected, text


def plain_normalize(text: str) -> str:
    """`normalize` as first written: one translate over the whole table, the chat alphabet's digits read on
    every text (the definition)."""
    folded = unicodedata.normalize("NFKC", text).translate(normalize_module._TRANSLATION).casefold()
    folded = normalize_module._CHAT_DIGIT.sub(lambda digit: normalize_module._CHAT_LETTER[digit.group()], folded)
    return normalize_module._STRETCHED.sub(r"\1\1", folded)


# Letters, Hebrew points and punctuation, the characters the table maps, and compatibility forms NFKC expands.
_TRICKY = "".join(map(chr, normalize_module._TRANSLATION)) + "ךםןףץ\ufb2a\ufb4b\u212b\u0130\u1e9e\ufb01 .,?'שalom37³３e"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(_TRICKY) | st.characters(), max_size=40))
@example("3AA ta3asu tishl7u 7am ³ab")
def test_normalize_folds_any_text_as_the_one_table_translation_does(text: str) -> None:
    assert normalize_module.normalize(text) == plain_normalize(text)
