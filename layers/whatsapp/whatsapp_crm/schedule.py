"""Business hours and meeting slots, in the business's own time zone. Pure: `now` is always passed in.

Hours are written the way people say them, several ranges separated by ";":

    sun-thu 09:00-18:00; fri 09:00-13:00
    sun,tue,thu 09:00-13:00,16:00-19:00

Days are English names or their first three letters; a range like "fri-sun" wraps over the weekend
(the week starts on Sunday, as in Israel). Times are 24-hour HH:MM, an end of 24:00 means midnight,
and days not listed are closed. Slots are whole hours inside those ranges, identified by an id such as
"slot:2026-11-26T10:00+02:00" that a WhatsApp button carries and hands back when tapped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from whatsapp_crm.send_limits import MAX_BUTTON_TITLE as MAX_BUTTON_TITLE

DEFAULT_SPEC = "sun-thu 09:00-18:00"
DEFAULT_TIMEZONE = "Asia/Jerusalem"

# Slots further ahead than this are never offered, so an older id for a date this far out was not ours.
SLOT_HORIZON = timedelta(days=28)
SLOT_ID_PREFIX = "slot:"

_DAY_NAMES = {  # name -> Python weekday (Monday = 0)
    "sun": 6, "sunday": 6,
    "mon": 0, "monday": 0,
    "tue": 1, "tues": 1, "tuesday": 1,
    "wed": 2, "wednesday": 2,
    "thu": 3, "thur": 3, "thurs": 3, "thursday": 3,
    "fri": 4, "friday": 4,
    "sat": 5, "saturday": 5,
}  # fmt: skip
_WEEK_FROM_SUNDAY = (6, 0, 1, 2, 3, 4, 5)
_WEEKDAY_WORDS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_ENTRY = re.compile(r"^(?P<days>[a-z][a-z,\s-]*?)\s+(?P<ranges>\d.*)$")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_SLOT_ID = re.compile(r"^slot:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}[+-]\d{2}:\d{2}$")

_MINUTES_PER_DAY = 24 * 60
_EXAMPLE = '"sun-thu 09:00-18:00; fri 09:00-13:00"'


@dataclass(frozen=True, slots=True)
class Opening:
    """One concrete stretch of open time on one date, both ends aware and in the business time zone."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Slot:
    start: datetime  # aware, in the business time zone
    minutes: int = 60

    @property
    def id(self) -> str:
        return SLOT_ID_PREFIX + self.start.isoformat(timespec="minutes")

    @property
    def end(self) -> datetime:
        return (self.start.astimezone(UTC) + timedelta(minutes=self.minutes)).astimezone(self.start.tzinfo)

    def title(self, language: str, now: datetime) -> str:
        """A button label of at most 20 characters: "מחר 10:00", "יום ה׳ 26.11 10:00", "Thu 26 Nov 10:00"."""
        _check_language(language)
        relative = _RELATIVE_DAYS[language].get(_days_between(now, self.start))
        weekday = self.start.weekday()
        if relative:
            day = relative.capitalize()
        elif language == "he":
            day = f"יום {_HEBREW_DAY_LETTERS[weekday]}׳ {format_date(self.start, language)}"
        else:
            day = f"{_ENGLISH_DAY_NAMES[weekday][:3]} {format_date(self.start, language)}"
        return f"{day} {format_time(self.start)}"[:MAX_BUTTON_TITLE]


def parse_slot_id(slot_id: str) -> datetime | None:
    """The aware start time a slot id names, or None when the text is not a slot id."""
    if len(slot_id) > 64 or not _SLOT_ID.match(slot_id):
        return None
    try:
        return datetime.fromisoformat(slot_id.removeprefix(SLOT_ID_PREFIX))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Window:
    start: int  # minutes after local midnight
    end: int  # exclusive; 1440 is midnight at the end of the day


@dataclass(frozen=True)
class BusinessHours:
    zone: ZoneInfo
    weekly: tuple[tuple[_Window, ...], ...]  # indexed by Python weekday (Monday = 0)
    spec: str

    @classmethod
    def parse(cls, spec: str = DEFAULT_SPEC, timezone: str = DEFAULT_TIMEZONE) -> BusinessHours:
        """Read an hours spec like "sun-thu 09:00-18:00; fri 09:00-13:00"; a bad spec raises ValueError."""
        zone = _zone(timezone)
        by_day: list[list[_Window]] = [[] for _ in range(7)]
        entries = [entry.strip() for entry in spec.strip().lower().split(";") if entry.strip()]
        if not entries:
            raise ValueError(f"business hours are empty; expected something like {_EXAMPLE}")
        for entry in entries:
            days, windows = _parse_entry(entry)
            for day in days:
                by_day[day].extend(windows)
        for day, windows in enumerate(by_day):
            windows.sort(key=lambda window: window.start)
            for earlier, later in zip(windows, windows[1:], strict=False):
                if later.start < earlier.end:
                    raise ValueError(f"business hours overlap on {_WEEKDAY_WORDS[day]} in {spec!r}")
        return cls(zone, tuple(tuple(windows) for windows in by_day), spec)

    def is_open(self, now: datetime) -> bool:
        moment = _utc(now)
        return any(opening.start <= moment < opening.end for opening in self.openings_on(self._local_date(now)))

    def today_hours(self, now: datetime) -> tuple[Opening, ...]:
        """Today's openings (in the business time zone), empty on a closed day."""
        return self.openings_on(self._local_date(now))

    def next_opening(self, now: datetime) -> datetime:
        """When the business is next open: `now` itself (in the business zone) while it is open."""
        if self.is_open(now):
            return now.astimezone(self.zone)
        moment = _utc(now)
        for opening in self._openings_from(self._local_date(now), days=8):
            if opening.start > moment:
                return opening.start
        raise ValueError("business hours have no opening at all")  # pragma: no cover - parse forbids this

    def offer_slots(
        self,
        now: datetime,
        count: int = 3,
        slot_minutes: int = 60,
        lead_time: timedelta = timedelta(hours=2),
    ) -> list[Slot]:
        """Up to `count` slots on different business days, on the hour (or at opening), `lead_time` from now.

        Each day offers the first hour from its preferred time on (an hour after opening, then mid-day,
        alternating), or the first hour that is far enough ahead, so the lead gets morning and afternoon
        choices on the next few business days rather than three neighbouring hours.
        """
        if not 1 <= count <= 10 or not 15 <= slot_minutes <= 12 * 60 or lead_time < timedelta(0):
            raise ValueError("offer_slots needs 1 <= count <= 10, 15 <= slot_minutes <= 720 and lead_time >= 0")
        earliest = _utc(now) + lead_time
        slots: list[Slot] = []
        day = self._local_date(now)
        last_day = self._local_date(now + SLOT_HORIZON)
        while day <= last_day and len(slots) < count:
            choices = self._slot_starts(day, earliest, slot_minutes)
            if choices:
                preferred = self._preferred_start(day, afternoon=len(slots) % 2 == 1)
                start = next((choice for choice in choices if _utc(choice) >= preferred), choices[-1])
                slots.append(Slot(start, slot_minutes))
            day += timedelta(days=1)
        return slots

    def can_book(self, start: datetime, now: datetime, slot_minutes: int = 60) -> bool:
        """Whether a slot starting at `start` has not begun yet (or begins now), is within reach and inside
        one opening. "Begins now" matters with no lead time, where offer_slots may offer the current minute."""
        begin = _utc(start)
        if not _utc(now) <= begin <= _utc(now) + SLOT_HORIZON:
            return False
        end = begin + timedelta(minutes=slot_minutes)
        return any(
            opening.start <= begin and end <= opening.end for opening in self.openings_on(self._local_date(start))
        )

    def openings_on(self, day: date) -> tuple[Opening, ...]:
        return tuple(
            Opening(_local(day, window.start, self.zone), _local(day, window.end, self.zone))
            for window in self.weekly[day.weekday()]
        )

    def _openings_from(self, first: date, days: int) -> Iterator[Opening]:
        for offset in range(days):
            yield from self.openings_on(first + timedelta(days=offset))

    def _slot_starts(self, day: date, earliest: datetime, slot_minutes: int) -> list[datetime]:
        starts: list[datetime] = []
        for window in self.weekly[day.weekday()]:
            opening_end = _local(day, window.end, self.zone)
            # Whole hours, plus the opening minute itself when it is not on the hour ("08:30-09:45").
            minutes = sorted({window.start} | set(range(-(-window.start // 60) * 60, window.end, 60)))
            for minute in minutes:
                start = _local(day, minute, self.zone)
                if (start.hour, start.minute) != divmod(minute, 60):
                    continue  # a wall-clock time skipped by a DST change does not exist
                if start >= earliest and start.astimezone(UTC) + timedelta(minutes=slot_minutes) <= opening_end:
                    starts.append(start)
        return starts

    def _preferred_start(self, day: date, *, afternoon: bool) -> datetime:
        windows = self.weekly[day.weekday()]
        first, last = windows[0].start, windows[-1].end
        minutes = (first + last) // 2 if afternoon else first + 60
        return _utc(_local(day, minutes, self.zone))

    def _local_date(self, moment: datetime) -> date:
        return _utc(moment).astimezone(self.zone).date()


# --------------------------------------------------------------------------------------------- wording

# Own tables rather than strftime: the Lambda locale must not decide how a day is written. By Python weekday.
_HEBREW_DAY_LETTERS = ("ב", "ג", "ד", "ה", "ו", "ש", "א")
_HEBREW_DAY_NAMES = ("שני", "שלישי", "רביעי", "חמישי", "שישי", "שבת", "ראשון")
_ENGLISH_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ENGLISH_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_RELATIVE_DAYS = {"he": {0: "היום", 1: "מחר"}, "en": {0: "today", 1: "tomorrow"}}


def weekday_name(moment: datetime, language: str) -> str:
    """ "חמישי" or "Thursday"."""
    _check_language(language)
    return (_HEBREW_DAY_NAMES if language == "he" else _ENGLISH_DAY_NAMES)[moment.weekday()]


def day_phrase(moment: datetime, language: str, now: datetime) -> str:
    """How to say the day of `moment` seen from `now`: "מחר" / "ביום ראשון", "tomorrow" / "on Sunday"."""
    _check_language(language)
    relative = _RELATIVE_DAYS[language].get(_days_between(now, moment))
    if relative:
        return relative
    return f"ביום {weekday_name(moment, language)}" if language == "he" else f"on {weekday_name(moment, language)}"


def format_time(moment: datetime) -> str:
    """ "9:00", "18:30": the way hours appear in messages."""
    return f"{moment.hour}:{moment.minute:02d}"


def format_date(moment: datetime, language: str) -> str:
    """ "26.11" in Hebrew (day.month), "26 Nov" in English."""
    _check_language(language)
    return f"{moment.day}.{moment.month}" if language == "he" else f"{moment.day} {_ENGLISH_MONTHS[moment.month - 1]}"


# --------------------------------------------------------------------------------------------- helpers


def _parse_entry(entry: str) -> tuple[list[int], list[_Window]]:
    matched = _ENTRY.match(entry)
    if matched is None:
        raise ValueError(
            f"business hours entry {entry!r} is not '<days> HH:MM-HH:MM'; expected something like {_EXAMPLE}"
        )
    days = [day for part in matched["days"].split(",") if part.strip() for day in _parse_days(part.strip(), entry)]
    windows = [_parse_range(part.strip(), entry) for part in matched["ranges"].split(",") if part.strip()]
    if not days or not windows:
        raise ValueError(f"business hours entry {entry!r} needs both days and times, e.g. {_EXAMPLE}")
    return days, windows


def _parse_days(part: str, entry: str) -> list[int]:
    names = [name.strip() for name in part.split("-")]
    unknown = [name for name in names if name not in _DAY_NAMES]
    if unknown or len(names) > 2:
        raise ValueError(f"business hours entry {entry!r}: {part!r} is not a day or a day range like 'sun-thu'")
    if len(names) == 1:
        return [_DAY_NAMES[names[0]]]
    first = _WEEK_FROM_SUNDAY.index(_DAY_NAMES[names[0]])
    last = _WEEK_FROM_SUNDAY.index(_DAY_NAMES[names[1]])
    return [_WEEK_FROM_SUNDAY[(first + offset) % 7] for offset in range((last - first) % 7 + 1)]


def _parse_range(part: str, entry: str) -> _Window:
    matched = _RANGE.match(part)
    if matched is None:
        raise ValueError(f"business hours entry {entry!r}: {part!r} is not a time range like '09:00-18:00'")
    start_hour, start_minute, end_hour, end_minute = (int(value) for value in matched.groups())
    start = start_hour * 60 + start_minute
    end = end_hour * 60 + end_minute
    if start_hour > 23 or start_minute > 59 or end_minute > 59 or end > _MINUTES_PER_DAY:
        raise ValueError(f"business hours entry {entry!r}: {part!r} is not a valid time of day")
    if end <= start:
        raise ValueError(f"business hours entry {entry!r}: {part!r} must end after it starts (no overnight ranges)")
    return _Window(start, end)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as {DEFAULT_TIMEZONE!r}") from None


def _local(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """Wall-clock `minutes` after midnight on `day`, as a real instant (a time skipped by DST moves forward)."""
    wall = datetime.combine(day, time(), tzinfo=zone) + timedelta(minutes=minutes)
    return wall.astimezone(UTC).astimezone(zone)


def _days_between(now: datetime, moment: datetime) -> int:
    """Calendar days from `now` to `moment`, counted in `moment`'s time zone (0 = same day)."""
    return (moment.date() - _utc(now).astimezone(moment.tzinfo).date()).days


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("business-hours maths needs an aware datetime (with a time zone)")
    return moment.astimezone(UTC)


def _check_language(language: str) -> None:
    if language not in _RELATIVE_DAYS:
        raise ValueError(f"unsupported language {language!r}; expected 'he' or 'en'")
