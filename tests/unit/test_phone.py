"""Phone normalization: every way a number reaches us becomes the E.164 Meta must get, or a clear refusal."""

from __future__ import annotations

import pytest

from whatsapp_crm.phone import InvalidPhoneNumberError, NormalizedPhone, normalize_phone

ISRAELI_MOBILE = NormalizedPhone(e164="+972525551234", wa_id="972525551234")


class TestIsraeliNumbers:
    @pytest.mark.parametrize(
        "raw",
        [
            "052-555-1234",
            "0525551234",
            "052 555 1234",
            "(052) 555.1234",
            "+972 52-555-1234",
            "+972525551234",
            "00972525551234",
            "00 972 52 555 1234",
            "972525551234",
            " +972 (52) 555 1234 ",
            # Copied from a Hebrew page: direction marks and a non-breaking space around the number.
            "\u200e+972\u00a052-555-1234\u200f",
            "052\u2013555\u20131234",
        ],
    )
    def test_every_spelling_of_a_mobile_becomes_one_number(self, raw: str) -> None:
        # Given an Israeli mobile written the way agents and the CRM write it
        # When it is normalized
        result = normalize_phone(raw)
        # Then it is the international number with '+', and the wa_id webhooks use
        assert result == ISRAELI_MOBILE

    def test_trunk_zero_written_after_the_country_code_is_dropped(self) -> None:
        # Given the common Israeli mistake of keeping the 0 after +972
        result = normalize_phone("+972-052-555-1234")
        # Then the number is still the right one
        assert result == ISRAELI_MOBILE

    @pytest.mark.parametrize(
        ("raw", "e164"),
        [
            ("03-123-4567", "+97231234567"),
            ("02-6234567", "+97226234567"),
            ("04 8123456", "+97248123456"),
            ("09-7654321", "+97297654321"),
            ("077-1234567", "+972771234567"),
        ],
    )
    def test_landlines_and_voip_numbers_are_national_in_israel(self, raw: str, e164: str) -> None:
        assert normalize_phone(raw).e164 == e164

    def test_a_possible_number_is_accepted_even_if_its_range_is_not_known_to_be_assigned(self) -> None:
        # Given a number of the right length whose prefix the phonenumbers metadata does not list as assigned
        # When it is normalized
        result = normalize_phone("+972 50 123 4567")
        # Then it is accepted: Meta, not a metadata snapshot, decides whether it reaches someone
        assert result.e164 == "+972501234567"


class TestInternationalNumbers:
    @pytest.mark.parametrize(
        ("raw", "e164"),
        [
            ("+1 (415) 555-0142", "+14155550142"),
            ("14155550142", "+14155550142"),
            ("001 415 555 0142", "+14155550142"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+33 6 12 34 56 78", "+33612345678"),
            ("4915112345678", "+4915112345678"),
            ("+39 06 1234 5678", "+390612345678"),
        ],
    )
    def test_numbers_with_a_country_code_keep_it(self, raw: str, e164: str) -> None:
        assert normalize_phone(raw).e164 == e164

    def test_bare_digits_are_the_wa_id_form_never_an_israeli_national_number(self) -> None:
        # Given Meta's wa_id of an American user, while Israel is the default region
        result = normalize_phone("14155550142", default_region="IL")
        # Then it stays American: a bare number is read with its country code first
        assert result == NormalizedPhone(e164="+14155550142", wa_id="14155550142")

    def test_a_leading_zero_is_national_in_the_region_asked_for(self) -> None:
        # Given a British national number and the UK as the default region
        result = normalize_phone("020 7946 0958", default_region="GB")
        # Then the UK country code replaces the trunk zero
        assert result.e164 == "+442079460958"

    def test_wa_id_round_trips(self) -> None:
        # Given a number normalized once
        first = normalize_phone("052-555-1234")
        # When its wa_id (what webhooks report) is normalized again
        second = normalize_phone(first.wa_id)
        # Then it is the same number
        assert second == first


class TestRefusals:
    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("", "empty"),
            ("   ", "empty"),
            ("-- ()", "empty"),
            ("052-555-ABCD", "only digits"),
            ("tel:+972525551234", "only digits"),
            ("+972+525551234", "only digits"),
            ("\u0660\u0665\u0662\u0665\u0665\u0665\u0661\u0662\u0663\u0664", "only digits"),
            ("052555", "too short"),
            ("+1 415", "too short"),
            ("+1234", "too short"),
            ("+999 123 456 789", "unknown country calling code"),
            ("+9725255512345678", "too long"),
            ("1234567890123456", "too long"),
            ("0" * 80, "too long"),
        ],
    )
    def test_impossible_input_is_refused_with_its_reason(self, raw: str, reason: str) -> None:
        # When something that cannot be a phone number is normalized
        with pytest.raises(InvalidPhoneNumberError) as refused:
            normalize_phone(raw)
        # Then the refusal says why
        assert reason in str(refused.value)

    def test_the_refusal_does_not_repeat_the_number(self) -> None:
        # Given a number that is one digit short, whose message may end up in a log line
        with pytest.raises(InvalidPhoneNumberError) as refused:
            normalize_phone("+1 415 555 014")
        # Then the message carries the reason but not the personal data
        assert "415" not in str(refused.value)
        assert refused.value.reason == "too short"

    def test_the_refusal_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            normalize_phone("not a number")

    def test_a_non_string_is_refused(self) -> None:
        with pytest.raises(InvalidPhoneNumberError):
            normalize_phone(972525551234)  # type: ignore[arg-type]
