"""Right-to-left text in a terminal, for the demo's printout of a Hebrew conversation.

Terminals split into two camps. Some run the Unicode Bidirectional Algorithm themselves (GNOME Terminal and
every VTE terminal since 0.58, Konsole, mlterm, macOS Terminal): they want text in logical order, and a
Hebrew line wrapped in a RIGHT-TO-LEFT ISOLATE (U+2067 ... U+2069) comes out right-to-left with its
punctuation on the correct side. The others draw cells left to right in memory order (VS Code's and
JetBrains' terminals, Windows Terminal, iTerm2 by default, xterm, tmux/screen), so Hebrew comes out
mirrored unless the program reorders it to visual order first.

`choose_mode()` picks per terminal: logical + isolates where the terminal is known to do BiDi, visual order
where it is known not to or unknown, and plain logical text when the output is not a terminal (a file or
CI log keeps the real text, and whatever later shows it does the BiDi). `--bidi` on the demo overrides.

`visual()` is a small subset of UAX #9 (one paragraph, no explicit embeddings): enough for chat lines that
mix Hebrew, Latin words, numbers, times and punctuation; brackets are mirrored.
"""

from __future__ import annotations

import os
import unicodedata
from enum import StrEnum

RLI = "\u2067"  # RIGHT-TO-LEFT ISOLATE
PDI = "\u2069"  # POP DIRECTIONAL ISOLATE
_MIRRORS = dict(zip("()[]{}<>«»", ")(][}{><»«", strict=True))
_STRONG_RTL = {"R", "AL"}
_NUMBERS = {"EN", "AN"}


class BidiMode(StrEnum):
    LOGICAL = "logical"  # plain text in memory order, nothing added
    ISOLATE = "isolate"  # logical order, RTL lines wrapped in RLI ... PDI, for BiDi-aware terminals
    VISUAL = "visual"  # reordered for terminals that draw left to right


def choose_mode(is_tty: bool, environ: dict[str, str] | None = None) -> BidiMode:
    env = dict(os.environ if environ is None else environ)
    if not is_tty:
        return BidiMode.LOGICAL
    if env.get("TERM_PROGRAM") in ("vscode", "iTerm.app", "WezTerm", "tmux") or "WT_SESSION" in env:
        return BidiMode.VISUAL
    vte = env.get("VTE_VERSION", "")
    if (vte.isdigit() and int(vte) >= 5800) or "KONSOLE_VERSION" in env or env.get("TERM_PROGRAM") == "Apple_Terminal":
        return BidiMode.ISOLATE
    return BidiMode.VISUAL


def has_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(char) in _STRONG_RTL for char in text)


def _paragraph_level(classes: list[str]) -> int:
    for cls in classes:
        if cls in _STRONG_RTL:
            return 1
        if cls == "L":
            return 0
    return 0


def _resolve_weak(classes: list[str]) -> list[str]:
    """W1-W7 in short: AL->R, separators between digits and terminators next to digits join the number."""
    resolved = ["R" if cls == "AL" else cls for cls in classes]
    resolved = ["ON" if cls == "NSM" else cls for cls in resolved]
    for index in range(1, len(resolved) - 1):
        if resolved[index] in ("CS", "ES") and resolved[index - 1] == "EN" == resolved[index + 1]:
            resolved[index] = "EN"
    for index, cls in enumerate(resolved):
        if cls == "ET":
            neighbours = resolved[max(0, index - 1) : index] + resolved[index + 1 : index + 2]
            if "EN" in neighbours:
                resolved[index] = "EN"
    return resolved


def _direction(cls: str) -> str | None:
    """Strong direction for neutral resolution: numbers count as right-to-left (rule N1)."""
    if cls == "L":
        return "L"
    if cls in _STRONG_RTL or cls in _NUMBERS or cls == "R":
        return "R"
    return None


def _levels(text: str) -> list[int]:
    classes = [unicodedata.bidirectional(char) or "ON" for char in text]
    base = _paragraph_level(classes)
    resolved = _resolve_weak(classes)
    embedding = "R" if base else "L"
    directions: list[str | None] = [_direction(cls) for cls in resolved]
    # N1/N2: a run of neutrals takes the direction of both neighbours if they agree, else the paragraph's.
    index = 0
    while index < len(directions):
        if directions[index] is not None:
            index += 1
            continue
        end = index
        while end < len(directions) and directions[end] is None:
            end += 1
        before = directions[index - 1] if index > 0 else embedding
        after = directions[end] if end < len(directions) else embedding
        fill = before if before == after else embedding
        for position in range(index, end):
            directions[position] = fill
        index = end
    levels: list[int] = []
    for cls, direction in zip(resolved, directions, strict=True):
        # I1/I2: numbers are left-to-right inside right-to-left text.
        if cls in _NUMBERS:
            levels.append(base + 2 if base % 2 == 0 else base + 1)
        elif direction == "R":
            levels.append(base if base % 2 else base + 1)
        else:
            levels.append(base if base % 2 == 0 else base + 1)
    return levels


def visual(text: str) -> str:
    """`text` (one line) in the order a left-to-right terminal must draw it; mirrored brackets in RTL runs."""
    if not has_rtl(text):
        return text
    levels = _levels(text)
    return "".join(
        _MIRRORS.get(text[index], text[index]) if levels[index] % 2 else text[index]
        for index in _visual_positions(levels)
    )


def _visual_positions(levels: list[int]) -> list[int]:
    """Rule L2: for each visual position, the logical index drawn there."""
    positions = list(range(len(levels)))
    work = list(levels)
    lowest_odd = min((level for level in work if level % 2), default=1)
    for level in range(max(work, default=0), lowest_odd - 1, -1):
        index = 0
        while index < len(positions):
            if work[index] < level:
                index += 1
                continue
            end = index
            while end < len(positions) and work[end] >= level:
                end += 1
            positions[index:end] = reversed(positions[index:end])
            work[index:end] = reversed(work[index:end])
            index = end
    return positions


def display_width(text: str) -> int:
    """Terminal columns: wide East Asian and emoji take two, combining marks and format characters none."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def render(text: str, mode: BidiMode) -> str:
    """One line ready to print in `mode`."""
    if not has_rtl(text) or mode is BidiMode.LOGICAL:
        return text
    if mode is BidiMode.ISOLATE:
        return f"{RLI}{text}{PDI}"
    return visual(text)
