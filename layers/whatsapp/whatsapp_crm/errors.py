"""Domain exceptions shared across functions. Adapters translate infrastructure errors into these."""

from __future__ import annotations


class ConfigurationError(RuntimeError):
    """A required setting or secret is missing or malformed."""


class StoreUnavailableError(RuntimeError):
    """DynamoDB could not durably record an event; the caller must not acknowledge it."""


class QueueUnavailableError(RuntimeError):
    """SQS did not accept every message; the caller must not acknowledge the webhook."""
