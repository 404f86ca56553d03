"""Time in one format everywhere: ISO 8601 UTC to the second (`2026-11-25T21:45:53Z`).

One fixed width means the strings sort like the instants they name, which the table's sort keys rely on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

Clock = Callable[[], datetime]

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_now_iso() -> str:
    """iso(utc_now()), through iso_from_unix's cache of whole seconds: ~5x cheaper, once per webhook."""
    return iso_from_unix(time.time_ns() // 1_000_000_000)


def iso(moment: datetime) -> str:
    # isoformat is several times faster than strftime, and this runs for every webhook event.
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


@lru_cache(maxsize=1024)
def iso_from_unix(seconds: int) -> str:
    # Cached: the events of one delivery mostly share a handful of seconds.
    return iso(datetime.fromtimestamp(seconds, UTC))


def parse_iso(value: str) -> datetime:
    """Inverse of iso(); raises ValueError for anything else."""
    if len(value) != 20 or not value.endswith("Z"):
        raise ValueError(f"not an ISO 8601 UTC second: {value!r}")
    return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
