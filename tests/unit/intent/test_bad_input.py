"""Whatever a phone, a copy-paste or a broken client sends, the engine returns a label and never raises,
with work that grows linearly with the length of the text (property-based, hypothesis)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whatsapp_crm.intent import Intent, IntentResult, Language, detect_intent
from whatsapp_crm.intent import engine as engine_module

MAX_TEXT = 4096  # WhatsApp's limit for a text message
MARKS = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200c\u200d\ufeff"
NIQQUD = "".join(chr(code) for code in range(0x0591, 0x05C8))
LONE_SURROGATES = "\ud800\udfff\udc00"

# Hebrew with points and marks, Latin, Cyrillic, Arabic, digits, emoji and invisible controls, mixed.
_alphabet = st.one_of(
    st.characters(min_codepoint=0x05D0, max_codepoint=0x05EA),
    st.sampled_from(NIQQUD + MARKS + LONE_SURROGATES + " .,!?\n'\"-"),
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.characters(min_codepoint=0x0400, max_codepoint=0x04FF),
    st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
    st.characters(codec=None),
)


def _is_a_label(result: IntentResult) -> bool:
    return isinstance(result.intent, Intent) and isinstance(result.language, Language) and 0 <= result.confidence <= 1


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=_alphabet, max_size=MAX_TEXT))
def test_any_text_up_to_whatsapps_limit_gets_a_label_and_no_exception(text: str) -> None:
    assert _is_a_label(detect_intent(text))


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n\n\t",
        "🙂🙂🙂",
        "👋",
        MARKS,
        NIQQUD,
        "שָׁלוֹם",
        "\u200fהסר\u200f",
        "hello\ud800",
        LONE_SURROGATES,
        "שלום hello привет مرحبا 🙂",
        "א" * MAX_TEXT,
        "stop " * (MAX_TEXT // 5),
        ("הסר אותי " * 1000)[:MAX_TEXT],
    ],
)
def test_edge_cases_get_a_label_and_no_exception(text: str) -> None:
    assert _is_a_label(detect_intent(text))


def test_an_empty_or_emoji_only_message_is_default() -> None:
    assert detect_intent("").intent is Intent.DEFAULT
    assert detect_intent("🙂🙂").intent is Intent.DEFAULT


@contextmanager
def _counting_pattern_matches() -> Iterator[list[int]]:
    """Count the rule engine's pattern attempts and the model's feature look-ups: the engine's work."""
    counter = [0]
    original_match = engine_module._Pattern.match

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return original_match(self, *args, **kwargs)

    engine_module._Pattern.match = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        engine_module._Pattern.match = original_match  # type: ignore[method-assign]


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=_alphabet, min_size=1, max_size=200), st.integers(min_value=2, max_value=20))
def test_the_engine_s_work_grows_linearly_with_the_text(text: str, times: int) -> None:
    # Given a text and the same text repeated (as one message)
    with _counting_pattern_matches() as once:
        detect_intent(text)
    with _counting_pattern_matches() as repeated:
        detect_intent(" ".join([text] * times))
    # Then the rules tried at most proportionally more patterns (never a product of lengths)
    assert repeated[0] <= times * once[0] + times * 4 + 8
