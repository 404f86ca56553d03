"""The cue file's rules (`rules_engine()`), one behaviour per test. The whole engine, rules and learned
model together, is tested in test_detect.py; its accuracy is measured in bench/bench_intent.py."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import whatsapp_crm
from whatsapp_crm.intent import (
    PRECEDENCE,
    Intent,
    IntentEngine,
    IntentResult,
    Language,
    detect_language,
    validate_intent_data,
)
from whatsapp_crm.intent.engine import read_intent_data, rules_engine


def detect_rules(text: str) -> IntentResult:
    return rules_engine().detect(text)


def intent_of(text: str) -> Intent:
    return detect_rules(text).intent


def edited(change: Any) -> dict[str, Any]:
    """A deep copy of the shipped cue file with `change(data)` applied."""
    data = copy.deepcopy(dict(read_intent_data()))
    change(data)
    return data


# ------------------------------------------------------------------------------------------ precedence


def test_precedence_is_opt_out_opt_in_meeting_availability_greeting() -> None:
    assert PRECEDENCE == (Intent.OPT_OUT, Intent.OPT_IN, Intent.MEETING, Intent.AVAILABILITY, Intent.GREETING)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("שלום, אפשר לקבוע פגישה?", Intent.MEETING),
        ("Hi! can we meet tomorrow?", Intent.MEETING),
        ("היי, אתה זמין?", Intent.AVAILABILITY),
        ("אתה זמין לפגישה מחר?", Intent.MEETING),
        ("are you available for a viewing?", Intent.MEETING),
        ("שלום, אפשר לקבוע פגישה? ובעצם הסר אותי", Intent.OPT_OUT),
        ("hello, are you free? actually unsubscribe", Intent.OPT_OUT),
        ("subscribe me again and let's schedule a meeting", Intent.OPT_IN),
        ("START STOP", Intent.OPT_OUT),
        ("stop start", Intent.OPT_OUT),
        ("להירשם מחדש? לא, הסר", Intent.OPT_OUT),
    ],
)
def test_the_strongest_intent_in_a_message_wins(text: str, expected: Intent) -> None:
    # Given a message with cues of several intents
    # When classified
    # Then opt_out > opt_in > meeting > availability > greeting decides, wherever the cues appear
    assert intent_of(text) == expected


def test_greeting_only_when_nothing_else_matched() -> None:
    assert intent_of("שלום") == Intent.GREETING
    assert intent_of("שלום, כמה עולה הדירה?") == Intent.GREETING
    assert intent_of("כמה עולה הדירה?") == Intent.DEFAULT


# ---------------------------------------------------------------------------------- words, not substrings


@pytest.mark.parametrize(
    "text",
    ["הסרטון", "שלחתי את הסרטון", "התשלום עבר", "תשלום", "מזמין", "אני מזמין פיצה", "הזמינה", "מזמינים אתכם"],
)
def test_a_cue_inside_a_longer_word_is_not_a_cue(text: str) -> None:
    # Given words that contain "הסר", "שלום" or "זמין" as letters but mean something else
    # When classified
    # Then no opt-out, greeting or availability is read into them
    assert intent_of(text) == Intent.DEFAULT


@pytest.mark.parametrize(
    "text",
    [
        "ומזמין פיצה",
        "שמזמין",
        "כשמזמינים אוכל",
        "ומזמינה",
        "שמזמינות",
        "ומזמינים אתכם לחנוכת הבית",
        "אפשר להזמין?",
        "שהזמינו כבר?",
        "מזמיין",
    ],
)
def test_a_never_split_word_stays_whole_behind_prefixes_of_its_own(text: str) -> None:
    # Given "מזמין"/"הזמין" (never_split_prefix) carrying ו/ש/כש/ל in front
    # When classified
    # Then the prefix comes off but the word is not cut again into מ + "זמין" (availability)
    assert intent_of(text) == Intent.DEFAULT


def test_a_never_split_word_does_not_hide_the_real_cue_that_shares_its_letters() -> None:
    # "הזמינות" is ה + "זמינות" (the availability), not a form of "הזמין"
    assert detect_rules("והזמינות שלך מחר?").intent == Intent.AVAILABILITY


@pytest.mark.parametrize("text", ["מהי הכתובת?", "והי", "שהי"])
def test_two_letter_cues_never_take_a_prefix(text: str) -> None:
    # "מהי" is "what is", not מ + "הי"
    assert intent_of(text) != Intent.GREETING


@pytest.mark.parametrize(
    ("text", "expected", "cue"),
    [
        ("לפגישה מחר?", Intent.MEETING, "פגישה"),
        ("ולקבוע מתי?", Intent.MEETING, "לקבוע"),
        ("וכשנפגש נדבר", Intent.MEETING, "נפגש"),
        ("ולכשנפגש נדבר", Intent.MEETING, "נפגש"),
        ("לכשנקבע, אעדכן", Intent.MEETING, "נקבע"),
        ("ולכשתהיה זמינה תחזרי אליי", Intent.AVAILABILITY, "זמינה"),
        ("שנקבע?", Intent.MEETING, "נקבע"),
        ("מה הזמינות שלך?", Intent.AVAILABILITY, "זמינות"),
        ("להסרה", Intent.OPT_OUT, "הסרה"),
        ("ושלום לכולם", Intent.GREETING, "שלום"),
        ("הדירה פנויה?", Intent.AVAILABILITY, "פנויה"),
    ],
)
def test_hebrew_cues_match_behind_one_letter_prefixes(text: str, expected: Intent, cue: str) -> None:
    # Given a cue word glued to ו/ה/ב/ל/מ/ש/כ or a stack of them (וכש, ול, שה ...)
    result = detect_rules(text)
    # Then the cue is found, and reported as spelled in the cue file
    assert (result.intent, result.cue) == (expected, cue)


@pytest.mark.parametrize(
    ("forms", "expected"),
    [
        (["פגישה", "פגישות", "נפגש", "נפגשים", "להיפגש", "לקבוע", "נקבע", "תקבע"], Intent.MEETING),
        (["זמין", "זמינה", "זמינים", "פנוי", "פנויה", "פנויים"], Intent.AVAILABILITY),
        (["הסר", "הסירו אותי", "הסרה", "תפסיקו", "לא מעוניין לקבל הודעות"], Intent.OPT_OUT),
        (["שלום", "היי", "הי", "בוקר טוב", "ערב טוב", "מה נשמע"], Intent.GREETING),
    ],
)
def test_common_inflections_are_one_intent(forms: list[str], expected: Intent) -> None:
    assert {form: intent_of(form) for form in forms} == dict.fromkeys(forms, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("שָׁלוֹם", Intent.GREETING),
        ("\u200fהסר\u200f", Intent.OPT_OUT),
        ("\u202bפְּגִישָׁה\u202c", Intent.MEETING),
        ("שלוםםם", Intent.GREETING),
        ("היייייי", Intent.GREETING),
        ("hiiiii", Intent.GREETING),
        ("STOPPPP", Intent.OPT_OUT),
        ("פנוייה?", Intent.AVAILABILITY),  # double-yod spelling
        ("זמיין?", Intent.AVAILABILITY),
    ],
)
def test_pointing_direction_marks_and_stretched_letters_do_not_hide_a_cue(text: str, expected: Intent) -> None:
    assert intent_of(text) == expected


def test_english_doubled_letters_still_carry_meaning() -> None:
    # "met" is not "meet": only a stretched word ("meeeet") is squeezed back to its cue
    assert intent_of("we met last week") == Intent.DEFAULT
    assert intent_of("meeeet tomorrow?") == Intent.MEETING


# --------------------------------------------------------------------------------------------- negation


@pytest.mark.parametrize(
    "text",
    [
        "please don't stop sending me listings",
        "Don't stop!",
        "never stop sending offers",
        "I don't want to unsubscribe",
        "אל תפסיקו לשלוח",
        "בבקשה אל תפסיקו לשלוח לי דירות",
        "לא להסיר אותי",
        "אני לא רוצה שתפסיקו",
    ],
)
def test_a_negated_opt_out_is_not_an_opt_out(text: str) -> None:
    assert intent_of(text) != Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    ["I don't want these messages, stop", "לא, הסר", "לא רוצה לקבל יותר הודעות", "אני לא מעוניין לקבל הודעות"],
)
def test_negation_does_not_reach_across_a_clause_or_into_an_opt_out_phrase(text: str) -> None:
    # "לא מעוניין לקבל" is itself the opt-out; a "no," in a previous clause does not cancel "הסר"
    assert intent_of(text) == Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    ["tasiru oti mehareshima bevakasha", "tafsiku lishloach li hodaot", "ok tafsiku", "mevakesh lehasir et hamispar"],
)
def test_a_removal_typed_in_latin_letters_is_read_by_the_rules(text: str) -> None:
    assert intent_of(text) == Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    ["al tafsiku lishloach, hadirot meanyenot oti", "lo rotze shetasiru oti", "bevakasha al tasiru oti"],
)
def test_a_negated_removal_typed_in_latin_letters_is_not_one(text: str) -> None:
    assert intent_of(text) != Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        "אם לא תפסיקו לשלוח אני מגיש תלונה",
        "ואם לא תורידו אותי עד מחר, אני פונה לעורך דין",
        "if you don't stop texting me I'll report you",
        "If you guys don't remove me today I'm calling a lawyer",
    ],
)
def test_a_threat_if_you_do_not_stop_asks_to_stop(text: str) -> None:
    # Given a negated removal after "if": a condition, and what it names is what the lead wants
    assert intent_of(text) == Intent.OPT_OUT


@pytest.mark.parametrize("text", ["I'm not free to talk today, just send the details", "גם אם לא עניתי, אל תסירו אותי"])
def test_a_conditional_does_not_undo_any_other_negation(text: str) -> None:
    # "I'm" is not "im" (Latin-letter "if"); "even if I didn't answer, don't remove me" keeps its "don't"
    assert intent_of(text) == Intent.DEFAULT


@pytest.mark.parametrize(
    "text",
    [
        "אבקש שלא תשלחו לי עוד הודעות",
        "אפשר שלא תשלחו לי יותר?",
        "תכניסו אותי לרשימה של לא לפנות",
        "please add my number to your do not call list",
        "hasarah mi kol hahodaot",
    ],
)
def test_a_request_not_to_be_sent_and_a_do_not_call_list_are_removals(text: str) -> None:
    assert intent_of(text) == Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    ["please cease and desist", "kindly cease all contact with this number", "נא לחדול", "חדלו לשלוח לי הודעות"],
)
def test_the_formal_and_legal_register_of_stop_is_a_removal(text: str) -> None:
    assert intent_of(text) == Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        "Ok, I know I said to resume, but please stop again",
        "so stop, enough",
        "רציתי לחזור לקבל, אבל לא. תשאירו אותי בחוץ",
    ],
)
def test_a_stop_after_but_or_again_and_leave_me_out_are_removals(text: str) -> None:
    assert intent_of(text) == Intent.OPT_OUT


@pytest.mark.parametrize("text", ["אני לא צריכה את זה יותר, תבטלו אותי", "בטלו אותנו בבקשה", "אפשר לבטל אותי?"])
def test_cancel_me_is_a_removal(text: str) -> None:
    assert intent_of(text) == Intent.OPT_OUT


@pytest.mark.parametrize(
    "text", ["פשוט תחסמו אותי, נמאס", "לחסום אותנו בבקשה", "please block my number", "cancel these texts please"]
)
def test_block_me_and_cancel_these_messages_are_removals(text: str) -> None:
    assert intent_of(text) == Intent.OPT_OUT


@pytest.mark.parametrize(
    "text", ["אל תחסמו אותי", "can you block the date for a viewing?", "the block on Herzl, any news?"]
)
def test_block_negated_or_about_something_else_is_not_a_removal(text: str) -> None:
    assert intent_of(text) != Intent.OPT_OUT


@pytest.mark.parametrize("text", ["אל תבטלו אותי, אני עוד מחפשת", "תבטלו את הפגישה של מחר ותקבעו לחמישי"])
def test_cancel_negated_or_about_a_visit_is_not_a_removal(text: str) -> None:
    assert intent_of(text) != Intent.OPT_OUT


@pytest.mark.parametrize("text", ["תמשיכו לשלוח לי הצעות בבקשה", "please keep sending me listings"])
def test_keep_sending_asks_to_come_back(text: str) -> None:
    assert intent_of(text) == Intent.OPT_IN


@pytest.mark.parametrize("text", ["when will the construction cease?", "הבנייה תחדל בשבוע הבא", "אל תחדלו לשלוח"])
def test_cease_about_something_else_or_negated_is_not_a_removal(text: str) -> None:
    assert intent_of(text) != Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    ["I'm in a meeting till 4, call me after", "אני בפגישה עד 16:00, תתקשר אחרי", "ביטלתי את הפגישה עם הבנק, תתקשר"],
)
def test_the_leads_own_meeting_is_not_a_request_to_meet(text: str) -> None:
    assert intent_of(text) == Intent.AVAILABILITY


def test_negation_reaches_back_only_over_the_listed_in_between_words() -> None:
    # "לא רוצה ש-" and "don't want to" bridge to the cue; a subject after "no" (no comma typed) does not
    assert intent_of("אני לא רוצה שתפסיקו") == Intent.DEFAULT
    assert intent_of("לא אני רוצה לקבוע") == Intent.MEETING
    assert intent_of("no I want to schedule") == Intent.MEETING


def test_negation_also_cancels_availability_and_meeting_but_not_greeting() -> None:
    assert intent_of("I'm not available today") == Intent.DEFAULT
    assert intent_of("אני לא זמין היום") == Intent.DEFAULT
    assert intent_of("I don't want a meeting") == Intent.DEFAULT
    assert intent_of("not hello") == Intent.GREETING


@pytest.mark.parametrize(
    "text",
    [
        # the audit's probes
        "I do not want to stop getting listings",
        "I don't want to stop receiving updates",
        "לא רוצה שתפסיקו לשלוח הודעות",
        "Why did you stop sending me listings?",
        "I wouldn't want to stop receiving your offers",
        "I can't stop thinking about that flat",
        "when will the construction stop?",
        "תפסיקו לדאוג, הכל בסדר",
        "מה לגבי הסרה של הערת האזהרה?",
        # more of the same kinds
        "I never want to stop getting your updates",
        "I don't want to miss any new listings",
        "Didn't you stop sending updates last month?",
        "We couldn't stop smiling when we saw the photos",
        "I won't stop looking until I find a place",
        "Please keep sending me listings, don't stop",
        "אני לא רוצה להפסיק לקבל עדכונים",
        "לא רוצה שתסירו אותי",
        "אני לא רוצה שתורידו אותי מהרשימה",
        "אני מקווה שלא תפסיקו לשלוח",
        "לא תפסיקו לשלוח לי דירות, נכון?",
        "ממש לא רוצה שתפסיקו לעדכן",
        "צריך לעשות הסרה של המשכנתא לפני המכירה?",
        "תפסיקו להתלבט, הדירה הזאת מעולה",
    ],
)
def test_a_double_negation_keeps_the_lead_subscribed(text: str) -> None:
    # Given a lead who says they do NOT want us to stop, or who uses "stop"/"הסרה"/"תפסיקו" about something
    # other than our messages (a false opt-out silences a lead for good)
    # When classified
    # Then it is not an opt-out
    assert intent_of(text) != Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        "I don't want anything bigger than this",
        "לא רוצה דירה גדולה יותר",
        "אני לא מעוניין לשלם עוד",
        "לא רוצה לקבל את הדירה לפני מרץ",
        "לא מעוניינים בדירות בקומת קרקע",
        "why not send me more listings?",
        "Don't send the contract yet, I have more questions",
        "Can you remove the parking from the offer?",
        "הסר את המרפסת מהתוכנית",
    ],
)
def test_an_opt_out_phrase_needs_an_object_that_is_us(text: str) -> None:
    # Given "don't want"/"לא רוצה"/"remove" about a flat, a price or a contract, not about our messages
    # Then it is a preference or a question for a person, not an opt-out
    assert intent_of(text) != Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        # the shapes the business named
        "הסר",
        "הסירו אותי",
        "תפסיקו לשלוח לי הודעות",
        "לא מעוניין יותר בהודעות",
        "STOP",
        "stop",
        "Stop sending me messages",
        "unsubscribe",
        "please remove me from your list",
        "אל תשלחו לי יותר",
        # WhatsApp's convention: a bare STOP, with punctuation, emoji, stretching or repetition
        "Stop!!",
        "STOP.",
        "stop 🛑",
        "STOP!!! 😡",
        "stoppp",
        "stop stop stop",
        "הסר הסר",
        "\u200fSTOP\u200f",
        # alone in its clause, or before a new sentence typed without punctuation
        "Hi, please stop",
        "Enough, stop",
        "Could you please stop?",
        "stop I'm not interested",
        "הסר אני כבר קניתי דירה",
        "למה אתם ממשיכים לשלוח? הסר",
        "שלום, תפסיקו כבר",
        # naming what to stop
        "can't you stop texting me?",
        "why don't you stop sending me this spam",
        "I want to stop receiving these messages",
        "I do not want to receive any more messages from you",
        "Stop the updates please",
        "no more listings please",
        "Please don't message me again",
        "I'm no longer interested, please remove my number",
        "תפסיקו להתקשר אליי",
        "תעצרו את ההודעות",
        "להסרה מהרשימה",
        "מבקש הסרה",
        "אבקש להסיר אותי מהרשימה, תודה",
        "אני לא רוצה לקבל מכם הודעות",
        "ואל תשלחו לי יותר הודעות",
        "STOP הודעות",
    ],
)
def test_real_opt_outs_still_opt_out(text: str) -> None:
    assert intent_of(text) == Intent.OPT_OUT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Why don't you come by tomorrow?", Intent.MEETING),
        ("can't you meet on Sunday?", Intent.MEETING),
        ("I can't meet on Sunday", Intent.DEFAULT),
        ("aren't you available tomorrow?", Intent.AVAILABILITY),
    ],
)
def test_a_negator_right_before_you_asks_a_question_rather_than_negates(text: str, expected: Intent) -> None:
    assert intent_of(text) == expected


def test_a_phrase_gap_never_skips_a_reverser_or_a_negator() -> None:
    # Given an edited cue file with a gapped phrase
    data = edited(lambda d: d["cues"]["en"]["intents"]["meeting"]["phrases"].append("want ... brochure"))
    engine = IntentEngine.from_data(data)
    # Then the gap bridges neutral words only: a reverser or a negator inside it flips the meaning
    assert engine.detect("I want the new brochure").intent == Intent.MEETING
    assert engine.detect("I want to stop the brochure").intent == Intent.DEFAULT
    assert engine.detect("I want never a brochure").intent == Intent.DEFAULT
    assert engine.detect("I want no brochure").intent == Intent.MEETING  # "no" is not a negator


# ---------------------------------------------------------------------------------- commands and exceptions


@pytest.mark.parametrize(
    ("alone", "in_a_sentence"),
    [
        ("start", "When does the lease start?"),
        ("Start please 🙂", "I'll start packing"),
        ("די!", "די יקר"),
        ("הרשמה", "איך עושים הרשמה לחניה בבניין?"),
        ("Not interested", "not interested in the 3 room one, anything bigger?"),
    ],
)
def test_a_command_counts_only_as_the_whole_message(alone: str, in_a_sentence: str) -> None:
    # Given a word that is an opt-in/opt-out command on its own but ordinary inside a sentence
    # Then alone it is the command, inside a sentence it is not
    assert intent_of(alone) in {Intent.OPT_IN, Intent.OPT_OUT}
    assert intent_of(in_a_sentence) not in {Intent.OPT_IN, Intent.OPT_OUT}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Can I stop by tomorrow?", Intent.MEETING),
        ("is there a bus stop nearby?", Intent.DEFAULT),
        ("nice to meet you", Intent.GREETING),
        ("what's the payment schedule?", Intent.DEFAULT),
    ],
)
def test_unless_phrases_cancel_the_cue_they_overlap(text: str, expected: Intent) -> None:
    assert intent_of(text) == expected


# ------------------------------------------------------------------------------------- result and language


def test_the_result_carries_intent_language_and_the_cue_as_written_in_the_cue_file() -> None:
    assert detect_rules("אפשר לראות את הדירה?") == IntentResult(Intent.MEETING, Language.HE, "לראות את דירה")
    assert detect_rules("Please STOP") == IntentResult(Intent.OPT_OUT, Language.EN, "stop")
    assert detect_rules("🙂") == IntentResult(Intent.DEFAULT, Language.HE, None)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("hello", Language.EN),
        ("שלום", Language.HE),
        ("Hi, אפשר פגישה?", Language.HE),
        ("STOP", Language.EN),
        ("12:00", Language.HE),
        ("👍", Language.HE),
        ("", Language.HE),
        ("\u200eOK\u200e", Language.EN),
    ],
)
def test_any_hebrew_letter_means_hebrew_otherwise_latin_means_english_otherwise_hebrew(
    text: str, language: Language
) -> None:
    assert detect_language(text) == language
    assert detect_rules(text).language == language


def test_enums_are_their_wire_values() -> None:
    assert [intent.value for intent in Intent] == [
        "opt_out",
        "opt_in",
        "meeting",
        "availability",
        "greeting",
        "default",
    ]
    assert [language.value for language in Language] == ["he", "en"]


# ------------------------------------------------------------------------------------------ the cue file


def test_the_cue_file_ships_inside_the_package_and_loads_through_importlib_resources() -> None:
    # Given the installed package (SAM copies the package folder, data included, into the layer)
    data_file = resources.files("whatsapp_crm.intent").joinpath("data/intents.json")
    # Then the file is there and it validates completely
    assert data_file.is_file()
    validate_intent_data(read_intent_data())


def test_the_cue_file_is_read_once_on_first_use_not_at_import() -> None:
    # Given a fresh interpreter that imports the package
    script = (
        "from whatsapp_crm.intent import engine\n"
        "assert engine.read_intent_data.cache_info().currsize == 0, 'read at import'\n"
        "engine.detect_intent('hi'); engine.detect_intent('שלום'); engine.detect_intent('stop')\n"
        "assert engine.read_intent_data.cache_info().misses == 1, 'read more than once'\n"
    )
    # When it classifies several messages
    layer = str(Path(whatsapp_crm.__file__).parent.parent)
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, env={"PYTHONPATH": layer}
    )
    # Then the file was read exactly once, on the first call
    assert completed.returncode == 0, completed.stderr


def test_every_process_names_the_same_cue_for_a_message() -> None:
    # Given messages where two cue words explain the same token ("היי" is both "הי" and "היי")
    script = "from whatsapp_crm.intent.engine import rules_engine\n" + "\n".join(
        f"print(rules_engine().detect({text!r}).cue)" for text in ("היי", "הלו?", "היי, בוקר טוב", "stop texting")
    )
    layer = str(Path(whatsapp_crm.__file__).parent.parent)
    # When processes with different string hashing read them (a redelivery may land on another Lambda)
    cues = set()
    for seed in ("1", "2", "3", "4", "5"):
        completed = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=False,
            env={"PYTHONPATH": layer, "PYTHONHASHSEED": seed},
        )
        assert completed.returncode == 0, completed.stderr
        cues.add(completed.stdout)
    # Then they all name the same cue (it is stored as the evidence of an opt change)
    assert len(cues) == 1, cues


def test_an_edited_cue_file_changes_behaviour_without_code() -> None:
    # Given the business adds a keyword for meetings
    data = edited(lambda d: d["cues"]["he"]["intents"]["meeting"]["keywords"].append("פגישונת"))
    # When the edited file is compiled
    engine = IntentEngine.from_data(data)
    # Then the new word (with a prefix, too) is a meeting cue
    assert engine.detect("לפגישונת מחר?").intent == Intent.MEETING
    assert intent_of("לפגישונת מחר?") == Intent.DEFAULT  # the shipped file is untouched


def _set(path: tuple[str, ...], value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set(("cues", "he", "intents", "meeting", "phrases"), ["לראות את @nosuch"]), "unknown class '@nosuch'"),
        (_set(("cues", "en", "intents", "greeting", "keywords"), ["hi", 3]), "cues.en.intents.greeting.keywords"),
        (_set(("cues", "en", "classes", "me"), ["me", "two words"]), "must be a single word"),
        (_set(("cues", "en", "intents", "opt_out", "phrases"), ["... stop"]), "misplaced '...'"),
        (_set(("negatable_intents",), ["opt_out", "nonsense"]), "negatable_intents.1: Input should be"),
        (_set(("cues", "he", "intents", "opt_out"), "הסר"), "cues.he.intents.opt_out: Input should be"),
        (_set(("cues", "en", "intents", "greeting", "keywords"), ["hi", " "]), "greeting.keywords.1: String should"),
        (_set(("cues", "en", "negation", "negatorz"), ["not"]), "cues.en.negation.negatorz: Extra inputs"),
        (_set(("cues", "he", "negation", "reversers"), ["@nosuch"]), "cues.he.negation.reversers: unknown class"),
        (_set(("cues", "en", "intents", "opt_out", "clause_commands"), ["stop ... now"]), "misplaced '...'"),
        (
            _set(("replies", "he", "availability_today"), "אני זמין היום"),
            "replies.he.availability_today must use {hours}",
        ),
        (_set(("replies", "en", "slot_confirmed"), "At {time} on {weekday}"), "replies.en.slot_confirmed must use"),
        (_set(("replies", "en", "greeting"), "Hello {"), "literal brace"),
        (_set(("replies", "he", "opt_in"), ""), "replies.he.opt_in must be a text"),
    ],
)
def test_a_broken_cue_file_is_rejected_with_the_place_to_fix(change: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_intent_data(edited(change))
