"""Graph error responses become exceptions by Meta's code, so callers can decide what to do without reading text."""

from __future__ import annotations

from typing import Any

import pytest

from whatsapp_crm.graph.errors import (
    AccountRestrictedError,
    AuthError,
    EcosystemLimitError,
    GraphAPIError,
    GraphPermissionError,
    GraphUnavailableError,
    InvalidParameterError,
    MarketingOptOutError,
    MediaError,
    PairRateLimitError,
    PaymentError,
    PhoneNumberNotRegisteredError,
    RateLimitError,
    ReengagementRequiredError,
    SpamRateLimitError,
    TemplateError,
    TransientError,
    UndeliverableError,
    error_class_for,
    error_from_response,
)


def meta_error(
    code: Any, message: str = "(#0) Something", details: str | None = "details", **extra: Any
) -> dict[str, Any]:
    """An error body shaped like the send endpoint's (Meta's documented example, field for field)."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = "Az8or2yhqkZfEZ-_4Qn_Bam"
    error.update(extra)
    return {"error": error}


EVERY_LISTED_CODE = [
    (0, AuthError, False),
    (190, AuthError, False),
    (3, GraphPermissionError, False),
    (10, GraphPermissionError, False),
    (200, GraphPermissionError, False),
    (250, GraphPermissionError, False),
    (299, GraphPermissionError, False),
    (131005, GraphPermissionError, False),
    (4, RateLimitError, True),
    (80007, RateLimitError, True),
    (130429, RateLimitError, True),
    (131056, PairRateLimitError, True),
    (131047, ReengagementRequiredError, False),
    (131026, UndeliverableError, False),
    (131050, MarketingOptOutError, False),
    (131048, SpamRateLimitError, False),
    (131049, EcosystemLimitError, False),
    (132000, TemplateError, False),
    (132001, TemplateError, False),
    (132015, TemplateError, False),
    (132999, TemplateError, False),
    (100, InvalidParameterError, False),
    (131008, InvalidParameterError, False),
    (131009, InvalidParameterError, False),
    (131021, InvalidParameterError, False),
    (131051, InvalidParameterError, False),
    (1, TransientError, True),
    (2, TransientError, True),
    (131000, TransientError, True),
    (131016, TransientError, True),
    (133004, TransientError, True),
    (131057, TransientError, True),
    (368, AccountRestrictedError, False),
    (131031, AccountRestrictedError, False),
    (133010, PhoneNumberNotRegisteredError, False),
    (131042, PaymentError, False),
    (131053, MediaError, False),
]


class TestRegistry:
    @pytest.mark.parametrize(("code", "expected", "retryable"), EVERY_LISTED_CODE)
    def test_each_code_maps_to_its_exception(self, code: int, expected: type[GraphAPIError], retryable: bool) -> None:
        # Given Meta's error body for the code, with an HTTP status that would suggest otherwise
        body = meta_error(code, f"(#{code}) Title")
        # When it is mapped
        error = error_from_response(400, body)
        # Then the code alone decides the class, and with it whether a later resend can succeed
        assert type(error) is expected
        assert error.retryable is retryable
        assert error.code == code

    @pytest.mark.parametrize("http_status", [400, 403, 500, 503])
    def test_the_code_wins_over_the_http_status(self, http_status: int) -> None:
        # Given the re-engagement code with any HTTP status Meta has used over the years
        error = error_from_response(http_status, meta_error(131047))
        # Then it is still re-engagement, never "server trouble"
        assert isinstance(error, ReengagementRequiredError)
        assert error.http_status == http_status

    def test_only_transient_codes_are_resent_by_the_client_itself(self) -> None:
        # Rate limits are retryable but must be rescheduled by the caller, never retried in-process.
        auto = {code for code, _, _ in EVERY_LISTED_CODE if error_class_for(code).auto_retry}
        assert auto == {1, 2, 131000, 131016, 133004, 131057}

    def test_codes_just_outside_the_template_range_are_not_template_errors(self) -> None:
        assert error_class_for(131999, 400) is GraphAPIError
        assert error_class_for(133000, 400) is GraphAPIError

    def test_a_code_cannot_be_claimed_twice(self) -> None:
        with pytest.raises(TypeError, match="131047"):

            class _Duplicate(GraphAPIError):
                __error_codes__ = frozenset({131047})


class TestUnknownAndMalformedResponses:
    def test_unknown_code_on_a_4xx_is_a_plain_permanent_error(self) -> None:
        error = error_from_response(400, meta_error(987654))
        assert type(error) is GraphAPIError
        assert error.retryable is False
        assert error.code == 987654

    def test_unknown_code_on_a_5xx_is_transient(self) -> None:
        error = error_from_response(502, meta_error(987654))
        assert type(error) is TransientError
        assert error.auto_retry is True

    @pytest.mark.parametrize("body", [None, "", "<html>Bad Gateway</html>", b"\x00\xff", [], {"error": "oops"}, 42])
    def test_a_5xx_without_a_graph_error_body_is_transient(self, body: Any) -> None:
        # Given a load balancer's answer instead of Graph's JSON
        error = error_from_response(503, body)
        # Then it is retried like any server trouble, and says which status it was
        assert type(error) is TransientError
        assert error.code is None
        assert error.http_status == 503
        assert "503" in str(error)

    @pytest.mark.parametrize("body", [None, "Bad Request", {"unexpected": True}])
    def test_a_4xx_without_a_graph_error_body_is_permanent(self, body: Any) -> None:
        error = error_from_response(400, body)
        assert type(error) is GraphAPIError
        assert error.retryable is False

    def test_a_bare_429_is_a_rate_limit(self) -> None:
        error = error_from_response(429, "Too Many Requests")
        assert isinstance(error, RateLimitError)
        assert error.retry_after_seconds > 0

    def test_a_numeric_string_code_is_still_read(self) -> None:
        assert isinstance(error_from_response(400, meta_error("131056")), PairRateLimitError)

    def test_a_boolean_code_is_not_mistaken_for_code_1(self) -> None:
        assert type(error_from_response(400, meta_error(True))) is GraphAPIError


class TestFields:
    def test_title_details_and_trace_come_from_meta_s_error_object(self) -> None:
        # Given Meta's documented error example
        body = meta_error(
            130429,
            "(#130429) Rate limit hit",
            "Cloud API message throughput has been reached.",
            error_subcode=2494055,
        )
        # When it is mapped
        error = error_from_response(400, body)
        # Then the caller gets the parts an API response may show, without the "(#code)" prefix
        assert error.as_dict() == {
            "code": 130429,
            "title": "Rate limit hit",
            "details": "Cloud API message throughput has been reached.",
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
        }
        assert error.subcode == 2494055
        assert error.http_status == 400

    def test_a_webhook_style_title_field_is_preferred(self) -> None:
        body = {"error": {"code": 131047, "title": "Re-engagement message", "message": "(#131047) Other"}}
        assert error_from_response(400, body).title == "Re-engagement message"

    def test_str_names_code_title_details_and_trace(self) -> None:
        error = error_from_response(400, meta_error(131026, "(#131026) Message undeliverable", "Not on WhatsApp"))
        assert str(error) == (
            "Graph API error 131026 (HTTP 400): Message undeliverable: Not on WhatsApp"
            " [fbtrace_id Az8or2yhqkZfEZ-_4Qn_Bam]"
        )


class TestRetryHints:
    @pytest.mark.parametrize(("code", "seconds"), [(4, 60), (80007, 60), (130429, 6), (131056, 6)])
    def test_rate_limits_say_when_to_try_again(self, code: int, seconds: int) -> None:
        error = error_from_response(400, meta_error(code))
        assert isinstance(error, RateLimitError)
        assert error.retry_after_seconds == seconds

    def test_a_retry_after_header_overrides_the_hint(self) -> None:
        error = error_from_response(429, meta_error(130429), retry_after_seconds=17)
        assert error.retry_after_seconds == 17

    def test_pair_rate_limits_are_rate_limits(self) -> None:
        # A caller that reschedules every RateLimitError also handles the per-user limit.
        assert issubclass(PairRateLimitError, RateLimitError)

    def test_pair_rate_backoff_grows_by_four_and_stays_within_an_sqs_delay(self) -> None:
        delays = [PairRateLimitError.delay_for_attempt(attempt) for attempt in range(1, 8)]
        assert delays == [6, 16, 64, 256, 900, 900, 900]

    def test_giving_up_is_transient_but_not_resent_again(self) -> None:
        assert issubclass(GraphUnavailableError, TransientError)
        assert GraphUnavailableError.retryable is True
        assert GraphUnavailableError.auto_retry is False


class TestSecrets:
    TOKEN = "EAAGm0PX4ZCpsBAKZBxyz123456789abcdefSECRET"

    def body_echoing_the_token(self) -> dict[str, Any]:
        # Graph has answered a malformed token with a message that repeats it.
        return meta_error(
            190, f"Malformed access token {self.TOKEN}", f"token {self.TOKEN} rejected", error_subcode=463
        )

    def test_a_token_echoed_by_meta_never_reaches_str_repr_or_the_api_view(self) -> None:
        error = error_from_response(401, self.body_echoing_the_token())
        assert isinstance(error, AuthError)
        for text in (str(error), repr(error), str(error.as_dict()), str(error.args)):
            assert self.TOKEN not in text
            assert "[redacted]" in text

    def test_a_token_of_any_shape_is_scrubbed_when_the_caller_names_it(self) -> None:
        token = "local-dev-token-42"
        body = meta_error(190, f"Invalid token {token}", None)
        error = error_from_response(401, body, secrets=(token,))
        assert token not in str(error)
        assert token not in repr(error)
