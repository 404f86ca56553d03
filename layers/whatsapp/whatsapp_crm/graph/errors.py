"""Graph API errors as exceptions, chosen by Meta's numeric error code through a registry, never by text.

Meta says to branch on `code` (and `error_data.details`), not on titles, subcodes or HTTP status: titles
are being deprecated and the HTTP status of a given code has changed over time (130429 is 400 in Meta's
old table and 429 at some BSPs). HTTP status is only the fallback for bodies without a known code.

Each subclass declares the codes it owns in `__error_codes__` (and code ranges in `__error_code_ranges__`);
defining a subclass registers it. `retryable` says whether sending the same request later can succeed;
`auto_retry` says whether the client may do that itself, within one call, after a short backoff.
Rate limits are retryable but never auto-retried: the caller reschedules them (a delayed SQS message),
because waiting in-process would burn Lambda time and hammer a limit Meta counts per second or per pair.

This module has no dependencies so the webhook can map the error codes of `failed` statuses too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

# Graph has echoed a malformed token back inside error messages ("Malformed access token EAA…").
_TOKEN_LIKE = re.compile(r"\bEA[A-Za-z0-9]{20,}")
_TITLE_PREFIX = re.compile(r"^\(#\d+\)\s*")
_MAX_TEXT = 1000

_registry: dict[int, type[GraphAPIError]] = {}
_range_registry: list[tuple[range, type[GraphAPIError]]] = []


def redact(text: str | None, *secrets: str) -> str | None:
    """`text` with every given secret, and anything shaped like a Meta access token, replaced."""
    if text is None:
        return None
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _TOKEN_LIKE.sub("[redacted]", text)[:_MAX_TEXT]


class GraphAPIError(Exception):
    """Any failure of a Graph API call. Subclasses narrow it by Meta error code."""

    __error_codes__: ClassVar[frozenset[int]] = frozenset()
    __error_code_ranges__: ClassVar[tuple[range, ...]] = ()
    retryable: ClassVar[bool] = False
    auto_retry: ClassVar[bool] = False

    code: int | None
    title: str | None
    details: str | None
    fbtrace_id: str | None
    http_status: int | None
    subcode: int | None
    retry_after_seconds: int | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Only codes a class declares itself: a subclass inherits the attribute but must not re-register it.
        for code in cls.__dict__.get("__error_codes__", ()):
            if code in _registry:
                raise TypeError(f"Graph error code {code} claimed by {_registry[code].__name__} and {cls.__name__}")
            _registry[code] = cls
        for code_range in cls.__dict__.get("__error_code_ranges__", ()):
            _range_registry.append((code_range, cls))

    def __init__(
        self,
        message: str | None = None,
        *,
        code: int | None = None,
        title: str | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
        http_status: int | None = None,
        subcode: int | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        self.code = code
        self.title = title
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status
        self.subcode = subcode
        self.retry_after_seconds = retry_after_seconds
        super().__init__(message or self._describe())

    def _describe(self) -> str:
        text = f"Graph API error {self.code}" if self.code is not None else "Graph API error"
        if self.http_status is not None:
            text += f" (HTTP {self.http_status})"
        if self.title:
            text += f": {self.title}"
        if self.details and self.details != self.title:
            text += f": {self.details}"
        if self.fbtrace_id:
            text += f" [fbtrace_id {self.fbtrace_id}]"
        return text

    def as_dict(self) -> dict[str, Any]:
        """The part of the error an API response may show a caller."""
        return {"code": self.code, "title": self.title, "details": self.details, "fbtrace_id": self.fbtrace_id}


class AuthError(GraphAPIError):
    """The access token is missing, expired or revoked: rotate it and alert; resending cannot help."""

    __error_codes__ = frozenset({0, 190})


class GraphPermissionError(GraphAPIError):
    """The app or token lacks a permission or capability: a configuration problem."""

    __error_codes__ = frozenset({3, 10, 131005})
    __error_code_ranges__ = (range(200, 300),)


class AccountRestrictedError(GraphAPIError):
    """The WhatsApp Business Account is restricted or locked for a policy reason."""

    __error_codes__ = frozenset({368, 131031})


class PhoneNumberNotRegisteredError(GraphAPIError):
    """The sending phone number is not registered on the Cloud API (onboarding not finished)."""

    __error_codes__ = frozenset({133010})


class PaymentError(GraphAPIError):
    """The business's payment method has a problem; Meta refuses paid messages until billing is fixed."""

    __error_codes__ = frozenset({131042})


class RateLimitError(GraphAPIError):
    """A throughput limit: retry after `retry_after_seconds`, from a scheduler rather than in-process."""

    __error_codes__ = frozenset({4, 80007, 130429})
    retryable = True
    # App and WABA limits are counted over minutes; the per-number limit (130429) is per second.
    _DEFAULT_RETRY_AFTER: ClassVar[Mapping[int, int]] = {4: 60, 80007: 60, 130429: 6}
    _FALLBACK_RETRY_AFTER: ClassVar[int] = 60

    retry_after_seconds: int

    def __init__(self, message: str | None = None, *, retry_after_seconds: int | None = None, **fields: Any) -> None:
        code = fields.get("code")
        if retry_after_seconds is None:
            hint = self._DEFAULT_RETRY_AFTER.get(code) if isinstance(code, int) else None
            retry_after_seconds = hint or self._FALLBACK_RETRY_AFTER
        super().__init__(message, retry_after_seconds=retry_after_seconds, **fields)


class PairRateLimitError(RateLimitError):
    """Too many messages to the same user: Meta allows about one every 6 s, and asks for 4^n s backoff."""

    __error_codes__ = frozenset({131056})
    _DEFAULT_RETRY_AFTER: ClassVar[Mapping[int, int]] = {131056: 6}
    _FALLBACK_RETRY_AFTER: ClassVar[int] = 6
    _MAX_DELAY_SECONDS: ClassVar[int] = 900

    @classmethod
    def delay_for_attempt(cls, attempt: int) -> int:
        """Seconds to wait before the n-th resend (1-based): 6, 16, 64, 256, then SQS's 900 s maximum."""
        return min(cls._MAX_DELAY_SECONDS, max(cls._FALLBACK_RETRY_AFTER, int(4 ** max(attempt, 1))))


class SpamRateLimitError(GraphAPIError):
    """Meta throttles the number for low quality (131048): slowing down will not fix it, better content will."""

    __error_codes__ = frozenset({131048})


class EcosystemLimitError(GraphAPIError):
    """Marketing template not delivered to keep per-user engagement healthy; do not resend within 24 h."""

    __error_codes__ = frozenset({131049})


class ReengagementRequiredError(GraphAPIError):
    """More than 24 h since the user last wrote: only an approved template may be sent."""

    __error_codes__ = frozenset({131047})


class UndeliverableError(GraphAPIError):
    """The recipient cannot receive this (not on WhatsApp, old client, terms not accepted...)."""

    __error_codes__ = frozenset({131026})


class MarketingOptOutError(GraphAPIError):
    """The user stopped marketing messages from this business; never resend marketing to them."""

    __error_codes__ = frozenset({131050})


class MediaError(GraphAPIError):
    """Meta could not download or use the media in the message (bad link, type or size)."""

    __error_codes__ = frozenset({131052, 131053})


class MediaDownloadError(MediaError):
    """A media download URL was refused (expired after its 5 minutes, or not Meta's): fetch a fresh URL.

    Raised for downloads only; Meta's lookaside host answers with bare HTTP statuses, not Graph codes.
    """


class MediaTooLargeError(MediaError):
    """A media file is larger than the caller allows; nothing past the limit was read."""

    def __init__(self, message: str | None = None, *, limit: int, size: int | None = None, **fields: Any) -> None:
        self.limit = limit
        self.size = size
        super().__init__(message or f"media larger than {limit} bytes", **fields)


class TemplateError(GraphAPIError):
    """Any template problem: missing or unapproved in that language, wrong parameters, paused, disabled."""

    __error_code_ranges__ = (range(132000, 133000),)


class InvalidParameterError(GraphAPIError):
    """The request itself is wrong (a bug on our side or bad input): fix it; resending cannot help."""

    __error_codes__ = frozenset({100, 131008, 131009, 131021, 131051})


class TransientError(GraphAPIError):
    """Meta's side failed temporarily; the client resends these itself, with backoff, within its bounds."""

    __error_codes__ = frozenset({1, 2, 131000, 131016, 133004, 131057})
    retryable = True
    auto_retry = True


class GraphUnavailableError(TransientError):
    """The Graph API could not be reached or kept failing after the client's own retries: try much later.

    When retries ran out on an error response, its code, title, details and fbtrace_id are kept here
    and the last error is the `__cause__`.
    """

    auto_retry = False


class InvalidMessageError(ValueError):
    """A send was refused before any request left: the message breaks a rule Meta would reject it for."""


def error_class_for(code: int | None, http_status: int | None = None) -> type[GraphAPIError]:
    """The exception class for a Graph error code (also for `errors[].code` in a `failed` status webhook)."""
    if code is not None:
        if code in _registry:
            return _registry[code]
        for code_range, cls in _range_registry:
            if code in code_range:
                return cls
    if http_status is not None and http_status >= 500:
        return TransientError
    if http_status == 429:
        return RateLimitError
    return GraphAPIError


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _as_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _title(error: Mapping[str, Any]) -> str | None:
    title = _as_text(error.get("title")) or _as_text(error.get("error_user_title"))
    if title:
        return title
    message = _as_text(error.get("message"))
    return _TITLE_PREFIX.sub("", message) if message else None


def _details(error: Mapping[str, Any]) -> str | None:
    error_data = error.get("error_data")
    if isinstance(error_data, Mapping):
        details = _as_text(error_data.get("details"))
        if details:
            return details
    return _as_text(error.get("error_user_msg"))


def error_from_response(
    http_status: int, body: Any, *, retry_after_seconds: int | None = None, secrets: Sequence[str] = ()
) -> GraphAPIError:
    """The exception for an error response: `body` is the parsed JSON (or anything else, e.g. raw text).

    `retry_after_seconds` is a Retry-After header the caller found; it overrides the per-code hint.
    `secrets` (the access token) are scrubbed from the texts Meta sent back.
    """
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        cls = error_class_for(None, http_status)
        return cls(http_status=http_status, title="no Graph error object in the response")
    code = _as_int(error.get("code"))
    cls = error_class_for(code, http_status)
    fields: dict[str, Any] = {
        "code": code,
        "title": redact(_title(error), *secrets),
        "details": redact(_details(error), *secrets),
        "fbtrace_id": _as_text(error.get("fbtrace_id")),
        "http_status": http_status,
        "subcode": _as_int(error.get("error_subcode")),
    }
    if retry_after_seconds is not None:
        fields["retry_after_seconds"] = retry_after_seconds
    return cls(**fields)
