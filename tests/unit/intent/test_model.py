"""The learned half of the engine: its shipped weights match the corpus and are scored as they were trained."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from whatsapp_crm.intent.engine import read_model_data, rules_engine
from whatsapp_crm.intent.model import (
    FEATURE_VERSION,
    NEGATORS,
    LinearIntentModel,
    message_features,
    skeleton,
    word_features,
)
from whatsapp_crm.intent.normalize import normalize, tokenize

ROOT = Path(__file__).resolve().parents[3]


def _training_script() -> ModuleType:
    """scripts/train_intent.py, imported without scikit-learn (it imports that only to train)."""
    spec = importlib.util.spec_from_file_location("train_intent", ROOT / "scripts" / "train_intent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("train_intent", module)
    spec.loader.exec_module(module)
    return module


TRAINING = _training_script()


def test_the_shipped_weights_were_trained_on_the_corpus_and_config_as_they_are_now() -> None:
    # Given the model file and the training inputs in the repository
    data = read_model_data()
    # Then the file records the fingerprint of exactly these inputs (else: run `make train-intent`)
    assert data["fingerprint"] == TRAINING.fingerprint(), "stale weights: run `make train-intent` and commit"
    assert data["feature_version"] == FEATURE_VERSION
    assert data["config"] == TRAINING.TRAINING_CONFIG


def test_an_edited_corpus_line_makes_the_weights_stale(tmp_path: Path) -> None:
    # Given a copy of the corpus with one label changed
    corpus = tmp_path / "train"
    shutil.copytree(TRAINING.CORPUS, corpus)
    first = sorted(corpus.glob("*.jsonl"))[0]
    first.write_text(first.read_text(encoding="utf-8").replace('"opt_out"', '"default"', 1), encoding="utf-8")
    # Then its fingerprint no longer matches the shipped weights; a changed config neither
    assert TRAINING.fingerprint(corpus=corpus) != read_model_data()["fingerprint"]
    assert TRAINING.fingerprint({**TRAINING.TRAINING_CONFIG, "C": 1.0}) != read_model_data()["fingerprint"]


def test_plain_python_scoring_agrees_with_scikit_learn_on_the_recorded_lines() -> None:
    # Given the probabilities scikit-learn gave some training lines when the weights were written
    model = LinearIntentModel.from_data(read_model_data())
    checks: list[dict[str, Any]] = json.loads(TRAINING.CHECKS_FILE.read_text(encoding="utf-8"))
    assert len(checks) >= 20
    for check in checks:
        # When the runtime scores the same text (with the rules' reading stacked, as in training)
        rule = rules_engine().detect(check["text"]).intent.value
        scores = model.scores(tokenize(check["text"]), rule)
        # Then every probability agrees to within the int16 rounding of the weights
        assert scores.probabilities == pytest.approx(check["probabilities"], abs=0.01), check["text"]


def test_the_model_files_are_small_and_name_their_classes_and_thresholds() -> None:
    data = read_model_data()
    assert TRAINING.MODEL_FILE.stat().st_size + TRAINING.WEIGHTS_FILE.stat().st_size < 5_000_000
    assert data["classes"] == ["opt_out", "opt_in", "meeting", "availability", "greeting", "default"]
    assert 0 < data["opt_out_thresholds"]["ask"] <= data["opt_out_thresholds"]["clear"] < 1


def test_the_weights_file_is_the_one_the_model_file_was_written_with() -> None:
    # Given the two files training writes together
    recorded = read_model_data()["weights_file"]
    weights = TRAINING.WEIGHTS_FILE.read_bytes()
    # Then the weights file is byte for byte the one the model file's ranges point into
    assert recorded["name"] == TRAINING.WEIGHTS_FILE.name
    assert hashlib.sha256(weights).hexdigest() == recorded["sha256"]


def test_a_weights_file_of_another_size_is_refused_when_the_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a weights file cut short (a deploy that shipped one file of a new training and not the other)
    from whatsapp_crm.intent import engine

    whole = TRAINING.WEIGHTS_FILE.read_bytes()
    real_read = engine._read_package_file
    monkeypatch.setattr(
        engine, "_read_package_file", lambda name: whole[:-12] if name == engine.MODEL_WEIGHTS_FILE else real_read(name)
    )
    engine.read_model_data.cache_clear()
    try:
        # Then loading fails loudly, naming both files, instead of scoring with shifted weights
        with pytest.raises(ValueError, match="intent_model.bin"):
            engine.read_model_data()
    finally:
        engine.read_model_data.cache_clear()


@pytest.mark.parametrize(
    ("latin", "hebrew"),
    [("titoridu oti", "תורידו אותי"), ("nikba pgisha", "נקבע פגישה"), ("boker tov", "בוקר טוב"), ("todah", "תודה")],
)
def test_hebrew_typed_in_latin_letters_shares_a_skeleton_with_hebrew_letters(latin: str, hebrew: str) -> None:
    # Given the same Hebrew words typed in either script
    def bones(text: str) -> list[str]:
        return [skeleton(word) for clause in tokenize(text) for word in clause]

    # Then their consonant skeletons are equal, so what the model learned from one reaches the other
    assert bones(latin) == bones(hebrew)


def test_word_features_carry_a_stem_through_prefixes_and_typos() -> None:
    # "ותורידו" and "תורידו" share most n-grams; so do "unsubscribe" and its misspelling
    assert len(set(word_features("ותורידו")) & set(word_features("תורידו"))) >= 10
    assert len(set(word_features("unsubscibe")) & set(word_features("unsubscribe"))) >= 10


@pytest.mark.parametrize(("glued", "bare"), [("ותורידו", "תורידו"), ("מהרשימה", "רשימה"), ("שתתקשרו", "תתקשרו")])
def test_a_hebrew_word_behind_glued_prefixes_shares_its_start_with_the_bare_word(glued: str, bare: str) -> None:
    # Given a word with one or two prefixes glued on, and the same word bare
    def starts(word: str) -> set[str]:
        return {feature.removeprefix("s") for feature in word_features(word) if feature.startswith("s<")}

    # Then the glued word also carries the bare word's first letters from the word boundary ("<תור")
    assert {f"<{bare[:2]}", f"<{bare[:3]}", f"<{bare[:4]}"} <= starts(glued)
    assert {f"<{bare[:2]}", f"<{bare[:3]}"} <= set(word_features(bare))


def test_the_number_of_features_grows_linearly_with_the_text() -> None:
    # Given a message and the same message repeated 40 times
    once = tokenize("שלום, אפשר לקבוע פגישה מחר? call me 🙂")
    many = tokenize(" ".join(["שלום, אפשר לקבוע פגישה מחר? call me 🙂"] * 40))
    # Then it has at most 40 times the features (plus the last clause's marks)
    assert message_features(many)[1] <= 40 * message_features(once)[1] + 20


def test_words_after_a_negator_are_marked_within_its_clause_and_scope() -> None:
    # Given a removal word four words after "not", and the same word again in the next clause
    counts, _ = message_features(tokenize("I am not asking you to stop, stop now please"))
    # Then the model sees the first "stop" as negated and the second as plain
    assert counts["n:stop"] == 1 and counts["w:stop"] == 2
    assert counts["n:asking"] == 1 and counts["n:not"] == 0 and counts["n:now"] == 0
    # And a Hebrew negator marks the words behind it, its skeleton too
    hebrew, _ = message_features(tokenize("לא להסיר אותי"))
    assert hebrew["n:להסיר"] == 1 and hebrew["n:אותי"] == 1 and hebrew["n:לא"] == 0
    assert any(feature.startswith("nk:") for feature in hebrew)


def test_a_negation_reaches_four_words_and_no_further() -> None:
    counts, _ = message_features(tokenize("don't one two three four five"))
    assert [counts[f"n:{word}"] for word in ("one", "two", "three", "four", "five")] == [1, 1, 1, 1, 0]


def test_every_negator_is_written_as_tokenize_leaves_words() -> None:
    # A negator spelt otherwise ("אין" with its final letter) would never match a token, silently
    assert sorted(word for word in NEGATORS if normalize(word) != word) == []


def test_one_writer_filing_latin_letter_hebrew_as_english_does_not_make_its_words_english() -> None:
    # Given Hebrew typed in Latin letters by three writers, English by three others, and one writer who
    # filed a Latin-letter Hebrew removal as an English line
    def line(text: str, author: str, lang_group: str) -> Any:
        return TRAINING.Example(text=text, intent="opt_out", author=author, lang_group=lang_group)

    corpus = [
        line("tafsiku lishloach li hodaot", "careless", "en"),
        *(line(f"tafsiku lishloach li {n}", author, "mixed") for n, author in enumerate(["h1", "h2", "h3"])),
        *(line(f"please stop sending me messages {n}", author, "en") for n, author in enumerate(["e1", "e2", "e3"])),
        line("please stop, todah", "h1", "mixed"),
    ]
    # When the training script labels who should get a Hebrew reply
    labelled = TRAINING.language_examples(corpus, [], TRAINING.TRAINING_CONFIG)
    labels = {example.text: label for example, label in labelled}
    # Then the other writers' Latin-letter Hebrew still gets Hebrew, and English with a Hebrew word English
    assert [labels[f"tafsiku lishloach li {n}"] for n in range(3)] == ["he", "he", "he"]
    assert labels["please stop, todah"] == "en"
    # and the careless writer's own line keeps the label it was given
    assert labels["tafsiku lishloach li hodaot"] == "en"
