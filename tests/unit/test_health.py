"""/health from counters: the 24 buckets, the sliding last-hour error rate, and what makes it degraded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest

from whatsapp_crm.api_models import HealthBody
from whatsapp_crm.errors import ConfigurationError, StoreUnavailableError
from whatsapp_crm.health import Counts, HealthPolicy, check_health, error_rate, hour_buckets, last_hour

NOW = datetime(2026, 11, 25, 10, 15, 0, tzinfo=UTC)  # a quarter into the hour
POLICY = HealthPolicy(error_rate_threshold=0.2, min_sends=5)


class FakeStore:
    def __init__(self, counts: Mapping[str, Counts] | None = None, *, broken: bool = False) -> None:
        self.counts = dict(counts or {})
        self.broken = broken
        self.asked: list[str] = []

    def hourly_counts(self, hours: Sequence[str]) -> Mapping[str, Counts]:
        if self.broken:
            raise StoreUnavailableError("down")
        self.asked = list(hours)
        return self.counts

    def latest_activity(self) -> str | None:
        return "2026-11-25T10:14:00Z"


def _fine() -> None:
    return None


def _check(store: FakeStore, secret: object = _fine, policy: HealthPolicy = POLICY) -> dict[str, object]:
    report = check_health(store, secret, clock=lambda: NOW, policy=policy)
    # What GET /health answers: the handler's mapping of the report.
    return HealthBody.model_validate(report, from_attributes=True).model_dump(mode="json")


def test_the_last_24_hourly_buckets_are_read_newest_first() -> None:
    buckets = hour_buckets(NOW)
    assert len(buckets) == 24
    assert buckets[0] == "2026-11-25T10"
    assert buckets[1] == "2026-11-25T09"
    assert buckets[-1] == "2026-11-24T11"


def test_figures_add_up_over_24_hours_and_ignore_older_buckets() -> None:
    store = FakeStore(
        {
            "2026-11-25T10": Counts(received=5, sent=4, failed=1),
            "2026-11-24T11": Counts(received=1, sent=1),
            "2026-11-24T10": Counts(received=100, sent=100, failed=100),  # 25 hours ago
        }
    )
    report = _check(store)
    assert report["last_24h"] == {"received": 6, "sent": 5, "failed": 1, "error_rate": 0.2}
    assert report["last_activity"] == "2026-11-25T10:14:00Z"


def test_the_last_hour_weights_the_previous_bucket_by_what_is_still_inside_it() -> None:
    # 15 minutes into the hour: all of this hour, three quarters of the previous one
    failed, sent = last_hour(Counts(sent=10, failed=1), Counts(sent=40, failed=8), NOW)
    assert (failed, sent) == (7.0, 40.0)


@pytest.mark.parametrize(("failed", "sent", "rate"), [(0, 0, 0.0), (1, 4, 0.25), (5, 4, 1.0), (1, 3, 0.3333)])
def test_error_rate_is_bounded_and_rounded(failed: float, sent: float, rate: float) -> None:
    assert error_rate(failed, sent) == rate


def test_an_error_rate_over_the_threshold_is_degraded() -> None:
    report = _check(FakeStore({"2026-11-25T10": Counts(sent=10, failed=3)}))
    assert report["status"] == "degraded"
    assert report["checks"]["error_rate"]["ok"] is False


def test_sends_meta_refuses_make_it_degraded_even_when_none_got_through() -> None:
    # Given a revoked token: every send of the last hour refused by Meta, none accepted
    report = _check(FakeStore({"2026-11-25T10": Counts(received=6, refused=6)}))
    # Then the operator sees it: a 100% error rate over six attempts, degraded
    assert report["status"] == "degraded"
    assert report["checks"]["error_rate"]["last_hour"] == 1.0
    assert report["checks"]["error_rate"]["sent_last_hour"] == 6
    assert report["last_24h"] == {"received": 6, "sent": 0, "failed": 6, "error_rate": 1.0}


def test_refused_and_reported_failures_add_up_over_all_attempts() -> None:
    report = _check(FakeStore({"2026-11-25T10": Counts(sent=8, failed=1, refused=2)}))
    assert report["last_24h"] == {"received": 0, "sent": 8, "failed": 3, "error_rate": 0.3}


def test_a_handful_of_sends_is_too_few_to_call_it_degraded() -> None:
    report = _check(FakeStore({"2026-11-25T10": Counts(sent=2, failed=2)}))
    assert report["status"] == "healthy"


def test_yesterdays_failures_do_not_degrade_today() -> None:
    report = _check(FakeStore({"2026-11-25T02": Counts(sent=10, failed=10), "2026-11-25T10": Counts(sent=10)}))
    assert report["status"] == "healthy"
    assert report["last_24h"]["error_rate"] == 0.5


def test_an_unreadable_table_is_unhealthy_with_zero_figures() -> None:
    report = _check(FakeStore(broken=True))
    assert report["status"] == "unhealthy"
    assert report["checks"]["table"]["ok"] is False
    assert report["last_24h"] == {"received": 0, "sent": 0, "failed": 0, "error_rate": 0.0}


def test_an_unreadable_secret_is_unhealthy_without_saying_what_is_in_it() -> None:
    def broken_secret() -> None:
        raise ConfigurationError("access_token=EAAGsecretvalue is malformed")

    report = _check(FakeStore(), broken_secret)
    assert report["status"] == "unhealthy"
    assert report["checks"]["secret"]["ok"] is False
    assert "EAAG" not in str(report)
