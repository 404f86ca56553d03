"""Domain exceptions shared across functions. Adapters translate infrastructure errors into these."""

from __future__ import annotations


class ConfigurationError(RuntimeError):
    """A required setting or secret is missing or malformed."""


class StoreUnavailableError(RuntimeError):
    """DynamoDB could not durably record an event; the caller must not acknowledge it."""


class QueueUnavailableError(RuntimeError):
    """SQS did not accept every message; the caller must not acknowledge the webhook."""


class UnstorableError(ValueError):
    """DynamoDB refused an item for good (over 400 KB, a key over its length limit, an attribute it cannot
    hold). Retrying cannot help: the caller sets the part aside instead of failing the whole request."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"DynamoDB cannot store this item: {reason}")
        self.reason = reason
