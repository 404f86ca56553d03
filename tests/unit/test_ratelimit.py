"""Fixed-window rate limits: which counter a moment falls in, when it resets, and all-or-nothing takes."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from whatsapp_crm.ratelimit import (
    COUNTER_GRACE_SECONDS,
    RateLimit,
    RateLimitedError,
    WindowSlot,
    acquire,
    retry_after_seconds,
    slot_for,
)

PER_MINUTE = RateLimit("recipient", 10, 60)
PER_SECOND = RateLimit("number", 80, 1)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class MemoryCounter:
    """The DynamoDB adapter's contract in memory: take succeeds while count < limit."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def take(self, slot: WindowSlot) -> bool:
        if self.counts[slot.key] >= slot.rate.limit:
            return False
        self.counts[slot.key] += 1
        return True

    def give_back(self, slot: WindowSlot) -> None:
        self.counts[slot.key] -= 1


class TestWindows:
    def test_a_minute_window_is_named_by_its_start(self) -> None:
        slot = slot_for(PER_MINUTE, "972525551234", _at("2026-11-25T10:05:59.999"))
        assert slot.key == "RATE#recipient#972525551234#2026-11-25T10:05:00Z"
        assert slot.window_end - slot.window_start == 60

    def test_the_next_second_of_a_new_minute_is_a_new_counter(self) -> None:
        before = slot_for(PER_MINUTE, "972525551234", _at("2026-11-25T10:05:59"))
        after = slot_for(PER_MINUTE, "972525551234", _at("2026-11-25T10:06:00"))
        assert before.key != after.key

    def test_per_second_windows_and_subjects_are_separate(self) -> None:
        one = slot_for(PER_SECOND, "106540352242922", _at("2026-11-25T10:05:07.2"))
        other = slot_for(PER_SECOND, "106540352242923", _at("2026-11-25T10:05:07.9"))
        assert one.key == "RATE#number#106540352242922#2026-11-25T10:05:07Z"
        assert one.key != other.key
        assert one.window_start == other.window_start

    def test_counters_expire_after_their_window_plus_grace(self) -> None:
        slot = slot_for(PER_MINUTE, "x", _at("2026-11-25T10:05:30"))
        assert slot.expires_at == slot.window_end + COUNTER_GRACE_SECONDS

    @pytest.mark.parametrize(
        ("moment", "seconds"),
        [
            ("2026-11-25T10:05:00", 60),
            ("2026-11-25T10:05:20", 40),
            ("2026-11-25T10:05:59.1", 1),
            ("2026-11-25T10:05:59.99", 1),
        ],
    )
    def test_retry_after_is_whole_seconds_until_the_reset_never_zero(self, moment: str, seconds: int) -> None:
        now = _at(moment)
        assert retry_after_seconds(slot_for(PER_MINUTE, "x", now), now) == seconds

    def test_a_limit_needs_positive_numbers(self) -> None:
        with pytest.raises(ValueError):
            RateLimit("recipient", 0, 60)


class TestAcquire:
    def test_the_eleventh_in_a_minute_is_refused_with_the_time_left(self) -> None:
        counter = MemoryCounter()
        now = _at("2026-11-25T10:05:20")
        limits = [(PER_MINUTE, "972525551234"), (PER_SECOND, "106540352242922")]
        for _ in range(10):
            acquire(counter, limits, now)
        with pytest.raises(RateLimitedError) as refused:
            acquire(counter, limits, now)
        assert refused.value.scope == "recipient"
        assert refused.value.retry_after_seconds == 40

    def test_a_refusal_by_a_later_limit_returns_the_earlier_units(self) -> None:
        # Given the sending number's second is full but the recipient has room
        counter = MemoryCounter()
        now = _at("2026-11-25T10:05:20.5")
        counter.counts[slot_for(PER_SECOND, "106540352242922", now).key] = 80
        # When a send tries both limits
        with pytest.raises(RateLimitedError) as refused:
            acquire(counter, [(PER_MINUTE, "972525551234"), (PER_SECOND, "106540352242922")], now)
        # Then it is refused by the number, and the recipient's unit is not spent
        assert refused.value.scope == "number"
        assert refused.value.retry_after_seconds == 1
        assert counter.counts[slot_for(PER_MINUTE, "972525551234", now).key] == 0

    def test_a_new_minute_lets_the_recipient_through_again(self) -> None:
        counter = MemoryCounter()
        for _ in range(10):
            acquire(counter, [(PER_MINUTE, "x")], _at("2026-11-25T10:05:50"))
        acquire(counter, [(PER_MINUTE, "x")], _at("2026-11-25T10:06:00"))
