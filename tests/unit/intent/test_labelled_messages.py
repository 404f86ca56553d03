"""The whole engine against the team's own labelled messages (labelled_messages.jsonl).

Each line: text, the intent and language a person would assign, tags, and a split. Since 2026-12-06 the
file is training material for the learned model (scripts/train_intent.py), like the multi-author corpus in
tests/data/intent_corpus/, and 17 lines were relabelled to the issue-9 definitions (a greeting with a
question is `default`, so is the property's own availability; tag `relabelled-2026-12-06`). So these
tests guard against regressions, and are no estimate: the honest figures are the leave-one-author-out ones
and the blind split's (docs/performance.md). Tags name what a line exercises: "must" marks the named tricky
negatives that may never be misread, "precedence:a>b" a message that carries both cues, "follow-up" a short
follow-up that must be answered, never asked about removal (round 14).

A line counts as right as bench/bench_intent.py counts it: when the engine asks the lead whether to
remove them, that is right on an opt-out and wrong on anything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from whatsapp_crm.intent import Intent, IntentResult, Language, detect_intent

LABELLED = Path(__file__).with_name("labelled_messages.jsonl")
# 0.95 until round 4 (2026-12-07). Round 4's ask line reaches 97% of 62 writers' opt-outs, so it also asks
# "shall we remove you?" on more of this file's negated hard negatives ("אל תסירו אותי", "please don't stop
# sending"): a needless question, counted wrong here, but nobody is removed without tapping "remove me".
MIN_ACCURACY = 0.94


@dataclass(frozen=True)
class Labelled:
    text: str
    intent: Intent
    language: Language
    tags: tuple[str, ...]
    split: str


def _load() -> list[Labelled]:
    rows = []
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append(
                Labelled(
                    row["text"], Intent(row["intent"]), Language(row["language"]), tuple(row["tags"]), row["split"]
                )
            )
    return rows


MESSAGES = _load()


def decided_right(message: Labelled) -> bool:
    result = detect_intent(message.text)
    return _right(result, message.intent)


def _right(result: IntentResult, label: Intent) -> bool:
    if result.confirm_opt_out:
        return label is Intent.OPT_OUT
    return result.intent == label


def _tagged(predicate: str) -> Iterator[Labelled]:
    return (message for message in MESSAGES if any(tag.startswith(predicate) for tag in message.tags))


def test_the_labelled_set_is_large_and_covers_every_intent_and_language() -> None:
    # Given the labelled file
    # Then it is big enough to mean something, and no intent or language is missing from it
    assert len(MESSAGES) >= 200
    assert {message.intent for message in MESSAGES} == set(Intent)
    assert {message.language for message in MESSAGES} == set(Language)
    assert len({message.text for message in MESSAGES}) == len(MESSAGES), "duplicate texts inflate accuracy"


def test_overall_accuracy_is_at_least_94_percent() -> None:
    # Given every labelled message
    # When the engine classifies each
    wrong = [(m.text, m.intent.value, detect_intent(m.text)) for m in MESSAGES if not decided_right(m)]
    # Then at least 94% agree with the person who labelled them (the misses are listed on failure)
    accuracy = 1 - len(wrong) / len(MESSAGES)
    assert accuracy >= MIN_ACCURACY, f"accuracy {accuracy:.3f}; misread: {wrong}"


@pytest.mark.parametrize("message", list(_tagged("must")), ids=lambda message: message.text)
def test_named_tricky_negatives_are_never_misread(message: Labelled) -> None:
    # Given a message that contains a cue word only as a substring or under a negation
    # ("הסרטון", "התשלום", "מזמין", "don't stop sending")
    # When classified
    result = detect_intent(message.text)
    # Then it gets its labelled intent: no opt-out, greeting or availability from a substring (the engine
    # may still ask whether to remove the lead: a question, never a removal)
    assert result.intent == message.intent, result


@pytest.mark.parametrize("message", list(_tagged("follow-up")), ids=lambda message: message.text)
def test_a_bare_follow_up_gets_an_answer_not_a_removal_question(message: Labelled) -> None:
    # Given a short follow-up ("עוד שאלה", "one more thing"): "עוד" and "more" are strong opt-out words
    # ("אל תשלחו עוד"), and a two-word message leans on each of its words
    result = detect_intent(message.text)
    # Then the lead is not asked whether to be removed
    assert (result.intent, result.confirm_opt_out) == (message.intent, False), result


@pytest.mark.parametrize("message", list(_tagged("precedence:")), ids=lambda message: message.text)
def test_a_message_with_two_cues_gets_the_stronger_intent(message: Labelled) -> None:
    # Given a message that carries cues for two intents (tag "precedence:stronger>weaker")
    rule = next(tag for tag in message.tags if tag.startswith("precedence:")).removeprefix("precedence:")
    stronger, _ = rule.split(">")
    # When classified
    result = detect_intent(message.text)
    # Then the stronger intent wins
    assert message.intent == stronger
    assert _right(result, message.intent), result


def test_every_precedence_rule_is_exercised_by_the_labelled_set() -> None:
    # Given the precedence chain opt_out > opt_in > meeting > availability > greeting
    expected = {
        "opt_out>opt_in",
        "opt_out>meeting",
        "opt_out>availability",
        "opt_out>greeting",
        "opt_in>meeting",
        "opt_in>greeting",
        "meeting>availability",
        "meeting>greeting",
        "availability>greeting",
    }
    # Then each adjacent and each "beats greeting" pair has at least one labelled message
    tags = {tag.removeprefix("precedence:") for message in MESSAGES for tag in message.tags}
    assert expected <= tags


@pytest.mark.parametrize("message", MESSAGES, ids=lambda message: message.text)
def test_language_is_detected_for_every_labelled_message(message: Labelled) -> None:
    # Given any labelled message
    # When classified
    # Then the reply language is Hebrew when any Hebrew letter appears, else English, except a bare "Shalom":
    # nearly every corpus writer sends one, most of them as Hebrew typed in Latin letters (round 11); more
    # Hebrew typed in Latin letters is in test_detect.py
    assert detect_intent(message.text).language == message.language
