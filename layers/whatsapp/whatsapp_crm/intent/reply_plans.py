"""What to answer: the reply for an intent, composed from the texts in data/intents.json. Pure, no I/O.

A plan is either plain text or text with up to three reply buttons (WhatsApp's limit), each button a
meeting slot or an answer to "shall we remove you?", whose id comes back in the webhook when the lead taps it.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from whatsapp_crm.intent.engine import DATA_FILE, Intent, IntentEngine, Language, read_intent_data
from whatsapp_crm.schedule import (
    BusinessHours,
    Opening,
    Slot,
    day_phrase,
    format_date,
    format_time,
    parse_slot_id,
    weekday_name,
)
from whatsapp_crm.send_limits import MAX_BUTTON_ID, MAX_BUTTON_TITLE, MAX_TEXT_BODY
from whatsapp_crm.send_limits import MAX_INTERACTIVE_BODY as MAX_BUTTON_BODY
from whatsapp_crm.send_limits import MAX_REPLY_BUTTONS as MAX_BUTTONS

ReplyKind = Literal["text", "buttons"]

# The two answers to the opt-out question; the webhook brings the id back when the lead taps one.
OPT_OUT_ANSWER_PREFIX = "opt_out:"
REMOVE_ME_ID = f"{OPT_OUT_ANSWER_PREFIX}remove"
KEEP_ME_ID = f"{OPT_OUT_ANSWER_PREFIX}stay"


@dataclass(frozen=True, slots=True)
class SlotButton:
    id: str
    title: str

    def __post_init__(self) -> None:
        if not 0 < len(self.id) <= MAX_BUTTON_ID:
            raise ValueError(f"button id must be 1-{MAX_BUTTON_ID} characters: {self.id!r}")
        if not 0 < len(self.title) <= MAX_BUTTON_TITLE:
            raise ValueError(f"button title must be 1-{MAX_BUTTON_TITLE} characters: {self.title!r}")


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    kind: ReplyKind
    body: str
    buttons: tuple[SlotButton, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "buttons":
            if not 0 < len(self.buttons) <= MAX_BUTTONS:
                raise ValueError(f"a button reply needs 1-{MAX_BUTTONS} buttons, got {len(self.buttons)}")
            if len({button.id for button in self.buttons}) != len(self.buttons) or len(
                {button.title for button in self.buttons}
            ) != len(self.buttons):
                raise ValueError("button ids and titles must be unique within a reply")
        elif self.buttons:
            raise ValueError("a text reply has no buttons")
        limit = MAX_BUTTON_BODY if self.kind == "buttons" else MAX_TEXT_BODY
        if not 0 < len(self.body) <= limit:
            raise ValueError(f"a {self.kind} reply body must be 1-{limit} characters, got {len(self.body)}")


def plan_reply(
    intent: Intent,
    language: Language,
    now: datetime,
    hours: BusinessHours,
    booking_url: str | None = None,
) -> ReplyPlan:
    """The auto-reply to a message of `intent`, written in `language`, as of `now`."""
    texts = _texts(language)
    if intent is Intent.MEETING:
        return _offer(texts["meeting"], language, now, hours, booking_url)
    if intent is Intent.AVAILABILITY:
        return ReplyPlan("text", _availability(texts, language, now, hours))
    return ReplyPlan("text", texts[intent.value])


def plan_opt_out_question(language: Language) -> ReplyPlan:
    """For a message that may be an opt-out: ask, with a "remove me" and a "keep me" button."""
    texts = _texts(language)
    buttons = (SlotButton(REMOVE_ME_ID, texts["remove_button"]), SlotButton(KEEP_ME_ID, texts["stay_button"]))
    return ReplyPlan("buttons", texts["confirm_opt_out"], buttons)


def plan_opt_out_kept(language: Language) -> ReplyPlan:
    """The answer to a tap on "keep me": nothing was removed."""
    return ReplyPlan("text", _texts(language)["opt_out_kept"])


def plan_slot_confirmation(slot_id: str, language: Language, now: datetime, hours: BusinessHours) -> ReplyPlan | None:
    """The confirmation for a tapped slot button, or None when the slot cannot be booked any more
    (unknown id, in the past, too far ahead or outside business hours): answer with `plan_slot_reoffer`."""
    start = parse_slot_id(slot_id)
    if start is None or not hours.can_book(start, now):
        return None
    local = start.astimezone(hours.zone)
    weekday = weekday_name(local, language)
    body = _texts(language)["slot_confirmed"].format(
        day=f"ביום {weekday}" if language is Language.HE else weekday,
        date=format_date(local, language),
        time=format_time(local),
    )
    return ReplyPlan("text", body)


def plan_slot_reoffer(
    language: Language, now: datetime, hours: BusinessHours, booking_url: str | None = None
) -> ReplyPlan:
    """A polite "that time is gone" with fresh slots, for a stale or unknown slot button."""
    return _offer(_texts(language)["slot_taken"], language, now, hours, booking_url)


def _offer(
    opening_line: str, language: Language, now: datetime, hours: BusinessHours, booking_url: str | None
) -> ReplyPlan:
    texts = _texts(language)
    slots = hours.offer_slots(now, count=MAX_BUTTONS)
    body = f"{opening_line} {texts['pick_slot'] if slots else texts['no_slots']}"
    if booking_url:
        body += "\n\n" + texts["booking_link"].format(booking_url=booking_url)
    if not slots:
        return ReplyPlan("text", body)
    return ReplyPlan("buttons", body, _buttons(slots, language, now))


def _buttons(slots: Sequence[Slot], language: Language, now: datetime) -> tuple[SlotButton, ...]:
    return tuple(SlotButton(slot.id, slot.title(language, now)) for slot in slots)


def _availability(texts: Mapping[str, str], language: Language, now: datetime, hours: BusinessHours) -> str:
    today = hours.today_hours(now)
    if any(opening.end.astimezone(UTC) > now.astimezone(UTC) for opening in today):
        spans = texts["hours_joiner"].join(_span(opening) for opening in today)
        return texts["availability_today"].format(hours=spans)
    back = hours.next_opening(now)
    return texts["availability_later"].format(day=day_phrase(back, language, now), time=format_time(back))


def _span(opening: Opening) -> str:
    # An opening that runs to midnight ends at 0:00 the next day; people write that as 24:00.
    end = "24:00" if opening.end.date() > opening.start.date() else format_time(opening.end)
    return f"{format_time(opening.start)}-{end}"


# ---------------------------------------------------------------------------------------------- texts

# The placeholders each text must use, exactly: a missing one would drop information from the reply and
# an unknown one could not be filled.
_PLACEHOLDERS: Mapping[str, frozenset[str]] = {
    "greeting": frozenset(),
    "availability_today": frozenset({"hours"}),
    "availability_later": frozenset({"day", "time"}),
    "hours_joiner": frozenset(),
    "meeting": frozenset(),
    "slot_taken": frozenset(),
    "pick_slot": frozenset(),
    "no_slots": frozenset(),
    "booking_link": frozenset({"booking_url"}),
    "slot_confirmed": frozenset({"day", "date", "time"}),
    "default": frozenset(),
    "opt_out": frozenset(),
    "opt_in": frozenset(),
    "confirm_opt_out": frozenset(),
    "remove_button": frozenset(),
    "stay_button": frozenset(),
    "opt_out_kept": frozenset(),
}
# Texts that become a button title: WhatsApp's limit for those.
_BUTTON_TITLES = frozenset({"remove_button", "stay_button"})
# Generous for the texts the business edits; what WhatsApp enforces is checked on the composed plan.
_MAX_TEXT = 700


def validate_intent_data(data: Mapping[str, Any]) -> None:
    """Check an edited intents.json (parsed) completely: cues and every reply text. Raises ValueError."""
    IntentEngine.from_data(data)
    for language in Language:
        _compile_texts(data, language)


@cache
def _texts(language: Language) -> Mapping[str, str]:
    return _compile_texts(read_intent_data(), language)


def _compile_texts(data: Mapping[str, Any], language: Language) -> Mapping[str, str]:
    replies = data.get("replies")
    section = replies.get(language.value) if isinstance(replies, dict) else None
    where = f"{DATA_FILE}: replies.{language.value}"
    if not isinstance(section, dict):
        raise ValueError(f"{where} must be an object")
    texts: dict[str, str] = {}
    for key, expected in _PLACEHOLDERS.items():
        text = section.get(key)
        limit = MAX_BUTTON_TITLE if key in _BUTTON_TITLES else _MAX_TEXT
        if not isinstance(text, str) or not text or len(text) > limit:
            raise ValueError(f"{where}.{key} must be a text of 1-{limit} characters")
        used = _placeholders(text, f"{where}.{key}")
        if used != expected:
            wanted = ", ".join(f"{{{name}}}" for name in sorted(expected)) or "no placeholders"
            raise ValueError(f"{where}.{key} must use {wanted}, found {sorted(used)}")
        texts[key] = text
    return texts


def _placeholders(text: str, where: str) -> frozenset[str]:
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as error:
        raise ValueError(f"{where}: {error} (write {{{{ or }}}} for a literal brace)") from None
    return frozenset(fields)
