"""GET /health: figures from what the table persisted, never from one Lambda instance's memory.

The webhook and the senders add to hourly counters (STATS#<hour>#<nn>, 16 partitions an hour) right after
the write that records each event, and only when that write created the record, so a redelivery is never
counted twice (a Lambda dying between the two writes leaves one event uncounted: docs/table-design.md).
The last hour's error rate is a sliding estimate over two buckets: all of the current hour plus the share
of the previous hour still inside the last 60 minutes, so the rate does not reset to zero every time the
clock turns an hour.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from whatsapp_crm.clock import Clock, iso
from whatsapp_crm.errors import StoreUnavailableError
from whatsapp_crm.graph.errors import GraphAPIError, RateLimitError
from whatsapp_crm.observability import logger

HOURS_REPORTED = 24


@dataclass(frozen=True, slots=True)
class Counts:
    received: int = 0
    sent: int = 0  # accepted by Meta
    failed: int = 0  # accepted, then reported `failed` by a status webhook
    refused: int = 0  # refused by Meta when sent, or never answered (a revoked token, an outage)

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.received + other.received,
            self.sent + other.sent,
            self.failed + other.failed,
            self.refused + other.refused,
        )

    @property
    def attempted(self) -> int:
        return self.sent + self.refused

    @property
    def unsuccessful(self) -> int:
        return self.failed + self.refused


HealthStatus = Literal["healthy", "degraded", "unhealthy"]


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorRateCheck:
    ok: bool
    last_hour: float
    sent_last_hour: float  # attempted: accepted by Meta or refused
    threshold: float


@dataclass(frozen=True, slots=True)
class HealthChecks:
    table: Check
    secret: Check
    error_rate: ErrorRateCheck


@dataclass(frozen=True, slots=True)
class Last24h:
    received: int
    sent: int
    failed: int
    error_rate: float


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What GET /health answers (the handler maps it to api_models.HealthBody)."""

    status: HealthStatus
    checks: HealthChecks
    last_24h: Last24h
    last_activity: str | None


class HealthStore(Protocol):
    def hourly_counts(self, hours: Sequence[str]) -> Mapping[str, Counts]:
        """Counts per hour bucket ("2026-11-25T10"), summed over shards; missing hours may be left out."""
        ...

    def latest_activity(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    error_rate_threshold: float
    min_sends: int


def counts_as_refused(error: GraphAPIError) -> bool:
    """Meta's own rate limits (130429, 131056, ...) are pacing, not failure: every other Graph error counts."""
    return not isinstance(error, RateLimitError)


class RefusalCounter(Protocol):
    def record_refusal(self, at: str, discriminator: str) -> None: ...


def hour_buckets(now: datetime, count: int = HOURS_REPORTED) -> list[str]:
    """The current hour and the `count - 1` before it, newest first: `2026-11-25T10`, `2026-11-25T09`..."""
    return [iso(now - timedelta(hours=offset))[:13] for offset in range(count)]


def error_rate(failed: float, sent: float) -> float:
    if sent <= 0:
        return 0.0
    return round(min(1.0, failed / sent), 4)


def last_hour(current: Counts, previous: Counts, now: datetime) -> tuple[float, float]:
    """(unsuccessful, attempted) sends over the last 60 minutes, weighting the previous bucket by how much of
    it is in range. A send Meta refused counts in both, so a revoked token shows as a 100% error rate."""
    elapsed = (now.minute * 60 + now.second) / 3600
    weight = 1.0 - elapsed
    return (
        current.unsuccessful + previous.unsuccessful * weight,
        current.attempted + previous.attempted * weight,
    )


def check_health(
    store: HealthStore,
    check_secret: Callable[[], None],
    *,
    clock: Clock,
    policy: HealthPolicy,
) -> HealthReport:
    now = clock()
    hours = hour_buckets(now)
    table = Check(ok=True)
    counts: Mapping[str, Counts] = {}
    latest: str | None = None
    try:
        counts = store.hourly_counts(hours)
        latest = store.latest_activity()
    except StoreUnavailableError as error:
        logger.warning("health: table unreadable", extra={"problem": str(error)})
        table = Check(ok=False, detail="the conversation table cannot be read")
    secret = _secret_check(check_secret)

    total = sum((counts.get(hour, Counts()) for hour in hours), Counts())
    failed_hour, sent_hour = last_hour(counts.get(hours[0], Counts()), counts.get(hours[1], Counts()), now)
    hour_rate = error_rate(failed_hour, sent_hour)
    rate_ok = sent_hour < policy.min_sends or hour_rate <= policy.error_rate_threshold
    rate = ErrorRateCheck(
        ok=rate_ok, last_hour=hour_rate, sent_last_hour=round(sent_hour, 2), threshold=policy.error_rate_threshold
    )
    # Unhealthy: the service cannot do its work (no table, no usable secret). Degraded: it works, but the
    # last hour's sends fail too often (Meta refuses them), which a person must look at.
    status: HealthStatus = "unhealthy" if not (table.ok and secret.ok) else "healthy" if rate.ok else "degraded"
    return HealthReport(
        status=status,
        checks=HealthChecks(table=table, secret=secret, error_rate=rate),
        last_24h=Last24h(
            received=total.received,
            sent=total.sent,
            failed=total.unsuccessful,
            error_rate=error_rate(total.unsuccessful, total.attempted),
        ),
        last_activity=latest,
    )


def _secret_check(check_secret: Callable[[], None]) -> Check:

    try:
        check_secret()
    except Exception as error:  # any failure to read the secret is the finding itself
        # The class name only: messages from the secret path could quote more than we want in a response.
        logger.warning("health: secret unusable", extra={"problem": type(error).__name__})
        return Check(ok=False, detail="the WhatsApp secret cannot be read or is incomplete")
    return Check(ok=True)
