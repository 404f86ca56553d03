"""The 24-hour customer service window a lead's message opens: free-form messages only inside it.

Apart from outbound.py (the send path) so that the read API can show when a window closes without
importing the send models and the template check (issue 11: what a path does not use, it does not import).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from whatsapp_crm.clock import FUTURE_SKEW_SECONDS, iso, parse_iso_or_none, shifted_iso

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)


def _window_start(last_inbound_at: object, now: datetime | None) -> datetime | None:
    """The lead's last message as a usable window start: a stored value that is not a moment, or one
    implausibly far in the future (written before the webhook checked Meta's timestamps), opens nothing."""
    start = parse_iso_or_none(last_inbound_at)
    if start is None or (now is not None and start.timestamp() > now.timestamp() + FUTURE_SKEW_SECONDS):
        return None
    return start


def window_closes_at(last_inbound_at: str | None, now: datetime | None = None) -> str | None:
    start = _window_start(last_inbound_at, now)
    return shifted_iso(iso(start), CUSTOMER_SERVICE_WINDOW) if start is not None else None


def window_is_open(last_inbound_at: str | None, now: datetime) -> bool:
    closes_at = window_closes_at(last_inbound_at, now)
    return closes_at is not None and iso(now) < closes_at
