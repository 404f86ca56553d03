"""The business numbers this deployment owns (`WhatsAppPhoneNumberIds`), and which of them a send goes from.

Meta delivers every webhook of the WhatsApp Business Account to every app subscribed to it, so a webhook can
name a `phone_number_id` that belongs to another deployment (another office's number on the same WABA, a
test number). Nothing addressed to a number we do not own becomes a lead conversation or gets an answer, and
nothing is ever sent from one: our token may well be allowed to.
"""

from __future__ import annotations


def parse_phone_number_ids(raw: str) -> tuple[str, ...]:
    """`"106540352242922, 110022003300"` -> both ids, in order, without blanks or repeats."""
    ids: list[str] = []
    for part in raw.split(","):
        part = part.strip()
        if part and part not in ids:
            ids.append(part)
    return tuple(ids)


def is_ours(phone_number_id: str | None, own: tuple[str, ...]) -> bool:
    """Whether a number is one of ours. With no list configured (local runs, tests) every number is; the
    template requires the list, so a deployment always has one."""
    return not own or phone_number_id in own


def sending_number(received_on: str | None, own: tuple[str, ...], default: str = "") -> str:
    """The number a message to a lead goes from: the one the lead last wrote to when it is ours (the
    24-hour window is per number), otherwise the first one listed (or `default`); "" when none is known."""
    if received_on and is_ours(received_on, own):
        return received_on
    return own[0] if own else default
