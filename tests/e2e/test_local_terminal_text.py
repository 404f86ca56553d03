"""Hebrew in a terminal: visual order for terminals that draw left to right, isolates for BiDi terminals."""

from __future__ import annotations

import pytest

from local.terminal_text import PDI, RLI, BidiMode, choose_mode, display_width, render, visual


@pytest.mark.parametrize(
    ("logical", "drawn"),
    [
        ("שלום, אפשר לקבוע פגישה מחר?", "?רחמ השיגפ עובקל רשפא ,םולש"),
        # Times and numbers keep their own left-to-right order inside Hebrew.
        ("מחר 10:00", "10:00 רחמ"),
        ("מחיר: 2,500,000 ₪", "₪ 2,500,000 :ריחמ"),
        # A Latin word stays readable; brackets are mirrored in the right-to-left run.
        ("פגישה ב-Zoom מחר (בעשר)", "(רשעב) רחמ Zoom-ב השיגפ"),
        ("Meeting at 10:00", "Meeting at 10:00"),
    ],
)
def test_visual_order_is_what_a_left_to_right_terminal_must_draw(logical: str, drawn: str) -> None:
    assert visual(logical) == drawn


def test_isolate_mode_keeps_logical_text_and_wraps_only_right_to_left_lines() -> None:
    assert render("מחר 10:00", BidiMode.ISOLATE) == f"{RLI}מחר 10:00{PDI}"
    assert render("tomorrow 10:00", BidiMode.ISOLATE) == "tomorrow 10:00"
    assert render("מחר", BidiMode.LOGICAL) == "מחר"


@pytest.mark.parametrize(
    ("is_tty", "environ", "mode"),
    [
        (False, {"VTE_VERSION": "7600"}, BidiMode.LOGICAL),  # a file or CI log keeps the real text
        (True, {"VTE_VERSION": "7600"}, BidiMode.ISOLATE),  # GNOME Terminal and friends do BiDi
        (True, {"KONSOLE_VERSION": "230804"}, BidiMode.ISOLATE),
        (True, {"TERM_PROGRAM": "vscode"}, BidiMode.VISUAL),  # xterm.js draws left to right
        (True, {"WT_SESSION": "x"}, BidiMode.VISUAL),
        (True, {}, BidiMode.VISUAL),
    ],
)
def test_the_mode_follows_the_terminal(is_tty: bool, environ: dict[str, str], mode: BidiMode) -> None:
    assert choose_mode(is_tty, environ) is mode


def test_display_width_counts_columns_not_characters() -> None:
    assert display_width("שלום") == 4
    assert display_width("ok 🙂") == 5
    assert display_width(f"{RLI}שלום{PDI}") == 4
