"""What a lead's message asks for: the cue file's rules and a learned classifier, combined.

`detect_intent` is the engine. The linear model of model.py reads the message and gives each intent a
probability; the rules below read it too, and keep what rules do best: a message that is nothing but an
opt-out command ("הסר", "STOP please") is an opt-out, a message with no word (empty, emoji only) gets the
rules' reading, the cue that agrees is reported, and the rules' reading decides how sure the model must be
before the lead is asked about an opt-out (negation, quotes and precedence are what the rules read well).
The opt-out probability is calibrated on text by authors the model never saw (data/intent_model.json
records the thresholds, scripts/train_intent.py sets them): above the `clear` lines the message is an
opt-out; in the band below, the engine cannot tell, says so (`IntentResult.confirm_opt_out`), and the
responder asks the lead instead of guessing; below the band it is not one. (Stacking the rules' reading as
a feature of the model was tried: leave-one-author-out it scored lower, docs/performance.md.)

The rules alone (`rules_engine()`, `IntentEngine`): the cue file is read and compiled once, on the first
call, then every call is a pure function of the text. Matching works on `normalize.tokenize` output: whole
words and word sequences (never substrings), Hebrew words also behind their one-letter prefixes, a cue right
after a negator ignored, and the intents ranked opt_out > opt_in > meeting > availability > greeting >
default.

A false opt-out silences a lead for good, so opt-out words that also have an everyday meaning ("stop",
"תפסיקו", "הסרה") are never keywords: they count as a command standing alone in its clause ("hi, please
stop") or in a phrase that names what to stop (our messages, the lead's number, our list). A phrase's gap
never skips a negator or a reverser ("I don't want to *stop* getting listings"). What is left unclear gets
`default`, which a person answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

from whatsapp_crm.intent.model import LinearIntentModel, negated
from whatsapp_crm.intent.normalize import clauses_of, has_hebrew, has_latin, normalize, squeeze, tokenize

DATA_PACKAGE = "whatsapp_crm.intent"
DATA_FILE = "data/intents.json"
MODEL_FILE = "data/intent_model.json"
# The model's features and int16 weights, as bytes the model file points into: read as JSON text (base64
# and escaped lines) they cost most of the model's cold start.
MODEL_WEIGHTS_FILE = "data/intent_model.bin"


class Intent(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    MEETING = "meeting"
    AVAILABILITY = "availability"
    GREETING = "greeting"
    DEFAULT = "default"


class Language(StrEnum):
    HE = "he"
    EN = "en"


# Strongest first. An opt-out must win over everything: a lead who says "hi, stop" wants no more messages.
PRECEDENCE: tuple[Intent, ...] = (
    Intent.OPT_OUT,
    Intent.OPT_IN,
    Intent.MEETING,
    Intent.AVAILABILITY,
    Intent.GREETING,
)


@dataclass(frozen=True, slots=True)
class IntentResult:
    intent: Intent
    language: Language
    cue: str | None = None  # the keyword or phrase from intents.json that agreed, as written there
    confidence: float = 1.0  # the model's probability for `intent` (1.0 when the rules alone decided)
    # The engine cannot tell whether this is an opt-out: ask the lead. `intent` is then the best reading
    # other than opt_out, so a caller that ignores this flag never silences a lead on a guess.
    confirm_opt_out: bool = False


def detect_intent(text: str) -> IntentResult:
    """Classify one inbound message. Pure and cheap after the first call (which loads the data files)."""
    return _detector().detect(text)


def detect_language(text: str) -> Language:
    """Hebrew letters make it Hebrew; Latin letters make it English unless the model reads them as Hebrew
    typed in Latin letters ("ma kore", "titoridu oti"); no letters at all: Hebrew."""
    return _detector().language(normalize(text))


def _script_language(normalized: str) -> Language | None:
    if has_hebrew(normalized):
        return Language.HE
    if has_latin(normalized):
        return None
    return Language.HE


def _language_of(normalized: str) -> Language:
    """The rules' own reading of the language: by script alone (Latin letters are English)."""
    return _script_language(normalized) or Language.EN


@dataclass(frozen=True, slots=True)
class RulesReading:
    result: IntentResult
    # The message is nothing but commands ("הסר", "STOP please"): the most precise thing the rules know. A
    # clause command in a longer message ("הסר. רגע לא, תתעלמו") is not that sure.
    whole_command: bool
    # The rules find an opt-out, in the last clause too, and no other intent anywhere in the message ("די,
    # תפסיקו לשלוח לי הודעות", "stop, הסירו אותי"): nothing in it points elsewhere or takes it back later
    # ("תורידו אותי. רגע, בעצם תשאירו").
    only_opt_out: bool = False
    # The latest request the rules read is a removal, and an earlier one asked to come back ("ביקשתי לחזור
    # לרשימה אבל התחרטתי, תוריד אותי שוב"): the latest request wins, but the model, which cannot see the order,
    # reads such messages as opt-ins. Never clear on this alone: the lead is asked.
    takes_back_opt_in: bool = False
    # Every word is a thanks or an acknowledgement ("תנקס יא מלך", "gracias ahi", "okei"): opt-outs often end
    # with a thank-you, and the model leans on it, but a message that is only that never asks to leave.
    only_acknowledgement: bool = False


class OptOutCall(StrEnum):
    CLEAR = "clear"  # an opt-out: remove at once, confirm once
    ASK = "ask"  # cannot tell: ask the lead
    NO = "no"  # not an opt-out


@dataclass(frozen=True, slots=True)
class OptOutThresholds:
    """Where the model's opt-out probability becomes a decision; set by the training script from
    probabilities on authors the model never saw (scripts/train_intent.py `thresholds`)."""

    clear: float  # any message at or above this is an opt-out
    clear_short: float  # a short one-clause message ("please stop texting me") at or above this is one
    short_words: int  # "short": at most this many words
    ask: float  # below the clear lines, when the rules read an opt-out: ask at or above this
    ask_against_rules: float  # the same when the rules read no opt-out (negated, quoted, another intent)
    # A plain request: at most `short_words` words, no negator, and the rules read an opt-out and nothing
    # else ("תורידו אותי מהרשימה בבקשה", "די, תפסיקו לשלוח לי הודעות"). The messages that fool the model
    # most ("unsubscribe? no way, send more", "remove me... no wait") are never plain, so this line sits far
    # below `clear`. 1.0 (never) when a model file predates it.
    clear_plain: float = 1.0

    def decide(self, probability: float, clauses: Sequence[Sequence[str]], rules: RulesReading) -> OptOutCall:
        short = len(clauses) == 1 and len(clauses[0]) <= self.short_words
        if probability >= self.clear or (short and probability >= self.clear_short):
            return OptOutCall.CLEAR
        if rules.only_acknowledgement:
            return OptOutCall.NO
        rules_say_opt_out = rules.result.intent is Intent.OPT_OUT
        if probability >= self.clear_plain and plain_request(clauses, rules, self.short_words):
            return OptOutCall.CLEAR
        if probability >= (self.ask if rules_say_opt_out else self.ask_against_rules):
            # A bare opt-out command ("הסר", "STOP please") is clear unless the model finds it unlikely too.
            return OptOutCall.CLEAR if rules_say_opt_out and rules.whole_command else OptOutCall.ASK
        if rules_say_opt_out and (rules.whole_command or rules.takes_back_opt_in):
            # Nothing but commands, read by the rules as a removal ("START STOP", "הסר"): their most precise reading
            # is never dropped on the model's word alone. Out of fold (round 8, 126 writers) no message of that
            # kind fell below the ask line at all; round 10's model put the team's "START STOP" there. A removal
            # after a return ("add me back... no, remove me") is the latest request, which the model cannot order.
            return OptOutCall.ASK
        return OptOutCall.NO


def plain_request(clauses: Sequence[Sequence[str]], rules: RulesReading, short_words: int) -> bool:
    """At most `short_words` words, no negator anywhere, and the rules read an opt-out in the last clause and
    no other intent in the message (`RulesReading.only_opt_out`)."""
    return rules.only_opt_out and sum(len(clause) for clause in clauses) <= short_words and not negated(clauses)


class IntentDetector:
    """The rules and the learned model together (see the module docstring)."""

    def __init__(self, rules: IntentEngine, model: LinearIntentModel, thresholds: OptOutThresholds) -> None:
        self.rules = rules
        self.model = model
        self.thresholds = thresholds

    def language(self, normalized: str, clauses: Sequence[Sequence[str]] | None = None) -> Language:
        by_script = _script_language(normalized)
        if by_script is not None:
            return by_script
        if clauses is None:
            clauses = clauses_of(normalized)
        return Language.HE if self.model.latin_text_is_hebrew(clauses) else Language.EN

    def detect(self, text: str) -> IntentResult:
        normalized = normalize(text)
        clauses = clauses_of(normalized)
        reading = self.rules.read_normalized(normalized, clauses)
        rule = reading.result
        language = self.language(normalized, clauses)
        if not clauses:
            return IntentResult(rule.intent, language, rule.cue)
        scores = self.model.scores(clauses, rule.intent.value)
        opt_out = scores.of(Intent.OPT_OUT.value)
        call = self.thresholds.decide(opt_out, clauses, reading)
        if call is OptOutCall.CLEAR:
            return IntentResult(Intent.OPT_OUT, language, _agreeing_cue(rule, Intent.OPT_OUT), opt_out)
        label, probability = scores.best(exclude=Intent.OPT_OUT.value)
        intent = by_precedence(rule.intent, _INTENTS[label], scores.of)
        if intent is not _INTENTS[label]:
            probability = scores.of(intent.value)
        return IntentResult(
            intent, language, _agreeing_cue(rule, intent), probability, confirm_opt_out=call is OptOutCall.ASK
        )


_INTENTS = {intent.value: intent for intent in Intent}
# The requests whose order the label rules fix (opt_in > meeting > availability) and that the rules read well.
_RANKED_REQUESTS = (Intent.OPT_IN, Intent.MEETING, Intent.AVAILABILITY)
# The rules' stronger request wins when the model gives it at least this share of the two: the model torn
# between "meet" and "talk" in "are you available for a meeting tomorrow?" (the label rule says meeting).
# Out of fold on round 12's corpus (54,706 lines): 0.25 fixes 7 lines and breaks 2; 0.2 breaks 5; 0.4 fixes 3.
PRECEDENCE_SHARE = 0.25


def by_precedence(rule: Intent, model: Intent, probability_of: Callable[[str], float]) -> Intent:
    """The model's best reading, unless the rules read a request the label rules rank above it and the
    model is torn between the two (`PRECEDENCE_SHARE`). Where the model is sure it wins: the rules' meeting
    cues also fire on "I'm in a meeting, call me later" (availability)."""
    if rule is model or rule not in _RANKED_REQUESTS or model not in _RANKED_REQUESTS:
        return model
    if _RANKED_REQUESTS.index(rule) > _RANKED_REQUESTS.index(model):
        return model
    stronger, best = probability_of(rule.value), probability_of(model.value)
    return rule if stronger >= PRECEDENCE_SHARE * (stronger + best) else model


def _agreeing_cue(rule: IntentResult, intent: Intent) -> str | None:
    return rule.cue if rule.intent is intent else None


@cache
def read_model_data() -> Mapping[str, Any]:
    """The model file shipped inside this package, each layer's `features` and `weights` filled in from the
    weights file as bytes (read once per process)."""
    data = dict(_read_json(MODEL_FILE))
    weights = memoryview(_read_package_file(MODEL_WEIGHTS_FILE))
    try:
        if len(weights) != data["weights_file"]["bytes"]:
            raise ValueError(f"{MODEL_WEIGHTS_FILE} holds {len(weights)} bytes, not {data['weights_file']['bytes']}")
        for name in ("intents", "language"):
            layer = dict(data[name])
            for part in ("features", "weights"):
                start, end = layer[part]
                layer[part] = weights[start:end]
            data[name] = layer
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{MODEL_FILE}: does not match {MODEL_WEIGHTS_FILE} ({error})") from None
    return data


@cache
def _detector() -> IntentDetector:
    data = read_model_data()
    try:
        thresholds = OptOutThresholds(**data["opt_out_thresholds"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{MODEL_FILE}: opt_out_thresholds: {error}") from None
    return IntentDetector(rules_engine(), LinearIntentModel.from_data(data), thresholds)


@cache
def read_intent_data() -> Mapping[str, Any]:
    """The parsed cue and reply file shipped inside this package (read once per process)."""
    return _read_json(DATA_FILE)


def _read_json(name: str) -> Mapping[str, Any]:
    import json

    # Bytes, not text: json decodes UTF-8 itself, several times faster than a text-mode read.
    data = json.loads(_read_package_file(name))
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected a JSON object at the top level")
    return data


def _read_package_file(name: str) -> bytes:
    # Imported here: importlib.resources costs ~15 ms of imports that only the first call needs.
    from importlib import resources

    return resources.files(DATA_PACKAGE).joinpath(name).read_bytes()


@cache
def rules_engine() -> IntentEngine:
    """The cue file's rules alone, compiled once (the learned model stacks on their reading)."""
    return IntentEngine.from_data(read_intent_data())


# ----------------------------------------------------------------------------------------------- matching

# The clause number a command reading of the whole message sorts under: before every clause.
_WHOLE_MESSAGE = -1
# "..." in a phrase lets this many unrelated words sit between its neighbours.
MAX_GAP = 3
# Hebrew proclitics stack in this order: ו, then ש/כש/לכש, then one of ב ל כ מ, then the article ה.
# ("לכש" is the literary "when": "ולכשנפגש" is ו + לכש + נפגש.)
_HEBREW_PREFIXES = frozenset(
    conj + rel + prep + article
    for conj in ("", "ו")
    for rel in ("", "ש", "כש", "לכש")
    for prep in ("", "ב", "ל", "כ", "מ")
    for article in ("", "ה")
) - {""}
_LONGEST_PREFIX = max(map(len, _HEBREW_PREFIXES))
# A stem left after cutting a prefix must keep this many letters, so "מהי" never reads as מ + "הי".
_MIN_PREFIXED_STEM = 3
_CACHE_LIMIT = 50_000

Candidates = frozenset[str]


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A keyword, phrase or command: a sequence of word sets, each optionally preceded by a gap."""

    intent: Intent
    elements: tuple[frozenset[str], ...]
    gap_before: tuple[bool, ...]
    displays: Mapping[str, str]  # word key -> spelling in intents.json, for the reported cue

    def match(
        self, words: Sequence[Candidates], start: int, gap_stops: frozenset[str] = frozenset()
    ) -> tuple[int, ...] | None:
        """Positions of each element when the pattern matches with its first word at `start`.

        A "..." gap never skips a word of `gap_stops` (negators and reversers): "don't want ... messages"
        must not read "I don't want to *stop* getting messages" as an opt-out.
        """
        return self._match_from(words, 0, start, gap_stops)

    def _match_from(
        self, words: Sequence[Candidates], element: int, position: int, gap_stops: frozenset[str]
    ) -> tuple[int, ...] | None:
        last = min(position + (MAX_GAP if self.gap_before[element] else 0), len(words) - 1)
        for at in range(position, last + 1):
            if at > position and not gap_stops.isdisjoint(words[at - 1]):
                return None
            if self.elements[element].isdisjoint(words[at]):
                continue
            if element + 1 == len(self.elements):
                return (at,)
            rest = self._match_from(words, element + 1, at + 1, gap_stops)
            if rest is not None:
                return (at, *rest)
        return None

    def cue(self, words: Sequence[Candidates], positions: Sequence[int]) -> str:
        parts: list[str] = []
        for element, at in enumerate(positions):
            if self.gap_before[element] and at != positions[element - 1] + 1:
                parts.append("…")
            key = min(self.elements[element] & words[at])
            parts.append(self.displays[key])
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class _Hit:
    pattern: _Pattern
    clause: int
    positions: tuple[int, ...]

    @property
    def order(self) -> tuple[int, int, int]:
        # Earliest cue first; at the same start the longer phrase is the better explanation.
        return (self.clause, self.positions[0], -self.positions[-1])


class _Lexicon:
    """Every word the patterns use, and which of them a message token can stand for."""

    def __init__(self, never_split: Iterable[str]) -> None:
        self.displays: dict[str, str] = {}
        self._exact_only: set[str] = set()
        self._never_split = frozenset(map(squeeze, never_split))
        self._all: dict[str, set[str]] = {}  # squeezed key -> word keys
        self._prefixable: dict[str, set[str]] = {}
        self._cache: dict[str, Candidates] = {}

    def add(self, spelling: str, where: str) -> str:
        exact_only = spelling.startswith("=")
        words = [word for clause in tokenize(spelling.removeprefix("=")) for word in clause]
        if len(words) != 1:
            raise ValueError(f"{DATA_FILE}: {where}: {spelling!r} must be a single word")
        key = words[0]
        self.displays.setdefault(key, spelling.removeprefix("="))
        if exact_only:
            self._exact_only.add(key)
        return key

    def freeze(self) -> None:
        for key in self.displays:
            self._all.setdefault(squeeze(key), set()).add(key)
            if _is_hebrew_word(key) and len(key) >= _MIN_PREFIXED_STEM and key not in self._exact_only:
                self._prefixable.setdefault(squeeze(key), set()).add(key)

    def words_of(self, clause: Sequence[str]) -> list[Candidates]:
        """`candidates` of each token of a clause (the cache read inline: this runs on every word)."""
        cache = self._cache
        found = []
        for token in clause:
            known = cache.get(token)
            found.append(self.candidates(token) if known is None else known)
        return found

    def candidates(self, token: str) -> Candidates:
        known = self._cache.get(token)
        if known is not None:
            return known
        found = self._lookup(token, self._all)
        if _is_hebrew_word(token):
            for size in range(1, self._longest_cut(token) + 1):
                if token[:size] in _HEBREW_PREFIXES:
                    found |= self._lookup(token[size:], self._prefixable)
        result = frozenset(found)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = result
        return result

    def _longest_cut(self, token: str) -> int:
        """How many leading letters may be cut off as prefixes. Never into a never_split_prefix word, also
        when that word carries prefixes of its own: "ומזמין" is ו + מזמין, never ומ + זמין."""
        longest = min(_LONGEST_PREFIX, len(token) - _MIN_PREFIXED_STEM)
        squeezed = squeeze(token)
        if not any(word in squeezed for word in self._never_split):
            return longest
        for size in range(longest + 1):
            if (size == 0 or token[:size] in _HEBREW_PREFIXES) and squeeze(token[size:]) in self._never_split:
                return size
        return longest

    def _lookup(self, word: str, index: Mapping[str, set[str]]) -> set[str]:
        # Doubled letters are a spelling choice in Hebrew (פנויה/פנוייה) but meaning in English (met/meet),
        # so an English word only reaches the squeezed index when the lead stretched it ("hiii", "stopppp").
        squeezed = squeeze(word)
        if squeezed != word or _is_hebrew_word(word):
            return set(index.get(squeezed, ()))
        return {key for key in index.get(word, ()) if key == word}


def _is_hebrew_word(word: str) -> bool:
    return "\u05d0" <= word[0] <= "\u05ea"


class IntentEngine:
    """A compiled cue file. `detect_intent` uses the one shipped with the package; tests and tools can
    compile an edited copy with `from_data`."""

    def __init__(
        self,
        lexicon: _Lexicon,
        *,
        cues: Sequence[_Pattern],
        unless: Sequence[_Pattern],
        commands: Sequence[_Pattern],
        clause_commands: Sequence[_Pattern],
        negation: _Negation,
        command_fillers: frozenset[str],
        clause_openers: frozenset[str],
        negatable: frozenset[Intent],
        recall_words: frozenset[str] = frozenset(),
        acknowledgements: frozenset[str] = frozenset(),
    ) -> None:
        self._lexicon = lexicon
        self._cues = _FirstWordIndex(cues)
        self._unless = _FirstWordIndex(unless)
        self._commands = _FirstWordIndex((*commands, *clause_commands))
        self._clause_commands = _FirstWordIndex(clause_commands)
        self._command_words = frozenset(
            key for pattern in (*commands, *clause_commands) for element in pattern.elements for key in element
        )
        self._negation = negation
        self._gap_stops = negation.negators | negation.reversers
        self._command_fillers = command_fillers
        self._clause_openers = clause_openers
        self._negatable = negatable
        self._recall_words = recall_words
        self._acknowledgements = acknowledgements

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> IntentEngine:
        """Compile a parsed cue file; a malformed one raises ValueError naming the bad entry."""
        return _Compiler(data).build()

    def detect(self, text: str) -> IntentResult:
        return self.read(text).result

    def read(self, text: str) -> RulesReading:
        """The rules' reading, with whether a command decided it with the message nothing but commands."""
        normalized = normalize(text)
        return self.read_normalized(normalized, clauses_of(normalized))

    def read_normalized(self, normalized: str, tokens: Sequence[Sequence[str]]) -> RulesReading:
        """`read` for a text already through `normalize`, with its `clauses_of`."""
        language = _language_of(normalized)
        clauses = [self._lexicon.words_of(clause) for clause in tokens]
        # Per intent, its earliest hit: (order, pattern, words, positions, by a whole-message command).
        best: dict[Intent, tuple[tuple[int, int, int], _Pattern, Sequence[Candidates], tuple[int, ...], bool]] = {}
        last_opts_out = False  # the last clause has an opt-out reading of its own (the latest request wins)
        # Where each removal the clauses ask for lies, and where the last return ends: (clause, word).
        removals: list[tuple[int, int, int]] = []
        back: tuple[int, int] | None = None
        for order, pattern, words, positions in self._command_hits(clauses):
            known = best.get(pattern.intent)
            if known is None or order < known[0]:
                best[pattern.intent] = (order, pattern, words, positions, order[0] == _WHOLE_MESSAGE)
            if pattern.intent is Intent.OPT_OUT and order[0] in (_WHOLE_MESSAGE, len(clauses) - 1):
                last_opts_out = True
            if order[0] != _WHOLE_MESSAGE:
                back = _note_request(removals, back, pattern.intent, order[0], positions)
        for hit in self._hits(clauses):
            known = best.get(hit.pattern.intent)
            if known is None or hit.order < known[0]:
                best[hit.pattern.intent] = (hit.order, hit.pattern, clauses[hit.clause], hit.positions, False)
            if hit.pattern.intent is Intent.OPT_OUT and hit.clause == len(clauses) - 1:
                last_opts_out = True
            back = _note_request(removals, back, hit.pattern.intent, hit.clause, hit.positions)
        acknowledgement = self._only_acknowledgement(clauses)
        for intent in PRECEDENCE:
            if intent in best:
                _, pattern, words, positions, by_command = best[intent]
                only = intent is Intent.OPT_OUT and len(best) == 1 and last_opts_out
                takes_back = back is not None and self._removal_after(removals, back, clauses)
                return RulesReading(
                    IntentResult(intent, language, pattern.cue(words, positions)),
                    by_command,
                    only,
                    takes_back,
                    acknowledgement,
                )
        return RulesReading(IntentResult(Intent.DEFAULT, language, None), False, only_acknowledgement=acknowledgement)

    def _only_acknowledgement(self, clauses: Sequence[Sequence[Candidates]]) -> bool:
        words = [word for clause in clauses for word in clause]
        return bool(words) and all(word and not self._acknowledgements.isdisjoint(word) for word in words)

    def _removal_after(
        self, removals: Sequence[tuple[int, int, int]], back: tuple[int, int], clauses: Sequence[Sequence[Candidates]]
    ) -> bool:
        """A removal asked for after the last return, and not one the lead only recalls ("add me back, I wrote
        unsubscribe by mistake"): no recall word between the return (or its clause's start) and the removal,
        nor in the few words after it."""
        recall = self._recall_words
        for clause, start, end in removals:
            if (clause, end) <= back:
                continue
            words = clauses[clause]
            since = back[1] + 1 if back[0] == clause else 0
            around = [*words[since:start], *words[end + 1 : end + 1 + MAX_GAP]]
            if all(recall.isdisjoint(word) for word in around):
                return True
        return False

    def _hits(self, clauses: Sequence[Sequence[Candidates]]) -> Iterator[_Hit]:
        gap_stops = self._gap_stops
        for number, words in enumerate(clauses):
            if not any(words):
                continue  # no word of the cue file: nothing to find
            cancelled: dict[Intent, set[int]] = {}
            for hit in _find(self._unless, words, number, gap_stops):
                cancelled.setdefault(hit.pattern.intent, set()).update(range(hit.positions[0], hit.positions[-1] + 1))
            for hit in _find(self._cues, words, number, gap_stops):
                covered = cancelled.get(hit.pattern.intent) if cancelled else None
                if covered is not None and not covered.isdisjoint(hit.positions):
                    continue
                if hit.pattern.intent in self._negatable and self._negation.negates(words, hit.positions[0]):
                    continue
                yield hit

    def _command_hits(
        self, clauses: Sequence[Sequence[Candidates]]
    ) -> Iterator[tuple[tuple[int, int, int], _Pattern, Sequence[Candidates], tuple[int, ...]]]:
        """Commands in a message that is nothing but commands ("STOP", "הסר", "start please", "START STOP"),
        and clause commands in a stretch of a clause that is nothing but them ("hi, please stop", "stop I'm
        not interested": a clause opener such as "I'm" starts a new stretch even without punctuation)."""
        stretches: list[tuple[int, list[Candidates]]] = []
        only_commands = True
        for number, clause in enumerate(clauses):
            for stretch, pure in self._stretches(clause):
                if pure:
                    stretches.append((number, stretch))
                else:
                    only_commands = False
        if only_commands and stretches:
            message = [word for _, stretch in stretches for word in stretch]
            for pattern, positions in self._segment(message, self._commands):
                yield (_WHOLE_MESSAGE, positions[0], 0), pattern, message, positions
            if len(stretches) == 1:
                return  # the one stretch is the whole message, just read with every command
        for number, stretch in stretches:
            for pattern, positions in self._segment(stretch, self._clause_commands):
                yield (number, -1, positions[0]), pattern, stretch, positions

    def _stretches(self, clause: Sequence[Candidates]) -> Iterator[tuple[list[Candidates], bool]]:
        """The clause cut before each clause opener, fillers dropped, each with whether it is all command words."""
        stretch: list[Candidates] = []
        pure = True
        for word in clause:
            if (stretch or not pure) and word and not self._clause_openers.isdisjoint(word):
                yield stretch, pure
                stretch, pure = [], True
            if word and not self._command_fillers.isdisjoint(word):
                continue
            if not word or self._command_words.isdisjoint(word):
                pure = False
            elif pure:
                stretch.append(word)
        if stretch or not pure:
            yield stretch, pure

    def _segment(self, words: Sequence[Candidates], index: _FirstWordIndex) -> list[tuple[_Pattern, tuple[int, ...]]]:
        """The commands on any way to read all of `words` (command words only) as commands in a row."""
        found = [(hit.pattern, hit.positions) for hit in _find(index, words, 0, frozenset())]
        # A command is on a full reading when a reading from the start reaches it and one from its end finishes.
        from_start = {0}
        for _, positions in sorted(found, key=lambda item: item[1][0]):
            if positions[0] in from_start:
                from_start.add(positions[-1] + 1)
        to_end = {len(words)}
        for _, positions in sorted(found, key=lambda item: -item[1][0]):
            if positions[-1] + 1 in to_end:
                to_end.add(positions[0])
        return [(pattern, at) for pattern, at in found if at[0] in from_start and at[-1] + 1 in to_end]


def _note_request(
    removals: list[tuple[int, int, int]],
    back: tuple[int, int] | None,
    intent: Intent,
    clause: int,
    positions: Sequence[int],
) -> tuple[int, int] | None:
    """Record a removal's place; return where the last return (opt-in) ends so far."""
    if intent is Intent.OPT_OUT:
        removals.append((clause, positions[0], positions[-1]))
    elif intent is Intent.OPT_IN and (back is None or (clause, positions[-1]) > back):
        return (clause, positions[-1])
    return back


@dataclass(frozen=True, slots=True)
class _Negation:
    """When a cue is negated: a negator right before it, or before it with only in_between words between.

    Reversers ("stop", "miss", "להפסיק") turn "don't want" into "want", so a phrase's gap never skips one
    (nor a negator): in "I don't want to stop getting listings" the "don't" belongs to "stop".
    """

    negators: frozenset[str]
    in_between: frozenset[str]
    inverted_subjects: frozenset[str]  # "can't *you* stop?": a negator right before its subject asks a question
    reversers: frozenset[str]
    # "if you don't stop sending, I'll sue": a negator after a conditional states a condition, a threat
    # that asks for what it names, so the cue after it stands.
    conditionals: frozenset[str]

    def negates(self, words: Sequence[Candidates], start: int) -> bool:
        negator = self._skip_in_between(words, start - 1)
        if negator < 0 or self.negators.isdisjoint(words[negator]):
            return False
        if not self.inverted_subjects.isdisjoint(words[negator + 1]):
            return False
        condition = self._skip_in_between(words, negator - 1)
        return condition < 0 or self.conditionals.isdisjoint(words[condition])

    def _skip_in_between(self, words: Sequence[Candidates], at: int) -> int:
        while at >= 0 and not self.in_between.isdisjoint(words[at]):
            at -= 1
        return at


class _FirstWordIndex:
    """Patterns by their first word; for a token's candidate set, the distinct patterns that can start at
    it, in the cue file's order. Cached per candidate set: most tokens start no pattern, and the
    same few candidate sets recur in every message."""

    __slots__ = ("by_key", "_rank", "_starting")
    # What `_find` needs of a pattern: the pattern, its length, and whether its words must be adjacent.
    Entry = tuple[_Pattern, int, bool]

    def __init__(self, patterns: Iterable[_Pattern]) -> None:
        by_key: dict[str, list[_Pattern]] = {}
        self._rank: dict[int, int] = {}
        for rank, pattern in enumerate(patterns):
            self._rank[id(pattern)] = rank
            for key in pattern.elements[0]:
                by_key.setdefault(key, []).append(pattern)
        self.by_key: Mapping[str, tuple[_Pattern, ...]] = {key: tuple(found) for key, found in by_key.items()}
        self._starting: dict[Candidates, tuple[_FirstWordIndex.Entry, ...]] = {}

    def starting(self, word: Candidates) -> tuple[_FirstWordIndex.Entry, ...]:
        found = self._starting.get(word)
        if found is None:
            distinct: dict[int, _Pattern] = {}
            for key in word:
                for pattern in self.by_key.get(key, ()):
                    distinct.setdefault(id(pattern), pattern)
            # In the cue file's order, not the candidate set's (string hashing): when two patterns explain
            # the same words equally well, every process names the same one as the cue.
            ranked = sorted(distinct.items(), key=lambda item: self._rank[item[0]])
            found = tuple((pattern, len(pattern.elements), not any(pattern.gap_before)) for _, pattern in ranked)
            if len(self._starting) >= _CACHE_LIMIT:
                self._starting.clear()
            self._starting[word] = found
        return found


def _find(
    index: _FirstWordIndex, words: Sequence[Candidates], clause: int, gap_stops: frozenset[str]
) -> Iterator[_Hit]:
    for start, word in enumerate(words):
        if not word:
            continue
        for pattern, size, adjacent in index.starting(word):
            # The pattern's first word is here (the index is keyed by it): a one-word pattern has matched,
            # a phrase without gaps needs only its next words in the next places, others are searched.
            if size == 1:
                yield _Hit(pattern, clause, (start,))
            elif adjacent:
                end = start + size
                if end <= len(words) and all(
                    not element.isdisjoint(words[at]) for at, element in enumerate(pattern.elements[1:], start + 1)
                ):
                    yield _Hit(pattern, clause, tuple(range(start, end)))
            else:
                positions = pattern.match(words, start, gap_stops)
                if positions is not None:
                    yield _Hit(pattern, clause, positions)


# ------------------------------------------------------------------------------------------- compilation


_NEGATION_LISTS = ("negators", "in_between", "inverted_subjects", "reversers", "conditionals")


class _Compiler:
    """Builds the matcher from the cue file's model (intent/cue_file.py validates its shape and names a bad
    entry); what only compiling can tell (a phrase's '...', an unknown '@class') is named the same way here."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        from whatsapp_crm.intent.cue_file import parse_cue_file

        self._file = parse_cue_file(data, DATA_FILE)
        never_split = [_single_word(word) for word in self._file.hebrew.never_split_prefix]
        self._lexicon = _Lexicon(never_split)
        self._classes: dict[tuple[Language, str], frozenset[str]] = {}

    def build(self) -> IntentEngine:
        cues: list[_Pattern] = []
        unless: list[_Pattern] = []
        commands: list[_Pattern] = []
        clause_commands: list[_Pattern] = []
        negation: dict[str, set[str]] = {name: set() for name in _NEGATION_LISTS}
        fillers: set[str] = set()
        openers: set[str] = set()
        recall: set[str] = set()
        acknowledgements: set[str] = set()
        for language in Language:
            where = f"cues.{language}"
            section = self._file.cues[language]
            for name, spellings in section.classes.items():
                keys = frozenset(self._lexicon.add(word, f"{where}.classes.{name}") for word in spellings)
                self._classes[(language, name)] = keys
            for name in _NEGATION_LISTS:
                words = getattr(section.negation, name)
                negation[name] |= self._keys(words, f"{where}.negation.{name}", language)
            fillers |= self._keys(section.command_fillers, f"{where}.command_fillers", language)
            openers |= self._keys(section.clause_openers, f"{where}.clause_openers", language)
            recall |= self._keys(section.recall_words, f"{where}.recall_words", language)
            acknowledgements |= self._keys(section.acknowledgements, f"{where}.acknowledgements", language)
            for intent in PRECEDENCE:
                spec = section.intents[intent]
                place = f"{where}.intents.{intent}"
                cues += self._patterns(intent, language, spec.keywords, f"{place}.keywords")
                cues += self._patterns(intent, language, spec.phrases, f"{place}.phrases")
                unless += self._patterns(intent, language, spec.unless, f"{place}.unless")
                commands += self._patterns(intent, language, spec.commands, f"{place}.commands", gaps=False)
                clause_commands += self._patterns(
                    intent, language, spec.clause_commands, f"{place}.clause_commands", gaps=False
                )
        self._lexicon.freeze()
        negatable = frozenset(self._file.negatable_intents)
        return IntentEngine(
            self._lexicon,
            cues=cues,
            unless=unless,
            commands=commands,
            clause_commands=clause_commands,
            negation=_Negation(**{name: frozenset(keys) for name, keys in negation.items()}),
            command_fillers=frozenset(fillers),
            clause_openers=frozenset(openers),
            negatable=negatable,
            recall_words=frozenset(recall),
            acknowledgements=frozenset(acknowledgements),
        )

    def _patterns(
        self, intent: Intent, language: Language, texts: Sequence[str], where: str, *, gaps: bool = True
    ) -> list[_Pattern]:
        return [self._pattern(intent, language, text, where, gaps=gaps) for text in texts]

    def _keys(self, words: Sequence[str], where: str, language: Language) -> set[str]:
        """The words of a word list, where '@name' stands for every word of classes.<name>."""
        keys: set[str] = set()
        for word in words:
            if word.startswith("@"):
                found = self._classes.get((language, word[1:]))
                if found is None:
                    raise ValueError(f"{DATA_FILE}: {where}: unknown class {word!r}")
                keys |= found
            else:
                keys.add(self._lexicon.add(word, where))
        return keys

    def _pattern(self, intent: Intent, language: Language, text: str, where: str, *, gaps: bool = True) -> _Pattern:
        elements: list[frozenset[str]] = []
        gap_before: list[bool] = []
        gap = False
        for part in text.split():
            if part == "...":
                if not gaps or not elements or gap:
                    raise ValueError(f"{DATA_FILE}: {where}: misplaced '...' in {text!r}")
                gap = True
                continue
            for element in self._element(part, language, where, text):
                elements.append(element)
                gap_before.append(gap)
                gap = False
        if not elements or gap:
            raise ValueError(f"{DATA_FILE}: {where}: {text!r} must start and end with a word")
        return _Pattern(intent, tuple(elements), tuple(gap_before), self._lexicon.displays)

    def _element(self, part: str, language: Language, where: str, text: str) -> list[frozenset[str]]:
        if "|" not in part and not part.startswith("@"):
            # A plain word may normalize to several ("opt-out" is "opt out"): each becomes an element.
            words = [word for clause in tokenize(part.removeprefix("=")) for word in clause]
            if not words:
                raise ValueError(f"{DATA_FILE}: {where}: {part!r} in {text!r} has no letters")
            if len(words) == 1:
                return [frozenset({self._lexicon.add(part, where)})]
            return [frozenset({self._lexicon.add(word, where)}) for word in words]
        keys: set[str] = set()
        for choice in part.split("|"):
            if choice.startswith("@"):
                found = self._classes.get((language, choice[1:]))
                if found is None:
                    raise ValueError(f"{DATA_FILE}: {where}: unknown class {choice!r} in {text!r}")
                keys |= found
            else:
                keys.add(self._lexicon.add(choice, where))
        return [frozenset(keys)]


def _single_word(spelling: str) -> str:
    words = [word for clause in tokenize(spelling) for word in clause]
    if len(words) != 1:
        raise ValueError(f"{DATA_FILE}: hebrew.never_split_prefix: {spelling!r} must be a single word")
    return words[0]


__all__ = [
    "Intent",
    "IntentEngine",
    "IntentResult",
    "Language",
    "PRECEDENCE",
    "detect_intent",
    "detect_language",
    "read_intent_data",
]
