"""Send rate limits as fixed windows: pure arithmetic here, one conditional counter write per limit elsewhere.

A fixed window costs one conditional write (`ADD count 1` only while `count < limit`) and no read, which is
what lets the limit hold across every Lambda instance. The price is the boundary: a caller can fit `limit`
messages at the end of one window and `limit` more at the start of the next. Meta's own pair limit (about
one message every 6 s to a user, with bursts) is the backstop for that edge; its 131056 becomes a 429 too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from whatsapp_crm.clock import iso

# Counter items outlive their window by this much before DynamoDB's TTL sweeper may delete them.
COUNTER_GRACE_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class RateLimit:
    scope: str  # what is being limited: "recipient" or "number"
    limit: int
    window_seconds: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_seconds < 1:
            raise ValueError("a rate limit needs a positive limit and window")


@dataclass(frozen=True, slots=True)
class WindowSlot:
    """One subject's counter for one window of one limit."""

    rate: RateLimit
    subject: str
    window_start: int  # Unix seconds, a multiple of the window length

    @property
    def window_end(self) -> int:
        return self.window_start + self.rate.window_seconds

    @property
    def key(self) -> str:
        """`RATE#recipient#972525551234#2026-11-25T10:05:00Z`: the window's start names the counter."""
        started = iso(datetime.fromtimestamp(self.window_start, UTC))
        return f"RATE#{self.rate.scope}#{self.subject}#{started}"

    @property
    def expires_at(self) -> int:
        return self.window_end + COUNTER_GRACE_SECONDS


def slot_for(rate: RateLimit, subject: str, now: datetime) -> WindowSlot:
    seconds = now.timestamp()
    start = math.floor(seconds / rate.window_seconds) * rate.window_seconds
    return WindowSlot(rate=rate, subject=subject, window_start=int(start))


def retry_after_seconds(slot: WindowSlot, now: datetime) -> int:
    """Whole seconds until the window resets (at least 1: a Retry-After of 0 invites a hot loop)."""
    return max(1, math.ceil(slot.window_end - now.timestamp()))


class RateLimitedError(Exception):
    def __init__(self, slot: WindowSlot, retry_after: int) -> None:
        super().__init__(
            f"{slot.rate.scope} limit of {slot.rate.limit} per {slot.rate.window_seconds}s reached; "
            f"retry after {retry_after}s"
        )
        self.scope = slot.rate.scope
        self.limit = slot.rate.limit
        self.window_seconds = slot.rate.window_seconds
        self.retry_after_seconds = retry_after


class RateCounter(Protocol):
    def take(self, slot: WindowSlot) -> bool:
        """Count one use of the slot if it is under its limit; False (and nothing counted) when it is full."""
        ...

    def give_back(self, slot: WindowSlot) -> None:
        """Undo one `take` (best effort) for a send that was refused before it left."""
        ...


def acquire(counter: RateCounter, limits: Sequence[tuple[RateLimit, str]], now: datetime) -> None:
    """Take one unit from every limit, or none: a refused limit returns the units already taken."""
    taken: list[WindowSlot] = []
    for rate, subject in limits:
        slot = slot_for(rate, subject, now)
        if not counter.take(slot):
            for earlier in reversed(taken):
                counter.give_back(earlier)
            raise RateLimitedError(slot, retry_after_seconds(slot, now))
        taken.append(slot)
