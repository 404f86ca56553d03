"""Phone numbers as the Graph API wants them: E.164 with '+' to send, digits only (`wa_id`) to key leads.

Input comes from the CRM and from agents typing numbers, so it arrives in every shape:
"052-555-1234", "+972 52 555 1234", "00972525551234", "972525551234" (Meta's own wa_id form).
Meta prepends the *business* number's country code to a `to` without '+', and our business number is
American, so a number must never leave here without its country code.

Only this module imports phonenumbers (its metadata is large), and only when a number is first normalized:
the webhook never imports it, and routes that read no number (a conversation list) do not pay for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import phonenumbers

# E.164 caps a number at 15 digits; a raw string far longer than any formatted number is not worth parsing.
_MAX_E164_DIGITS = 15
_MAX_RAW_LENGTH = 64
# Separators people and spreadsheets put inside numbers, including the invisible direction marks that
# Hebrew text wraps around numbers when they are copied from a right-to-left page.
_SEPARATORS = re.compile(r"[\s\-.()\u2010-\u2015\u2212\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ASCII_NUMBER = re.compile(r"\+?[0-9]+")


@cache
def _reasons() -> dict[int, str]:
    import phonenumbers

    return {
        phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country calling code",
        phonenumbers.ValidationResult.TOO_SHORT: "too short",
        phonenumbers.ValidationResult.TOO_LONG: "too long",
        phonenumbers.ValidationResult.INVALID_LENGTH: "impossible length for its country",
        phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "local number without an area code",
    }


class InvalidPhoneNumberError(ValueError):
    """The input cannot be a phone number. The message names the reason, never the number itself."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"not a usable phone number: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NormalizedPhone:
    e164: str
    """"+972525551234": what the Graph API's `to` gets."""
    wa_id: str
    """"972525551234": how webhooks name the user, and how leads are keyed."""


def _international_digits(compact: str) -> str | None:
    """'+'-prefixed form if the compact input is international, None if it is national (leading 0)."""
    if compact.startswith("+"):
        return compact
    if compact.startswith("00"):
        return "+" + compact[2:]
    if compact.startswith("0"):
        return None
    # Bare digits are Meta's wa_id form (country code first), never a national number missing its 0.
    return "+" + compact


def normalize_phone(raw: str, default_region: str = "IL") -> NormalizedPhone:
    """Normalize any accepted spelling of a number; a leading single 0 is national in `default_region`.

    Rejects what cannot possibly be a number (letters, wrong length for the country, unknown country code,
    and a number that is neither known to phonenumbers nor of a mobile number's length in its country).
    Deliberately does not require is_valid_number alone: its ranges lag behind new mobile and VoIP
    prefixes, and Meta is the real judge.
    """
    if not isinstance(raw, str):
        raise InvalidPhoneNumberError("not a string")
    if len(raw) > _MAX_RAW_LENGTH:
        raise InvalidPhoneNumberError("too long")
    compact = _SEPARATORS.sub("", raw)
    if not compact:
        raise InvalidPhoneNumberError("empty")
    if not _ASCII_NUMBER.fullmatch(compact):
        raise InvalidPhoneNumberError("only digits, an optional leading '+' and separators are allowed")
    international = _international_digits(compact)
    digit_count = len(international) - 1 if international else len(compact) - 1
    if digit_count > _MAX_E164_DIGITS:
        raise InvalidPhoneNumberError("too long")
    import phonenumbers

    try:
        parsed = phonenumbers.parse(international or compact, None if international else default_region.upper())
    except phonenumbers.NumberParseException as error:
        raise InvalidPhoneNumberError(_parse_failure(error)) from None
    verdict = phonenumbers.is_possible_number_with_reason(parsed)
    if verdict != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise InvalidPhoneNumberError(_reasons().get(verdict, "not a possible number"))
    if not _possible_for_its_region(parsed):
        raise InvalidPhoneNumberError("impossible length for its country")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) - 1 > _MAX_E164_DIGITS:
        raise InvalidPhoneNumberError("too long")
    return NormalizedPhone(e164=e164, wa_id=e164[1:])


def _possible_for_its_region(parsed: phonenumbers.PhoneNumber) -> bool:
    """A number phonenumbers knows to be assigned, or one of a mobile number's length in its country.

    `is_possible_number` alone accepts any length some number type of the country has: in Israel that lets
    through `05255512` (8 digits, a landline's length, with a mobile prefix) and `052555123456`. A mobile
    length still accepts mobile ranges newer than phonenumbers' metadata, which Meta then judges.
    """
    import phonenumbers

    if phonenumbers.is_valid_number(parsed):
        return True
    mobile = phonenumbers.is_possible_number_for_type_with_reason(parsed, phonenumbers.PhoneNumberType.MOBILE)
    return bool(mobile == phonenumbers.ValidationResult.IS_POSSIBLE)


def _parse_failure(error: phonenumbers.NumberParseException) -> str:
    import phonenumbers

    if error.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
        return "unknown country calling code"
    if error.error_type in (
        phonenumbers.NumberParseException.TOO_SHORT_NSN,
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD,
    ):
        return "too short"
    if error.error_type == phonenumbers.NumberParseException.TOO_LONG:
        return "too long"
    return "not a phone number"
