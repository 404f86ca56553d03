"""The Graph API (WhatsApp Cloud API) client and its errors.

The errors are imported eagerly: they are dependency-free, and the webhook maps the codes of `failed`
statuses with them. GraphClient and SendResult are loaded on first access, so importing this package
never pulls in requests or phonenumbers for code that only needs the errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from whatsapp_crm.graph.errors import (
    AccountRestrictedError,
    AuthError,
    EcosystemLimitError,
    GraphAPIError,
    GraphPermissionError,
    GraphUnavailableError,
    InvalidMessageError,
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

if TYPE_CHECKING:
    from whatsapp_crm.graph.client import GraphClient, SendResult

__all__ = [
    "AccountRestrictedError",
    "AuthError",
    "EcosystemLimitError",
    "GraphAPIError",
    "GraphClient",
    "GraphPermissionError",
    "GraphUnavailableError",
    "InvalidMessageError",
    "InvalidParameterError",
    "MarketingOptOutError",
    "MediaError",
    "PairRateLimitError",
    "PaymentError",
    "PhoneNumberNotRegisteredError",
    "RateLimitError",
    "ReengagementRequiredError",
    "SendResult",
    "SpamRateLimitError",
    "TemplateError",
    "TransientError",
    "UndeliverableError",
    "error_class_for",
    "error_from_response",
]

_LAZY = frozenset({"GraphClient", "SendResult"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from whatsapp_crm.graph import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
