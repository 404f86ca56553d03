"""Normalization: the same word typed on any phone becomes the same token."""

from __future__ import annotations

import pytest

from whatsapp_crm.intent.normalize import normalize, squeeze, tokenize

RLM, LRM, ALM = "\u200f", "\u200e", "\u061c"


def words(text: str) -> list[str]:
    return [word for clause in tokenize(text) for word in clause]


@pytest.mark.parametrize(
    ("typed", "plain"),
    [
        ("שָׁלוֹם", "שלומ"),  # niqqud (shin dot, qamats, holam) gone, final mem folded
        ("פְּגִישָׁה", "פגישה"),
        ("בְּרֵאשִׁ֖ית", "בראשית"),  # cantillation (tipeha) as well
        ("ﬠ", "ע"),  # presentation form (NFKC)
    ],
)
def test_niqqud_cantillation_and_presentation_forms_are_removed(typed: str, plain: str) -> None:
    # Given Hebrew typed with points or copied from a pointed source
    # When normalized
    # Then only the letters remain
    assert words(typed) == [plain]


@pytest.mark.parametrize("mark", [RLM, LRM, ALM, "\u202b", "\u202c", "\u2067", "\u2069", "\ufeff", "\u200d"])
def test_direction_and_zero_width_marks_vanish_without_splitting_words(mark: str) -> None:
    # Given a word with an invisible direction mark inside and around it (as pasted from another app)
    text = f"{mark}הס{mark}ר{mark}"
    # When tokenized
    # Then it is the one plain word
    assert words(text) == ["הסר"]


def test_final_letters_are_folded_so_a_word_matches_with_or_without_them() -> None:
    # Given each Hebrew final letter
    # When normalized
    # Then it becomes its regular form
    assert normalize("ךםןףץ") == "כמנפצ"


def test_latin_is_lower_cased_and_fullwidth_forms_fold_to_ascii() -> None:
    assert words("STOP Ｓｔｏｐ") == ["stop", "stop"]


@pytest.mark.parametrize(
    ("stretched", "normalized"),
    [("היייי", "היי"), ("שלוםםם", "שלוממ"), ("hiiii", "hii"), ("goooood", "good"), ("meeting", "meeting")],
)
def test_letters_repeated_three_or_more_times_keep_two(stretched: str, normalized: str) -> None:
    # Given a word stretched for emphasis
    # When normalized
    # Then at most two of the same letter remain: English doubles like "good"/"meeting" survive intact
    assert normalize(stretched) == normalized


def test_squeeze_leaves_one_of_each_repeated_letter_and_never_touches_digits() -> None:
    assert squeeze("hii") == "hi"
    assert squeeze("פנוייה") == "פנויה"
    assert squeeze("1000") == "1000"


def test_apostrophes_and_gershayim_join_the_word_they_sit_in() -> None:
    # Given English contractions and Hebrew abbreviations
    # When tokenized
    # Then the quote marks vanish instead of cutting the word in two
    assert words("don't I’m ת״א צ׳יפס ת'פסיקו") == ["dont", "im", "תא", "ציפס", "תפסיקו"]


def test_punctuation_emoji_maqaf_and_hyphen_separate_words() -> None:
    assert words("opt-out👋שלום🙂היי ב־9:00") == ["opt", "out", "שלומ", "היי", "ב", "9", "00"]


def test_sentence_punctuation_and_line_breaks_end_a_clause() -> None:
    # Given a message of several sentences
    clauses = tokenize("לא, אני רוצה פגישה! don't stop\nthanks")
    # Then each clause stands alone (negation never reaches across one)
    assert clauses == (("לא",), ("אני", "רוצה", "פגישה"), ("dont", "stop"), ("thanks",))


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("ת ס י ר ו", ["תסירו"]),
        ("ת ס י ר ו  א ו ת י", ["תסירו", "אותי"]),
        ("s t o p now", ["stop", "now"]),
        ("a b testing", ["a", "b", "testing"]),
        ("קומה 1 2 3", ["קומה", "1", "2", "3"]),
    ],
)
def test_a_word_typed_one_letter_at_a_time_is_read_as_the_word(typed: str, read: list[str]) -> None:
    # Given three or more lone letters in a row (a wider gap parts the words); two, or digits, stay as typed
    assert words(typed) == read


@pytest.mark.parametrize("empty", ["", "   ", "!!!", "🙂👍", RLM + LRM])
def test_a_message_without_letters_or_digits_has_no_tokens(empty: str) -> None:
    assert tokenize(empty) == ()


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("al tishl7u li od", ["al", "tishlchu", "li", "od"]),
        ("ta3azvu oti", ["taazvu", "oti"]),
        ("7adash", ["chadash"]),
        ("ya3ni 3im", ["yaani", "aim"]),
        ("LEMA7OK", ["lemachok"]),
    ],
)
def test_the_chat_alphabets_7_and_3_in_latin_words_are_read_as_letters(typed: str, read: list[str]) -> None:
    # Hebrew typed in Latin letters often writes ח as 7 and ע as 3: the same word as "tishlechu", "chadash"
    assert [word for clause in tokenize(typed) for word in clause] == read


@pytest.mark.parametrize(
    "text",
    ["call me at 7am", "3pm or 7ish", "3rd floor", "3 rooms, 7 floors", "b4 4x4 mp3", "דירת 3 חדרי שינה בקומה 7"],
)
def test_times_ordinals_and_counts_keep_their_digits(text: str) -> None:
    assert normalize(text) == text.casefold()
