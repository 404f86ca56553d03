"""The whole engine (rules + learned model): what a lead's message gets, by category of the issue.

The sentences here are made up for these tests; the engine's accuracy is measured on text by writers who
never saw it (bench/bench_intent.py, docs/performance.md), not here.
"""

from __future__ import annotations

import pytest

from whatsapp_crm.intent import Intent, IntentResult, Language, detect_intent, detect_language
from whatsapp_crm.intent.engine import OptOutCall, OptOutThresholds, by_precedence, rules_engine
from whatsapp_crm.intent.normalize import tokenize


@pytest.mark.parametrize(
    "text",
    ["הסר", "STOP", "תורידו אותי מהרשימה בבקשה", "please remove me from your list", "unsubscribe"],
)
def test_a_clear_opt_out_is_an_opt_out_at_once(text: str) -> None:
    # Given a lead who plainly asks to be removed
    result = detect_intent(text)
    # Then it is an opt-out the engine is sure of: no question needed
    assert (result.intent, result.confirm_opt_out) == (Intent.OPT_OUT, False)
    assert result.confidence > 0.5


@pytest.mark.parametrize(
    "text",
    [
        "אפשר לקבוע פגישה מחר בערב?",
        "can you call me back this afternoon?",
        "כמה עולה הדירה ברחוב הרצל?",
        "שלום",
    ],
)
def test_an_ordinary_message_is_never_an_opt_out_nor_a_question_about_one(text: str) -> None:
    result = detect_intent(text)
    assert result.intent is not Intent.OPT_OUT
    assert result.confirm_opt_out is False


def test_when_the_engine_asks_its_intent_is_the_best_reading_other_than_opt_out() -> None:
    # Given every message that the engine is unsure about among a few borderline phrasings
    borderline = [
        "stop sending me rentals, I only buy",
        "מספיק עם הדירות בחולון",
        "I might unsubscribe if the price stays",
        "תפסיקו",
        "enough already",
    ]
    for text in borderline:
        result = detect_intent(text)
        # Then an unsure result never says opt_out, so a caller that ignores the flag silences no one
        if result.confirm_opt_out:
            assert result.intent is not Intent.OPT_OUT, text
        assert 0.0 < result.confidence <= 1.0


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("ma kore achi, efshar lirot et hadira machar?", Language.HE),
        ("titoridu oti mehareshima bevakasha", Language.HE),
        ("Can we see the apartment tomorrow?", Language.EN),
        ("Hi, how much is the arnona there?", Language.EN),
        ("שלום, is the flat still on the market?", Language.HE),
        ("🙂", Language.HE),
    ],
)
def test_hebrew_typed_in_latin_letters_gets_a_hebrew_reply(text: str, language: Language) -> None:
    # Given a message in Latin letters that is Hebrew ("ma kore") or English
    # Then the reply language follows the lead's language, not the script alone
    assert detect_intent(text).language is language
    assert detect_language(text) is language


def test_the_result_carries_intent_language_cue_confidence_and_the_ask_flag() -> None:
    result = detect_intent("Please STOP")
    assert isinstance(result, IntentResult)
    assert (result.intent, result.language, result.cue) == (Intent.OPT_OUT, Language.EN, "stop")
    assert detect_intent("🙂") == IntentResult(Intent.DEFAULT, Language.HE, None, 1.0, False)


# Ask lines at 0.1 (the rules read an opt-out) and 0.2 (they do not); the general clear lines far above the
# plain-request line (0.97).
LINES = OptOutThresholds(
    clear=0.9999, clear_short=0.9995, short_words=12, ask=0.1, ask_against_rules=0.2, clear_plain=0.97
)


def decided_at(text: str, probability: float) -> OptOutCall:
    """What `LINES` decide for `text` when the model gives it this opt-out probability."""
    return LINES.decide(probability, tokenize(text), rules_engine().read(text))


@pytest.mark.parametrize(
    ("text", "call"),
    [
        ("תורידו אותי מהרשימה בבקשה", OptOutCall.CLEAR),  # plain: short, one clause, no negator, rules agree
        ("please remove me from your list", OptOutCall.CLEAR),
        ("די, תפסיקו לשלוח לי הודעות", OptOutCall.CLEAR),  # two clauses, nothing but the request
        ("stop, הסירו אותי", OptOutCall.CLEAR),
        ("לא ביקשתי שתורידו אותי מהרשימה", OptOutCall.ASK),  # a negator: never plain
        ("תורידו אותי מהרשימה. רגע, בעצם תשאירו", OptOutCall.ASK),  # the last clause takes it back
        ("remove me. actually keep me on the list", OptOutCall.ASK),
        ("stop stop 😍 this balcony, call me", OptOutCall.ASK),  # another intent in the message
        ("please please please remove me from this list of yours right now I said remove", OptOutCall.ASK),  # long
    ],
)
def test_a_plain_removal_request_is_clear_below_the_general_line_and_anything_else_is_asked(
    text: str, call: OptOutCall
) -> None:
    # Given thresholds whose general clear lines are far above the plain-request line (LINES)
    # When the model gives each message the same opt-out probability, between the lines
    decided = decided_at(text, 0.98)
    # Then only the plain request is removed at once; the others get the question
    assert decided is call


def decided_when_the_model_doubts(text: str) -> OptOutCall:
    """The opt-out decision for `text` when the model gives it an opt-out probability of 0.001."""
    return decided_at(text, 0.001)


def decided_when_the_model_leans(text: str, probability: float) -> OptOutCall:
    """The opt-out decision for `text` when the model gives it `probability`, above both ask lines."""
    return decided_at(text, probability)


@pytest.mark.parametrize("text", ["תנקס יא מלך", "gracias ahi", "okei", "tnx achi!!", "תודה רבה אחי 🙏", "Thank you"])
def test_a_message_that_is_only_thanks_is_never_asked_about_removal(text: str) -> None:
    # Given a model that leans towards an opt-out (opt-outs often end with a thank-you)
    # When a message made of nothing but thanks or an acknowledgement is decided
    decided = decided_when_the_model_leans(text, 0.6)
    # Then the lead is not asked whether to leave: they only said thanks
    assert decided is OptOutCall.NO


@pytest.mark.parametrize("text", ["thanks, remove me", "תודה, לא רלוונטי יותר", "ok bye forever"])
def test_thanks_beside_anything_else_is_still_asked_when_the_model_leans(text: str) -> None:
    assert decided_when_the_model_leans(text, 0.6) is not OptOutCall.NO


@pytest.mark.parametrize("text", ["START STOP", "הסר", "STOP please", "unsubscribe", "stahp!!", "stawp pls"])
def test_a_bare_removal_command_the_model_doubts_is_asked_never_ignored(text: str) -> None:
    # Given a model that finds the message very unlikely to be an opt-out
    # When a message of nothing but commands, read by the rules as a removal, is decided
    decided = decided_when_the_model_doubts(text)
    # Then the lead is asked whether to be removed rather than answered as if they had not asked
    assert decided is OptOutCall.ASK


@pytest.mark.parametrize("text", ["START", "stop sending rentals, I only buy", "אל תסירו אותי"])
def test_a_doubted_message_that_is_not_a_bare_removal_command_is_not_asked(text: str) -> None:
    assert decided_when_the_model_doubts(text) is OptOutCall.NO


@pytest.mark.parametrize(
    "text",
    [
        "ביקשתי לחזור לרשימה אבל התחרטתי, תוריד אותי שוב",
        "I asked you to add me back but changed my mind, remove me again",
        "please put me back on the list. no wait, on second thought unsubscribe me",
        # "keep sending" asks to come back too (round 18)
        "פעם אמרתי לכם תמשיכו לשלוח, עכשיו כבר לא, תסירו אותי",
        "last month I told you keep sending, now I'm done, remove me",
    ],
)
def test_a_removal_after_asking_to_come_back_is_asked_when_the_model_reads_a_return(text: str) -> None:
    # Given a model that reads the message as a return to the list (it cannot see which request came last)
    # When the lead's latest request is a removal that follows an earlier request to come back
    decided = decided_when_the_model_doubts(text)
    # Then the lead is asked whether to be removed instead of being welcomed back
    assert decided is OptOutCall.ASK


@pytest.mark.parametrize(
    "text",
    [
        "remove me. actually no, add me back",
        "תורידו אותי... לא רגע, תחזירו אותי לרשימה",
        "I unsubscribed by mistake, please put me back on the list",
        "please add me back to your list, my earlier request to unsubscribe was a mistake",
        "תחדשו לי את ההודעות, עשיתי unsubscribe בטעות",
    ],
)
def test_a_return_after_a_removal_is_not_asked_when_the_model_reads_a_return(text: str) -> None:
    assert decided_when_the_model_doubts(text) is OptOutCall.NO


def test_a_meeting_asked_of_an_available_agent_is_a_meeting() -> None:
    # Given a message with a meeting cue and an availability cue (the label rules rank meeting first)
    # When it is classified
    result = detect_intent("are you available for a meeting tomorrow?")
    # Then the lead is offered a meeting, not told when the agent can talk
    assert result.intent is Intent.MEETING


@pytest.mark.parametrize(
    ("meeting", "availability", "expected"),
    [(0.30, 0.70, Intent.MEETING), (0.20, 0.80, Intent.AVAILABILITY)],
)
def test_the_rules_stronger_request_wins_only_when_the_model_is_torn(
    meeting: float, availability: float, expected: Intent
) -> None:
    probabilities = {"meeting": meeting, "availability": availability}

    chosen = by_precedence(Intent.MEETING, Intent.AVAILABILITY, probabilities.__getitem__)

    assert chosen is expected


def test_a_weaker_rules_reading_never_overrides_the_model() -> None:
    probabilities = {"meeting": 0.6, "availability": 0.4, "greeting": 0.0}

    assert by_precedence(Intent.AVAILABILITY, Intent.MEETING, probabilities.__getitem__) is Intent.MEETING
    assert by_precedence(Intent.GREETING, Intent.MEETING, probabilities.__getitem__) is Intent.MEETING
