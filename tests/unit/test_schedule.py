"""Business hours and meeting slots in Asia/Jerusalem: days, weekends, midnight, after hours and DST.

Dates used: 26 Nov 2026 is a Thursday, 27 Nov a Friday, 28 Nov a Saturday, 29 Nov a Sunday.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whatsapp_crm.schedule import (
    DEFAULT_SPEC,
    DEFAULT_TIMEZONE,
    MAX_BUTTON_TITLE,
    SLOT_HORIZON,
    BusinessHours,
    Slot,
    day_phrase,
    format_date,
    format_time,
    parse_slot_id,
    weekday_name,
)

ISRAEL = ZoneInfo("Asia/Jerusalem")
WEEK_AND_FRIDAY = "sun-thu 09:00-18:00; fri 09:00-13:00"


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ISRAEL)


@pytest.fixture
def hours() -> BusinessHours:
    return BusinessHours.parse(WEEK_AND_FRIDAY, DEFAULT_TIMEZONE)


# ------------------------------------------------------------------------------------------------ parsing


def test_the_default_is_sunday_to_thursday_nine_to_six_in_jerusalem() -> None:
    default = BusinessHours.parse()
    assert (DEFAULT_SPEC, DEFAULT_TIMEZONE) == ("sun-thu 09:00-18:00", "Asia/Jerusalem")
    assert default.zone.key == "Asia/Jerusalem"
    assert [default.is_open(at(2026, 11, day, 12)) for day in (22, 26, 27, 28)] == [True, True, False, False]


@pytest.mark.parametrize(
    "spec",
    [
        "sun-thu 09:00-18:00; fri 09:00-13:00",
        "SUN-THU 9:00-18:00 ;Fri 09:00 - 13:00;",
        "sunday,monday,tuesday,wednesday,thursday 09:00-18:00; friday 09:00-13:00",
        "sun - thu 09:00-18:00; fri 09:00-13:00",
    ],
)
def test_equivalent_specs_give_the_same_hours(spec: str, hours: BusinessHours) -> None:
    assert BusinessHours.parse(spec).weekly == hours.weekly


def test_a_day_can_have_several_ranges_and_a_range_can_wrap_over_the_weekend() -> None:
    # Given split shifts on some weekdays and a weekend range written across Saturday
    split = BusinessHours.parse("sun,tue,thu 09:00-13:00,16:00-19:00; fri-sat 10:00-12:00")
    # Then the lunch break is closed and the afternoon open
    assert not split.is_open(at(2026, 11, 26, 14))
    assert split.is_open(at(2026, 11, 26, 16, 30))
    # And "fri-sat" covers Saturday, while days never listed (Monday, Wednesday) are closed
    assert split.is_open(at(2026, 11, 28, 11))
    assert [(o.start.hour, o.end.hour) for o in split.today_hours(at(2026, 11, 29, 8))] == [(9, 13), (16, 19)]
    assert split.today_hours(at(2026, 11, 23, 10)) == ()
    assert split.today_hours(at(2026, 11, 25, 10)) == ()
    # And a range may wrap from Friday over Saturday into Sunday
    wrapped = BusinessHours.parse("fri-sun 10:00-12:00")
    assert [bool(wrapped.today_hours(at(2026, 11, day, 8))) for day in (26, 27, 28, 29, 30)] == [
        False,
        True,
        True,
        True,
        False,
    ]


def test_a_range_may_end_at_midnight() -> None:
    late = BusinessHours.parse("thu 20:00-24:00")
    assert late.is_open(at(2026, 11, 26, 23, 59))
    assert not late.is_open(at(2026, 11, 27, 0, 0))


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("", "empty"),
        ("   ;  ", "empty"),
        ("sun-thu", "is not '<days> HH:MM-HH:MM'"),
        ("sun-thu 9-18", "is not a time range"),
        ("funday 09:00-18:00", "'funday' is not a day"),
        ("sun-mon-tue 09:00-18:00", "is not a day or a day range"),
        ("sun 18:00-09:00", "must end after it starts"),
        ("sun 09:00-09:00", "must end after it starts"),
        ("sun 25:00-26:00", "is not a valid time of day"),
        ("sun 09:60-10:00", "is not a valid time of day"),
        ("sun 09:00-24:30", "is not a valid time of day"),
        ("sun 09:00-18:00; sun 17:00-19:00", "overlap on sunday"),
        ("09:00-18:00", "is not '<days> HH:MM-HH:MM'"),
    ],
)
def test_an_invalid_spec_is_a_value_error_that_says_what_is_wrong(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        BusinessHours.parse(spec)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd"])
def test_an_unknown_time_zone_is_a_value_error(zone: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        BusinessHours.parse(DEFAULT_SPEC, zone)


# -------------------------------------------------------------------------------------------- open or not


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (at(2026, 11, 26, 8, 59), False),
        (at(2026, 11, 26, 9, 0), True),  # opening minute counts
        (at(2026, 11, 26, 17, 59), True),
        (at(2026, 11, 26, 18, 0), False),  # closing minute does not
        (at(2026, 11, 27, 12, 59), True),  # Friday morning
        (at(2026, 11, 27, 13, 0), False),
        (at(2026, 11, 28, 12, 0), False),  # Saturday
        (at(2026, 11, 29, 0, 0), False),  # midnight into Sunday
        (datetime(2026, 11, 26, 7, 0, tzinfo=UTC), True),  # 09:00 in Israel (UTC+2 in winter)
        (datetime(2026, 11, 26, 6, 59, tzinfo=UTC), False),
    ],
)
def test_is_open_follows_the_local_clock(hours: BusinessHours, moment: datetime, open_: bool) -> None:
    assert hours.is_open(moment) is open_


def test_naive_datetimes_are_refused(hours: BusinessHours) -> None:
    with pytest.raises(ValueError, match="aware"):
        hours.is_open(datetime(2026, 11, 26, 12))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2026, 11, 26, 12), at(2026, 11, 26, 12)),  # open now: now
        (at(2026, 11, 26, 7), at(2026, 11, 26, 9)),  # before opening: later today
        (at(2026, 11, 26, 0, 0), at(2026, 11, 26, 9)),  # midnight
        (at(2026, 11, 26, 19), at(2026, 11, 27, 9)),  # Thursday evening: Friday morning
        (at(2026, 11, 27, 14), at(2026, 11, 29, 9)),  # Friday afternoon: Sunday
        (at(2026, 11, 28, 20), at(2026, 11, 29, 9)),  # Saturday night: Sunday
        (datetime(2026, 11, 26, 22, 30, tzinfo=UTC), at(2026, 11, 27, 9)),  # 22:30 UTC Thu is 00:30 Fri in Israel
    ],
)
def test_next_opening(hours: BusinessHours, now: datetime, expected: datetime) -> None:
    assert hours.next_opening(now) == expected
    assert hours.next_opening(now).tzinfo == ISRAEL


def test_today_hours_are_concrete_local_times(hours: BusinessHours) -> None:
    friday = hours.today_hours(at(2026, 11, 27, 20))
    assert [(o.start, o.end) for o in friday] == [(at(2026, 11, 27, 9), at(2026, 11, 27, 13))]
    assert hours.today_hours(at(2026, 11, 28, 10)) == ()


# ----------------------------------------------------------------------------------------------------- DST


def test_israel_dst_2026_runs_from_friday_27_march_to_sunday_25_october_per_zoneinfo() -> None:
    # Verified with the zone database instead of trusting the dates: UTC+3 in summer, UTC+2 in winter
    offsets = {day: at(2026, 3, day, 12).utcoffset() for day in (26, 27)} | {
        (10, day): at(2026, 10, day, 12).utcoffset() for day in (24, 25)
    }
    assert offsets == {
        26: timedelta(hours=2),
        27: timedelta(hours=3),
        (10, 24): timedelta(hours=3),
        (10, 25): timedelta(hours=2),
    }


def test_hours_stay_on_the_local_clock_across_the_autumn_change(hours: BusinessHours) -> None:
    # Given Thursday evening 22 Oct 2026, before DST ends on Sunday 25 Oct
    slots = hours.offer_slots(at(2026, 10, 22, 20))
    # Then every slot is at a whole local hour, and the offset in the id follows the season
    assert [slot.id for slot in slots] == [
        "slot:2026-10-23T10:00+03:00",
        "slot:2026-10-25T14:00+02:00",
        "slot:2026-10-26T10:00+02:00",
    ]
    assert hours.next_opening(at(2026, 10, 24, 23)) == at(2026, 10, 25, 9)
    assert hours.next_opening(at(2026, 10, 24, 23)).utcoffset() == timedelta(hours=2)


def test_hours_stay_on_the_local_clock_across_the_spring_change(hours: BusinessHours) -> None:
    # Given Thursday evening 26 Mar 2026; clocks jump from 02:00 to 03:00 on Friday 27 Mar
    slots = hours.offer_slots(at(2026, 3, 26, 20))
    assert [slot.id for slot in slots] == [
        "slot:2026-03-27T10:00+03:00",
        "slot:2026-03-29T14:00+03:00",
        "slot:2026-03-30T10:00+03:00",
    ]
    assert hours.is_open(datetime(2026, 3, 27, 6, 0, tzinfo=UTC))  # 09:00 IDT
    assert not hours.is_open(datetime(2026, 3, 27, 5, 59, tzinfo=UTC))


def test_a_range_that_starts_in_the_hour_skipped_by_dst_opens_at_three() -> None:
    # Given hours from 02:00 on Friday 27 Mar 2026, when clocks jump from 02:00 straight to 03:00
    early = BusinessHours.parse("fri 02:00-05:00")
    # Then that day opens at 03:00 IDT, and the slot offered says 3:00, not a time that never happened
    assert [o.start for o in early.today_hours(at(2026, 3, 27, 12))] == [datetime(2026, 3, 27, 0, 0, tzinfo=UTC)]
    slot = early.offer_slots(at(2026, 3, 26, 12), count=1, lead_time=timedelta(0))[0]
    assert (slot.id, slot.title("en", at(2026, 3, 26, 12))) == ("slot:2026-03-27T03:00+03:00", "Tomorrow 3:00")


def test_the_repeated_autumn_hour_is_open_both_times() -> None:
    # Given a Sunday night range over the fall-back (02:00 IDT -> 01:00 IST on 25 Oct 2026)
    night = BusinessHours.parse("sun 00:00-02:00")
    # Then 01:30 is open the first time (UTC 22:30) and the second time (UTC 23:30)
    assert night.is_open(datetime(2026, 10, 24, 22, 30, tzinfo=UTC))
    assert night.is_open(datetime(2026, 10, 24, 23, 30, tzinfo=UTC))
    assert not night.is_open(datetime(2026, 10, 25, 0, 0, tzinfo=UTC))  # 02:00 IST: closed


# --------------------------------------------------------------------------------------------------- slots


def test_slots_spread_over_the_next_business_days_at_whole_hours(hours: BusinessHours) -> None:
    # Given a Wednesday morning message
    slots = hours.offer_slots(at(2026, 11, 25, 9))
    # Then: later today (two hours' notice), tomorrow afternoon, Friday morning
    assert [slot.start for slot in slots] == [at(2026, 11, 25, 11), at(2026, 11, 26, 14), at(2026, 11, 27, 10)]
    assert all(slot.minutes == 60 for slot in slots)


def test_slots_after_hours_on_friday_skip_the_weekend(hours: BusinessHours) -> None:
    slots = hours.offer_slots(at(2026, 11, 27, 14))
    assert [slot.start for slot in slots] == [at(2026, 11, 29, 10), at(2026, 11, 30, 14), at(2026, 12, 1, 10)]


def test_lead_time_pushes_a_slot_to_the_next_hour_that_is_far_enough(hours: BusinessHours) -> None:
    # Given 15:30 on Thursday and three hours' notice
    slots = hours.offer_slots(at(2026, 11, 26, 15, 30), count=1, lead_time=timedelta(hours=3))
    # Then the slot cannot be today (18:30 > closing), so it is Friday
    assert slots[0].start == at(2026, 11, 27, 10)


def test_a_slot_always_ends_by_closing_time_so_its_length_decides_what_fits() -> None:
    short = BusinessHours.parse("fri 09:00-10:30")
    now = at(2026, 11, 26, 20)
    assert [s.start for s in short.offer_slots(now, count=1, slot_minutes=90)] == [at(2026, 11, 27, 9)]
    assert short.offer_slots(now, count=1, slot_minutes=120) == []


def test_a_range_that_does_not_start_on_the_hour_offers_its_opening_minute() -> None:
    odd = BusinessHours.parse("mon 08:30-09:45")
    assert [s.start for s in odd.offer_slots(at(2026, 11, 26, 20), count=1)] == [at(2026, 11, 30, 8, 30)]


def test_count_is_respected_and_bad_arguments_refused(hours: BusinessHours) -> None:
    assert len(hours.offer_slots(at(2026, 11, 25, 9), count=5)) == 5
    with pytest.raises(ValueError):
        hours.offer_slots(at(2026, 11, 25, 9), count=0)
    with pytest.raises(ValueError):
        hours.offer_slots(at(2026, 11, 25, 9), lead_time=timedelta(hours=-1))


# ----------------------------------------------------------------------------------------- ids and titles


def test_slot_id_is_stable_readable_and_round_trips() -> None:
    slot = Slot(at(2026, 11, 26, 10))
    assert slot.id == "slot:2026-11-26T10:00+02:00"
    assert parse_slot_id(slot.id) == slot.start
    assert Slot(at(2026, 11, 26, 10)).id == slot.id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "slot:",
        "slot:garbage",
        "slot:2026-11-26T10:00",  # no offset: ambiguous
        "slot:2026-13-01T10:00+02:00",
        "slot:2026-11-26T25:00+02:00",
        "meeting:2026-11-26T10:00+02:00",
        "slot:2026-11-26T10:00+02:00" + "x" * 300,
        " slot:2026-11-26T10:00+02:00",
    ],
)
def test_anything_else_is_not_a_slot_id(text: str) -> None:
    assert parse_slot_id(text) is None


@pytest.mark.parametrize(
    ("start", "language", "title"),
    [
        (at(2026, 11, 25, 14), "he", "היום 14:00"),
        (at(2026, 11, 26, 10), "he", "מחר 10:00"),
        (at(2026, 11, 27, 9), "he", "יום ו׳ 27.11 9:00"),
        (at(2026, 11, 29, 10), "he", "יום א׳ 29.11 10:00"),
        (at(2026, 11, 25, 14), "en", "Today 14:00"),
        (at(2026, 11, 26, 10), "en", "Tomorrow 10:00"),
        (at(2026, 11, 29, 10), "en", "Sun 29 Nov 10:00"),
        (at(2026, 12, 31, 17), "en", "Thu 31 Dec 17:00"),
    ],
)
def test_slot_titles_say_today_tomorrow_or_the_day_and_date(start: datetime, language: str, title: str) -> None:
    now = at(2026, 11, 25, 9)
    assert Slot(start).title(language, now) == title
    assert len(title) <= MAX_BUTTON_TITLE


def test_today_and_tomorrow_are_judged_on_the_local_calendar() -> None:
    # Given 23:30 UTC on Wednesday, which is already Thursday 01:30 in Israel
    now = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    # Then a Thursday slot is "today", not "tomorrow"
    assert Slot(at(2026, 11, 26, 10)).title("he", now) == "היום 10:00"


@settings(max_examples=300, deadline=None)
@given(
    now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    spec=st.sampled_from([WEEK_AND_FRIDAY, DEFAULT_SPEC, "mon 08:30-09:45", "sun-sat 00:00-24:00", "sat 07:00-23:00"]),
    lead_hours=st.integers(min_value=0, max_value=72),
    language=st.sampled_from(["he", "en"]),
)
def test_every_offered_slot_is_bookable_titled_within_20_and_its_id_round_trips(
    now: datetime, spec: str, lead_hours: int, language: str
) -> None:
    hours = BusinessHours.parse(spec)
    slots = hours.offer_slots(now, count=3, lead_time=timedelta(hours=lead_hours))
    assert slots, "a weekly schedule always has an opening within the horizon"
    assert len({slot.start.date() for slot in slots}) == len(slots)  # one per day
    assert [slot.start for slot in slots] == sorted(slot.start for slot in slots)
    for slot in slots:
        assert slot.start.minute in {0, 30} and slot.start.tzinfo == ISRAEL  # on the hour, or 08:30 opening
        assert slot.start >= now + timedelta(hours=lead_hours)
        assert slot.start - now <= SLOT_HORIZON
        assert hours.can_book(slot.start, now)
        # Same instant, same wall clock; `==` across zones is always False inside a DST fold (PEP 495).
        parsed = parse_slot_id(slot.id)
        assert parsed is not None and parsed.timestamp() == slot.start.timestamp()
        assert parsed.utcoffset() == slot.start.utcoffset()
        assert 0 < len(slot.title(language, now)) <= MAX_BUTTON_TITLE


# --------------------------------------------------------------------------------------------- can_book


@pytest.mark.parametrize(
    ("start", "bookable"),
    [
        (at(2026, 11, 26, 10), True),
        (at(2026, 11, 25, 8), False),  # in the past
        (at(2026, 11, 28, 10), False),  # Saturday
        (at(2026, 11, 26, 17, 30), False),  # would run past closing
        (at(2026, 11, 26, 20), False),  # after hours
        (at(2026, 11, 25, 9) + SLOT_HORIZON + timedelta(days=1), False),  # beyond what we ever offer
    ],
)
def test_can_book(hours: BusinessHours, start: datetime, bookable: bool) -> None:
    assert hours.can_book(start, at(2026, 11, 25, 9)) is bookable


# ------------------------------------------------------------------------------------------------- wording


def test_wording_helpers() -> None:
    now = at(2026, 11, 25, 20)
    assert day_phrase(at(2026, 11, 26, 9), "he", now) == "מחר"
    assert day_phrase(at(2026, 11, 29, 9), "he", now) == "ביום ראשון"
    assert day_phrase(at(2026, 11, 28, 9), "he", now) == "ביום שבת"
    assert day_phrase(at(2026, 11, 25, 21), "en", now) == "today"
    assert day_phrase(at(2026, 11, 29, 9), "en", now) == "on Sunday"
    assert weekday_name(at(2026, 11, 26), "he") == "חמישי"
    assert format_time(at(2026, 11, 26, 9, 5)) == "9:05"
    assert (format_date(at(2026, 12, 1), "he"), format_date(at(2026, 12, 1), "en")) == ("1.12", "1 Dec")
    with pytest.raises(ValueError, match="unsupported language"):
        weekday_name(now, "fr")
