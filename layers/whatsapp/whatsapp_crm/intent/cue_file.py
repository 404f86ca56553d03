"""The shape of data/intents.json, as a pydantic model: a bad entry is named by its path in the file.

Imported by the engine's compiler on first use (pydantic is not needed to import the engine). This checks
structure (sections present, lists of non-empty strings, known intents and languages, reply
texts as strings). What only the compiler can tell (a phrase's "...", an unknown '@class', a word that
normalizes to two) is checked by `IntentEngine.from_data`; reply placeholders by `replies`. Both raise
ValueError naming the entry, as this module does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from whatsapp_crm.intent.engine import Intent, Language

Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Words = list[Word]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntentCues(_Strict):
    keywords: Words = Field(default_factory=list)
    phrases: Words = Field(default_factory=list)
    commands: Words = Field(default_factory=list)
    clause_commands: Words = Field(default_factory=list)
    unless: Words = Field(default_factory=list)


class Negation(_Strict):
    negators: Words = Field(default_factory=list)
    in_between: Words = Field(default_factory=list)
    inverted_subjects: Words = Field(default_factory=list)
    reversers: Words = Field(default_factory=list)
    conditionals: Words = Field(default_factory=list)


class LanguageCues(_Strict):
    classes: dict[Word, Words] = Field(default_factory=dict)
    negation: Negation
    command_fillers: Words = Field(default_factory=list)
    clause_openers: Words = Field(default_factory=list)
    # Words that make a removal a memory, not a request: "ביקשתי", "asked" before it, "by mistake" after it.
    recall_words: Words = Field(default_factory=list)
    # A message made of nothing but these ("תודה אחי", "tnx", "okei") is never asked about removal.
    acknowledgements: Words = Field(default_factory=list)
    intents: dict[Intent, IntentCues]


class HebrewSettings(_Strict):
    never_split_prefix: Words = Field(default_factory=list)


class CueFile(_Strict):
    about: list[str] = Field(default_factory=list)
    hebrew: HebrewSettings
    negatable_intents: list[Intent] = Field(default_factory=list)
    cues: dict[Language, LanguageCues]
    replies: dict[Language, dict[str, Any]]


def parse_cue_file(data: Mapping[str, Any], where: str) -> CueFile:
    """The validated file, or ValueError naming every bad entry by its path ("cues.en.intents.greeting...")."""
    try:
        parsed = CueFile.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
        )
        raise ValueError(f"{where}: {problems}") from None
    for language in Language:
        cues = parsed.cues.get(language)
        if cues is None:
            raise ValueError(f"{where}: cues.{language}: missing")
        for intent in Intent:
            if intent is not Intent.DEFAULT and intent not in cues.intents:
                raise ValueError(f"{where}: cues.{language}.intents.{intent}: missing")
    return parsed
