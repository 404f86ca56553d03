"""Replies: the text (and slot buttons) a lead receives for each intent, in Hebrew and English.

Dates used: 26 Nov 2026 is a Thursday, 27 Nov a Friday, 28 Nov a Saturday, 29 Nov a Sunday.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from whatsapp_crm.intent import (
    Intent,
    Language,
    ReplyPlan,
    SlotButton,
    plan_reply,
    plan_slot_confirmation,
    plan_slot_reoffer,
)
from whatsapp_crm.schedule import BusinessHours, parse_slot_id
from whatsapp_crm.send_limits import MAX_BOOKING_URL, MAX_INTERACTIVE_BODY

ISRAEL = ZoneInfo("Asia/Jerusalem")
HOURS = BusinessHours.parse("sun-thu 09:00-18:00; fri 09:00-13:00", "Asia/Jerusalem")
BOOKING = "https://example.com/book"
HE, EN = Language.HE, Language.EN


def at(day: int, hour: int = 12, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ISRAEL)


# ------------------------------------------------------------------------------------------ plain texts


@pytest.mark.parametrize(
    ("intent", "language", "body"),
    [
        (
            Intent.GREETING,
            HE,
            "שלום! תודה על הפנייה. אני כאן כדי לעזור לכם למצוא את הנכס המושלם. איך אוכל לסייע?",
        ),
        (Intent.DEFAULT, HE, "תודה על הודעתכם. אחזור אליכם בהקדם האפשרי."),
        (
            Intent.GREETING,
            EN,
            "Hello! Thanks for reaching out. I'm here to help you find the perfect property. How can I help?",
        ),
        (Intent.DEFAULT, EN, "Thanks for your message. I'll get back to you as soon as possible."),
    ],
)
def test_greeting_and_default_are_the_agreed_texts(intent: Intent, language: Language, body: str) -> None:
    assert plan_reply(intent, language, at(26), HOURS) == ReplyPlan("text", body)


@pytest.mark.parametrize("language", list(Language))
def test_opt_out_is_one_short_confirmation_that_says_how_to_come_back(language: Language) -> None:
    plan = plan_reply(Intent.OPT_OUT, language, at(26), HOURS, BOOKING)
    assert plan.kind == "text" and plan.buttons == ()
    assert len(plan.body) < 160
    assert ("הרשמה" if language is HE else "START") in plan.body
    assert BOOKING not in plan.body  # no selling to someone who just opted out


@pytest.mark.parametrize(("language", "welcome"), [(HE, "ברוכים השבים"), (EN, "Welcome back")])
def test_opt_in_is_a_short_welcome_back(language: Language, welcome: str) -> None:
    plan = plan_reply(Intent.OPT_IN, language, at(26), HOURS)
    assert plan.kind == "text" and plan.body.startswith(welcome)


# -------------------------------------------------------------------------------------------- availability


@pytest.mark.parametrize(
    ("now", "body"),
    [
        (at(26, 12), "אני זמין לשיחה היום בין 9:00-18:00. מתי נוח לכם לקבוע פגישה?"),
        (at(26, 7), "אני זמין לשיחה היום בין 9:00-18:00. מתי נוח לכם לקבוע פגישה?"),  # before opening
        (at(27, 10), "אני זמין לשיחה היום בין 9:00-13:00. מתי נוח לכם לקבוע פגישה?"),  # short Friday
        (
            at(26, 19),  # Thursday evening
            "כרגע אנחנו מחוץ לשעות הפעילות. נחזור אליכם מחר ב-9:00. מתי נוח לכם לקבוע פגישה?",
        ),
        (
            at(27, 14),  # Friday afternoon
            "כרגע אנחנו מחוץ לשעות הפעילות. נחזור אליכם ביום ראשון ב-9:00. מתי נוח לכם לקבוע פגישה?",
        ),
        (
            at(28, 10),  # Saturday
            "כרגע אנחנו מחוץ לשעות הפעילות. נחזור אליכם מחר ב-9:00. מתי נוח לכם לקבוע פגישה?",
        ),
    ],
)
def test_availability_states_todays_hours_or_when_we_are_back(now: datetime, body: str) -> None:
    assert plan_reply(Intent.AVAILABILITY, HE, now, HOURS) == ReplyPlan("text", body)


def test_availability_in_english() -> None:
    assert plan_reply(Intent.AVAILABILITY, EN, at(26, 12), HOURS).body == (
        "I'm available to talk today between 9:00-18:00. When would suit you to schedule a meeting?"
    )
    assert plan_reply(Intent.AVAILABILITY, EN, at(27, 14), HOURS).body == (
        "We're outside business hours right now. We'll get back to you on Sunday at 9:00. "
        "When would suit you to schedule a meeting?"
    )


def test_availability_uses_the_configured_hours_including_split_days_and_midnight() -> None:
    split = BusinessHours.parse("thu 09:00-13:00,16:00-24:00")
    assert "בין 9:00-13:00 ו-16:00-24:00" in plan_reply(Intent.AVAILABILITY, HE, at(26, 14), split).body
    assert "between 9:00-13:00 and 16:00-24:00" in plan_reply(Intent.AVAILABILITY, EN, at(26, 14), split).body


# ------------------------------------------------------------------------------------------------ meeting


@pytest.mark.parametrize("language", list(Language))
def test_meeting_offers_three_bookable_slot_buttons(language: Language) -> None:
    # Given a Wednesday-morning meeting request
    now = at(25, 9)
    # When the reply is planned
    plan = plan_reply(Intent.MEETING, language, now, HOURS)
    # Then it is a button message with three distinct, bookable slots whose titles fit WhatsApp's 20 characters
    assert plan.kind == "buttons"
    assert len(plan.buttons) == 3
    for button in plan.buttons:
        start = parse_slot_id(button.id)
        assert start is not None and HOURS.can_book(start, now)
        assert len(button.title) <= 20
    assert BOOKING not in plan.body


def test_meeting_body_and_titles_in_hebrew() -> None:
    plan = plan_reply(Intent.MEETING, HE, at(25, 9), HOURS)
    assert plan.body == "מעולה! אני קובע לכם פגישה. בחרו מועד שנוח לכם:"
    assert [button.title for button in plan.buttons] == ["היום 11:00", "מחר 14:00", "יום ו׳ 27.11 10:00"]
    assert [button.id for button in plan.buttons] == [
        "slot:2026-11-25T11:00+02:00",
        "slot:2026-11-26T14:00+02:00",
        "slot:2026-11-27T10:00+02:00",
    ]


def test_meeting_adds_the_booking_link_when_one_is_configured() -> None:
    plan = plan_reply(Intent.MEETING, EN, at(25, 9), HOURS, BOOKING)
    assert plan.body == (
        "Great! Let's set up a meeting. Pick a time that suits you:\n\nYou can also pick another time here: " + BOOKING
    )
    assert len(plan.buttons) == 3


@pytest.mark.parametrize("language", list(Language))
def test_the_longest_booking_link_the_settings_accept_still_fits_every_meeting_offer(language: Language) -> None:
    # Given a booking link as long as the template and the settings allow
    longest = "https://example.com/book?" + "x" * (MAX_BOOKING_URL - len("https://example.com/book?"))
    # When any offer is planned: a meeting or a re-offer, with slot buttons or without
    tiny = BusinessHours.parse("fri 09:00-09:30")
    offers = [
        plan_reply(Intent.MEETING, language, at(25, 9), HOURS, longest),
        plan_reply(Intent.MEETING, language, at(25, 9), tiny, longest),
        plan_slot_reoffer(language, at(26, 19), HOURS, longest),
        plan_slot_reoffer(language, at(26, 19), tiny, longest),
    ]
    # Then each keeps the whole link and stays within Meta's body limit for its kind
    for offer in offers:
        assert offer.body.endswith(longest)
        assert offer.kind == "text" or len(offer.body) <= MAX_INTERACTIVE_BODY


def test_meeting_without_any_slot_that_fits_promises_to_arrange_one() -> None:
    # Given hours too short for an hour-long slot
    tiny = BusinessHours.parse("fri 09:00-09:30")
    # Then the reply is text: no empty button message, and the booking link still helps
    plan = plan_reply(Intent.MEETING, HE, at(25, 9), tiny, BOOKING)
    assert plan.kind == "text" and plan.buttons == ()
    assert plan.body.startswith("מעולה! אני קובע לכם פגישה. נחזור אליכם בהקדם לתיאום מועד.")
    assert plan.body.endswith(BOOKING)


# --------------------------------------------------------------------------------------- slot confirmation


def test_tapping_an_offered_slot_confirms_that_day_and_hour() -> None:
    # Given the buttons offered on Wednesday morning
    offered = plan_reply(Intent.MEETING, HE, at(25, 9), HOURS).buttons
    # When the lead taps "מחר 14:00" half an hour later
    confirmation = plan_slot_confirmation(offered[1].id, HE, at(25, 9, 30), HOURS)
    # Then the reply names the weekday, the date and the hour
    assert confirmation == ReplyPlan("text", "נקבעה לכם פגישה ביום חמישי 26.11 בשעה 14:00. נתראה!")


def test_slot_confirmation_in_english() -> None:
    confirmation = plan_slot_confirmation("slot:2026-11-26T10:00+02:00", EN, at(25, 9), HOURS)
    assert confirmation is not None
    assert confirmation.body == "Your meeting is booked for Thursday 26 Nov at 10:00. See you then!"


@pytest.mark.parametrize(
    "slot_id",
    [
        "slot:2026-11-24T10:00+02:00",  # yesterday
        "slot:2026-11-25T08:00+02:00",  # earlier today
        "slot:2026-11-28T10:00+02:00",  # Saturday
        "slot:2026-11-26T20:00+02:00",  # after hours
        "slot:2027-06-01T10:00+03:00",  # far beyond anything offered
        "slot:tomorrow",
        "",
        "not a slot",
    ],
)
def test_a_stale_or_unknown_slot_is_not_confirmed(slot_id: str) -> None:
    assert plan_slot_confirmation(slot_id, HE, at(25, 9), HOURS) is None


def test_a_stale_slot_is_politely_reoffered_with_fresh_times() -> None:
    # Given the lead taps a slot that has passed, on Thursday evening
    now = at(26, 19)
    assert plan_slot_confirmation("slot:2026-11-26T14:00+02:00", HE, now, HOURS) is None
    # When the caller asks for a re-offer
    plan = plan_slot_reoffer(HE, now, HOURS, BOOKING)
    # Then it apologises, offers new future slots and keeps the booking link
    assert plan.body.startswith("המועד שבחרתם כבר לא פנוי. בחרו מועד שנוח לכם:")
    assert plan.body.endswith(BOOKING)
    assert [button.title for button in plan.buttons] == ["מחר 10:00", "יום א׳ 29.11 14:00", "יום ב׳ 30.11 10:00"]


def test_reoffer_in_english() -> None:
    plan = plan_slot_reoffer(EN, at(26, 19), HOURS)
    assert plan.body == "Sorry, that time is no longer available. Pick a time that suits you:"
    assert plan.buttons[0].title == "Tomorrow 10:00"


# ------------------------------------------------------------------------------------------- plan guards


def test_a_plan_refuses_what_whatsapp_would_reject() -> None:
    buttons = tuple(SlotButton(f"slot:{n}", f"Option {n}") for n in range(4))
    with pytest.raises(ValueError, match="1-3 buttons"):
        ReplyPlan("buttons", "Pick one", buttons)
    with pytest.raises(ValueError, match="1-3 buttons"):
        ReplyPlan("buttons", "Pick one", ())
    with pytest.raises(ValueError, match="unique"):
        ReplyPlan("buttons", "Pick one", (SlotButton("a", "Same"), SlotButton("b", "Same")))
    with pytest.raises(ValueError, match="no buttons"):
        ReplyPlan("text", "Hello", buttons[:1])
    with pytest.raises(ValueError, match="1-1024"):
        ReplyPlan("buttons", "x" * 1025, buttons[:1])
    with pytest.raises(ValueError, match="title must be 1-20"):
        SlotButton("slot:1", "A title that is far too long")
    with pytest.raises(ValueError, match="id must be 1-256"):
        SlotButton("x" * 257, "Title")
