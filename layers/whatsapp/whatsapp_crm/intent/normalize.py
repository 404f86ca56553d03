"""Turn a WhatsApp message into comparable tokens: the same word typed on any phone compares equal.

Leads write Hebrew with or without niqqud, paste text that carries invisible direction marks, stretch
words for emphasis ("היייי", "hiiii") and end words with final letters or not ("שלום" vs a mid-word
"שלומ" after a suffix is cut). Matching runs on the output of `tokenize`, never on raw text.
"""

from __future__ import annotations

import re
import unicodedata

# Invisible format characters that phones and copy-paste insert around mixed Hebrew/Latin text:
# LRM, RLM, ALM, the embedding/override controls and the isolates. Zero-width (non-)joiners and the
# BOM are dropped with them; a zero-width space still separates words.
_DELETED_FORMAT = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200c\u200d\ufeff\u00ad"
_SPACE_LIKE = "\u200b\u05be\u05c0\u05c6"  # zero-width space, maqaf, paseq, nun hafukha

# Hebrew points: cantillation U+0591–U+05AF, vowels U+05B0–U+05BD, rafe, shin/sin dots, upper/lower
# dots and qamats qatan. Sof pasuq (U+05C3) is punctuation and ends a clause instead.
_HEBREW_MARKS = [*range(0x0591, 0x05BE), 0x05BF, 0x05C1, 0x05C2, 0x05C4, 0x05C5, 0x05C7]

# Apostrophes and gershayim join what they sit in: "don't" → "dont", "צ׳יפס" → "ציפס", "ת״א" → "תא".
_JOINING_QUOTES = "'\u2019\u2018\u02bc`\u05f3\u05f4\""

_FINAL_LETTERS = {"ך": "כ", "ם": "מ", "ן": "נ", "ף": "פ", "ץ": "צ"}

_TRANSLATION = str.maketrans(
    {
        **dict.fromkeys(map(ord, _DELETED_FORMAT)),
        **dict.fromkeys(_HEBREW_MARKS),
        **dict.fromkeys(map(ord, _JOINING_QUOTES)),
        **dict.fromkeys(map(ord, _SPACE_LIKE), " "),
        **{ord(final): plain for final, plain in _FINAL_LETTERS.items()},
    }
)
# The same folding, cheaper: str.translate looks up every character of a Hebrew text in a dict, so the
# characters most texts lack are translated only when present, and the final letters (in most Hebrew
# texts) are replaced one by one. Equivalent because no character is mapped onto one that is mapped again.
_RARE_TRANSLATION = {key: value for key, value in _TRANSLATION.items() if chr(key) not in _FINAL_LETTERS}
_RARE = re.compile("[" + re.escape("".join(map(chr, _RARE_TRANSLATION))) + "]")

# Three or more of the same letter are squeezed to two: "hiiii" → "hii", "goooood" → "good". Two are
# kept because English spells with them ("good", "meeting"); the engine tries the fully squeezed form
# ("hii" → "hi") as a fallback, which only a stretched word can reach.
_STRETCHED = re.compile(r"([^\W\d_])\1{2,}")
_DOUBLED = re.compile(r"([^\W\d_])\1+")

# Hebrew typed in Latin letters borrows the Arabic chat alphabet: 7 for ח and 3 for ע ("tishl7u", "ta3asu",
# "7adash", "ya3ni", "3im"). A 7 or 3 between Latin letters, or opening a word that goes on with a vowel, is
# read as the letter it stands for: "ch" (as ח is most often typed; the model's skeleton folds the two) and
# "a" (ע, a vowel to the skeleton). Times, ordinals and sizes keep their digits: "7am", "3rd", "7ish", "3 rooms".
_CHAT_DIGIT = re.compile(r"(?<=[a-z])[37](?=[a-z])|(?<![^\W_])[37](?=[aeiou][a-z]+)(?!(?:am|pm|ish|ers)\b)")
_CHAT_LETTER = {"7": "ch", "3": "a"}

# A clause ends at sentence punctuation or a line break; negation never reaches across one.
_CLAUSE_BREAK = re.compile(r"[.,!?;:\n\r\u2026\u05c3\u061f\u060c]+")
_WORD = re.compile(r"[^\W_]+")

_HEBREW_LETTER = re.compile(r"[\u05d0-\u05ea]")
_LATIN_LETTER = re.compile(r"[a-z\u00df-\u024f]")

Clause = tuple[str, ...]


def normalize(text: str) -> str:
    """NFKC, no niqqud or direction marks, lower case, plain Hebrew letters, the chat alphabet's 7 and 3
    inside Latin words read as letters, stretched letters squeezed.

    Punctuation and spacing survive, so the result can still be split into clauses.
    """
    folded = unicodedata.normalize("NFKC", text)
    if _RARE.search(folded) is not None:
        folded = folded.translate(_RARE_TRANSLATION)
    for final, plain in _FINAL_LETTERS.items():
        if final in folded:
            folded = folded.replace(final, plain)
    folded = folded.casefold()
    if "7" in folded or "3" in folded:
        folded = _CHAT_DIGIT.sub(lambda digit: _CHAT_LETTER[digit.group()], folded)
    return _STRETCHED.sub(r"\1\1", folded)


def tokenize(text: str) -> tuple[Clause, ...]:
    """The normalized words of `text`, grouped by clause; punctuation, emoji and symbols separate words."""
    return clauses_of(normalize(text))


def clauses_of(normalized: str) -> tuple[Clause, ...]:
    """Split text that already went through `normalize` into clauses of words."""
    clauses = []
    for part in _CLAUSE_BREAK.split(normalized):
        words = _WORD.findall(part)
        if len(words) >= _SPELLED_OUT and min(map(len, words)) == 1:
            words = [word for chunk in _WIDE_GAP.split(part) for word in _joined_spelled_out(_WORD.findall(chunk))]
        if words:
            clauses.append(tuple(words))
    return tuple(clauses)


# A word typed one letter at a time ("ת ס י ר ו", "s t o p") is read as the word: a run of at least this many
# single letters. Two are left alone: "a b", a lone Hebrew letter beside a lone "I". Such a writer parts
# words with a wider gap ("ת ס י ר ו  א ו ת י").
_SPELLED_OUT = 3
_WIDE_GAP = re.compile(r"\s{2,}")


def _joined_spelled_out(words: list[str]) -> list[str]:
    joined: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1 and word.isalpha():
            run.append(word)
            continue
        if len(run) >= _SPELLED_OUT:
            joined.append("".join(run))
        else:
            joined += run
        run = []
        if word:
            joined.append(word)
    return joined


def squeeze(token: str) -> str:
    """Every run of a repeated letter down to one letter: the key for stretched or doubled spellings."""
    return _DOUBLED.sub(r"\1", token)


def has_hebrew(normalized: str) -> bool:
    return _HEBREW_LETTER.search(normalized) is not None


def has_latin(normalized: str) -> bool:
    return _LATIN_LETTER.search(normalized) is not None
