"""The learned half of the intent engine: a linear classifier over character n-grams and words.

Why: the cue file only knows the phrasings its authors thought of. Character n-grams carry a word's stem
through Hebrew prefixes ("ותורידו", "מהרשימה"), typos ("unsubscibe", "שלוך") and Hebrew typed in Latin
letters ("titoridu oti"), and word pairs carry short patterns ("לא רוצה", "call me"). The weights are
learned offline (`make train-intent`, scripts/train_intent.py, scikit-learn) from the multi-author corpus
under tests/data/intent_corpus/ and shipped in data/intent_model.json (what they are) with
data/intent_model.bin (the features and their int16 weights); here they are scored in plain Python, with no
third-party import.

The score of intent c for a message is `bias[c] + sum(count(f) * weight[f][c]) / sqrt(n) + rule[c]`, where
f runs over the message's features and n is how many features the message has (known to the model or
not); rule[c], the weight of the cue file's own reading as a stacked feature, is 0 unless the training
config turns stacking on (it is off: it scored lower on unseen authors).
Because the sum is linear, each word's share is computed once and cached: a warm Lambda pays a dictionary
look-up per word.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Bumped whenever the features below change: weights trained on other features are stale (a unit test
# compares this with the number recorded in the model file).
# 2: Hebrew words' starts without their glued prefixes; 3: words in a negation's scope; 4: a word typed one
# letter at a time is joined into the word, and Hebrew negators behind a prefix ("ולא", "שלא") open a scope;
# 5: the chat alphabet's 7 and 3 inside Latin words read as "ch" and "a" (normalize)
FEATURE_VERSION = 5
# Character n-grams of each word with a boundary mark on both sides ("<הסר>"): 2 to 5 letters.
NGRAM_SIZES = (2, 3, 4, 5)
RULE_PREFIX = "rule:"
_CACHE_LIMIT = 50_000


# Hebrew typed in Latin letters ("titoridu oti") and in Hebrew letters ("תורידו אותי") meet on a consonant
# skeleton ("ttrd t"): vowels and the letters that mostly write vowels (א ו י ע, a final ה) dropped, and
# letters that sound alike folded (ש/ס/sh/s, ח/ch/kh/h, כ/ק/k/q, פ/p/f, ב/v/b, צ/tz/ts, ט/ת/t). So the
# Hebrew-letter lines teach the model words it has only ever seen in the other script.
_LATIN_DIGRAPHS = (("sh", "s"), ("ch", "h"), ("kh", "h"), ("tz", "c"), ("ts", "c"), ("th", "t"), ("ph", "p"))
_SKELETON = str.maketrans(
    {
        **dict.fromkeys(map(ord, "aeiouyאויע"), None),
        **{
            ord(letter): sound
            for letter, sound in zip("vfqwjxבגדהזחטכלמנספצקרשת", "bpkbgkbgdhzhtklmnspckrst", strict=True)
        },
    }
)
SKELETON_SIZES = (2, 3, 4)
_HEBREW_PROCLITICS = "ושהבלכמ"
STEM_START_SIZES = (3, 4, 5)

# Words that negate what follows them in a clause, in the languages leads write ("לא להסיר", "don't remove",
# "al tafsiku", "не пишите", "ne ... pas", "mish"). The next NEGATION_SCOPE words of the clause get a
# marked copy ("n:להסיר"), so the model can weigh "remove" and "do not remove" differently, which word pairs
# cannot do when a word stands between ("I am not asking you to stop"). The words are taken as they are;
# what a negated word means is learned.
# As `tokenize` leaves them: final letters folded ("אין" → "אינ").
NEGATORS = frozenset(
    {
        *("לא", "אל", "אינ", "בלי", "אינני", "איני", "אינו", "אינה", "אינכ"),
        *("ולא", "ואל", "שלא", "ושלא", "כשלא", "ללא"),
        *("lo", "al", "ein", "bli"),
        *("not", "dont", "no", "never", "isnt", "wont", "cant", "without", "doesnt", "didnt", "nobody"),
        *("ne", "не", "нет", "ни", "pas", "non", "nunca", "nie", "nicht", "kein"),
        *("mish", "mush", "msh", "مش", "لا", "ما", "נישט", "ניט"),
    }
)
NEGATION_SCOPE = 4


def negated(clauses: Sequence[Sequence[str]]) -> bool:
    """Whether any clause holds a negator."""
    return any(word in NEGATORS for clause in clauses for word in clause)


def skeleton(word: str) -> str:
    """The consonant skeleton of a word in either script, doubled consonants squeezed ("meunyan" -> "mnn")."""
    if len(word) > 1 and (word[-1] == "ה" or (word[-1] == "h" and word[-2] not in "cskpt")):
        word = word[:-1]  # a final ה / h writes a vowel ("toda", "todah", "תודה"), a final "ch" does not
    for digraph, sound in _LATIN_DIGRAPHS:
        if digraph in word:
            word = word.replace(digraph, sound)
    folded = word.translate(_SKELETON)
    return "".join(letter for at, letter in enumerate(folded) if at == 0 or folded[at - 1] != letter)


def word_features(word: str) -> list[str]:
    """The features one word contributes: itself, its character n-grams with boundary marks, for a Hebrew
    word the start of its stem behind one or two glued prefixes, and its consonant skeleton's n-grams."""
    padded = f"<{word}>"
    features = [f"w:{word}"]
    for size in NGRAM_SIZES:
        features.extend(padded[at : at + size] for at in range(len(padded) - size + 1))
    if word and "\u05d0" <= word[0] <= "\u05ea":
        # Hebrew glues ו ש ה ב ל כ מ to the next word ("ותורידו", "מהרשימה"): the word's start again without
        # one, then two, of them ("s<תור"), so the stem's first letters meet the same word written bare.
        stem = word
        for _ in range(2):
            if len(stem) <= 3 or stem[0] not in _HEBREW_PROCLITICS:
                break
            stem = stem[1:]
            padded_stem = f"<{stem}"
            features.extend("s" + padded_stem[:size] for size in STEM_START_SIZES if size <= len(padded_stem))
            features.append(f"s:{stem}")
    bones = skeleton(word)
    if bones:
        padded = f"<{bones}>"
        features.append(f"k:{bones}")
        for size in SKELETON_SIZES:
            features.extend("k" + padded[at : at + size] for at in range(len(padded) - size + 1))
    return features


def pair_features(clause: Sequence[str]) -> Iterator[str]:
    """Adjacent word pairs inside one clause ("לא רוצה", "call me"): word order the n-grams cannot see."""
    for first, second in zip(clause, clause[1:], strict=False):
        yield f"p:{first} {second}"


def negated_features(word: str) -> Iterator[str]:
    """The marks of a word inside a negation's scope: the word and its consonant skeleton."""
    yield f"n:{word}"
    bones = skeleton(word)
    if bones:
        yield f"nk:{bones}"


def negation_scope(clause: Sequence[str]) -> Iterator[str]:
    """The words of a clause that stand within NEGATION_SCOPE words after a negator (a negator itself is
    never marked: it opens a new scope)."""
    left = 0
    for word in clause:
        if word in NEGATORS:
            left = NEGATION_SCOPE
        elif left:
            left -= 1
            yield word


def last_clause_features(clause: Sequence[str]) -> Iterator[str]:
    """The words of the message's last clause again, marked: the latest request in a message wins
    ("remove me... no wait, keep sending")."""
    for word in clause:
        yield f"z:{word}"
        bones = skeleton(word)
        if bones:
            yield f"zk:{bones}"


def message_features(clauses: Sequence[Sequence[str]]) -> tuple[Counter[str], int]:
    """Every feature of a tokenized message with its count, and the number of features (the scaling's n).

    The training script builds its matrix from this function, so training and scoring cannot disagree.
    """
    counts: Counter[str] = Counter()
    for clause in clauses:
        for word in clause:
            counts.update(word_features(word))
        counts.update(pair_features(clause))
        for word in negation_scope(clause):
            counts.update(negated_features(word))
    if len(clauses) > 1:
        counts.update(last_clause_features(clauses[-1]))
    return counts, sum(counts.values())


def rule_feature(intent: str) -> str:
    return f"{RULE_PREFIX}{intent}"


@dataclass(frozen=True, slots=True)
class Scores:
    """The model's probability for each class (softmax of the linear scores), in the model's class order."""

    classes: tuple[str, ...]
    probabilities: tuple[float, ...]

    def of(self, label: str) -> float:
        return self.probabilities[self.classes.index(label)]

    def best(self, exclude: str | None = None) -> tuple[str, float]:
        """The most probable class, leaving out `exclude`."""
        found, top = "", -1.0
        for label, probability in zip(self.classes, self.probabilities, strict=True):
            if probability > top and label != exclude:
                found, top = label, probability
        return found, top


class _LinearScorer:
    """One linear layer over `message_features`: `width` scores. The weights stay int16 (times `scale`);
    each word's share (its own features, and its last-clause marks) and each word pair's row are computed
    once and cached, so a warm Lambda mostly sums cached tuples."""

    def __init__(
        self, width: int, bias: Sequence[float], features: Sequence[str], weights: Sequence[int], scale: float
    ) -> None:
        if len(bias) != width or len(weights) != width * len(features):
            raise ValueError("intent model: weights do not match the classes and features")
        self.width = width
        self._bias = tuple(bias)
        self._scale = scale
        # Built in C (dict over zip), not a comprehension: the largest cost of loading the model.
        self._index = dict(zip(features, range(0, width * len(features), width), strict=True))
        self._weights = weights
        self._zero = (0.0,) * width
        self._words: dict[str, _WordShare] = {}
        self._rows: dict[str, tuple[float, ...]] = {}

    @classmethod
    def from_data(cls, width: int, data: Mapping[str, Any]) -> _LinearScorer:
        """`features`: UTF-8 bytes, one feature per line; `weights`: int16 little-endian bytes, times `scale`."""
        features = bytes(data["features"]).decode("utf-8").split("\n") if data["features"] else []
        quantized = array("h")
        quantized.frombytes(data["weights"])
        if array("h", [1]).tobytes() != b"\x01\x00":
            quantized.byteswap()
        return cls(width, [float(value) for value in data["bias"]], features, quantized, float(data["scale"]))

    def row(self, feature: str) -> tuple[float, ...] | None:
        """One feature's weights (None when the model does not know it)."""
        offset = self._index.get(feature)
        if offset is None:
            return None
        scale = self._scale
        return tuple(value * scale for value in self._weights[offset : offset + self.width])

    def _sum(self, features: Iterable[str]) -> tuple[float, ...]:
        index, weights, width = self._index, self._weights, self.width
        total = [0] * width
        for feature in features:
            offset = index.get(feature)
            if offset is not None:
                for column in range(width):
                    total[column] += weights[offset + column]
        scale = self._scale
        return tuple(value * scale for value in total)

    def _word(self, word: str) -> _WordShare:
        known = self._words.get(word)
        if known is None:
            features = word_features(word)
            last = list(last_clause_features((word,)))
            negated = list(negated_features(word))
            known = _WordShare(
                self._sum(features), len(features), self._sum(last), len(last), self._sum(negated), len(negated)
            )
            if len(self._words) >= _CACHE_LIMIT:
                self._words.clear()
            self._words[word] = known
        return known

    def _pair(self, pair: str) -> tuple[float, ...]:
        """A word pair's row, or () when the model does not know the pair (most pairs): nothing to add."""
        known = self._rows.get(pair)
        if known is None:
            known = self.row(pair) or ()
            if len(self._rows) >= _CACHE_LIMIT:
                self._rows.clear()
            self._rows[pair] = known
        return known

    def logits(self, clauses: Sequence[Sequence[str]], extra: Sequence[float] | None = None) -> list[float]:
        """bias + (sum of the features' weights) / sqrt(number of features) + extra: what `message_features`
        and the training matrix define, summed from cached shares (`reference_logits` is the plain sum, and
        a unit test holds the two equal on the corpus)."""
        # The hot path of every detection: dictionary hits inlined, one pass, no generator.
        words, rows = self._words, self._rows
        shares: list[tuple[float, ...]] = []
        append = shares.append
        count = 0
        for clause in clauses:
            left = 0  # words still inside a negation's scope (negation_scope, inlined)
            for word in clause:
                share = words.get(word) or self._word(word)
                append(share.own)
                count += share.own_count
                if word in NEGATORS:
                    left = NEGATION_SCOPE
                elif left:
                    left -= 1
                    append(share.negated)
                    count += share.negated_count
            for first, second in zip(clause, clause[1:], strict=False):
                pair = f"p:{first} {second}"  # pair_features, inlined
                row = rows.get(pair)
                if row is None:
                    row = self._pair(pair)
                if row:  # an unknown pair adds 0 to the sum (but counts in n)
                    append(row)
            count += max(len(clause) - 1, 0)
        if len(clauses) > 1:
            for word in clauses[-1]:
                share = words.get(word) or self._word(word)
                append(share.last)
                count += share.last_count
        if not shares:
            return [b + e for b, e in zip(self._bias, extra or self._zero, strict=True)]
        norm = 1 / math.sqrt(count)
        totals = map(sum, zip(*shares, strict=True))
        if extra is None:
            return [b + t * norm for b, t in zip(self._bias, totals, strict=True)]
        return [b + t * norm + e for b, t, e in zip(self._bias, totals, extra, strict=True)]

    def reference_logits(self, clauses: Sequence[Sequence[str]], extra: Sequence[float] | None = None) -> list[float]:
        """`logits` computed the plain way, straight from `message_features` (what training defines)."""
        counts, size = message_features(clauses)
        index, weights, width = self._index, self._weights, self.width
        totals = [0] * width  # exact: the int16 weights summed as integers, scaled once
        for feature, count in counts.items():
            offset = index.get(feature)
            if offset is not None:
                for column in range(width):
                    totals[column] += count * weights[offset + column]
        norm = self._scale / math.sqrt(size) if size else 0.0
        extra = extra or self._zero
        return [b + t * norm + e for b, t, e in zip(self._bias, totals, extra, strict=True)]


@dataclass(frozen=True, slots=True)
class _WordShare:
    own: tuple[float, ...]  # the word's own features
    own_count: int
    last: tuple[float, ...]  # its marks when it stands in the last clause of a longer message
    last_count: int
    negated: tuple[float, ...]  # its marks when it stands in a negation's scope
    negated_count: int


class LinearIntentModel:
    """The trained weights, scored without numpy: the intent classifier, and a small he/en classifier for
    text written only in Latin letters. Build it with `from_data` from the model file."""

    def __init__(
        self,
        classes: Sequence[str],
        intents: _LinearScorer,
        language: Callable[[], _LinearScorer],
        metadata: Mapping[str, Any],
    ) -> None:
        self.classes = tuple(classes)
        self.metadata = metadata
        self._intents = intents
        # Built on the first message written only in Latin letters: most leads write Hebrew letters, and the
        # reader's weights cost as much to load as the intents' own.
        self._build_language = language
        self._language: _LinearScorer | None = None
        # The stacked rule rows; none when the model was trained without them (then nothing is added).
        self._rules = {name: row for name in self.classes if (row := intents.row(rule_feature(name))) is not None}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> LinearIntentModel:
        try:
            classes = [str(name) for name in data["classes"]]
            intents = _LinearScorer.from_data(len(classes), data["intents"])
            language_data = data["language"]
            if not isinstance(language_data, Mapping) or not {"bias", "scale", "features", "weights"} <= set(
                language_data
            ):
                raise ValueError("the language reader's weights are missing")
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"intent model: malformed model file ({error!r})") from None
        metadata = {key: value for key, value in data.items() if key not in {"intents", "language"}}
        return cls(classes, intents, lambda: _LinearScorer.from_data(1, language_data), metadata)

    def scores(self, clauses: Sequence[Sequence[str]], rule_intent: str | None) -> Scores:
        logits = self._intents.logits(clauses, self._rules.get(rule_intent or ""))
        top = max(logits)
        exps = [math.exp(value - top) for value in logits]
        whole = sum(exps)
        return Scores(self.classes, tuple([value / whole for value in exps]))

    def latin_text_is_hebrew(self, clauses: Sequence[Sequence[str]]) -> bool:
        """Whether a message in Latin letters is Hebrew typed in them ("ma kore achi") rather than English."""
        if not clauses:
            return False
        if self._language is None:
            self._language = self._build_language()
        return self._language.logits(clauses)[0] > 0
