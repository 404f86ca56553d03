"""Publish the events of one batch of committed table changes: EventsFunction's use case.

For each batch of stream records (in stream order):
1. map every change to its events (whatsapp_crm.domain_events); a message or lead change that cannot be
   read is set aside whole on the events dead-letter queue and counted, never dropped;
2. put the events on the bus, ten per PutEvents call; entries EventBridge refuses (throttling, an internal
   error) are retried, with backoff, up to `attempts` times;
3. entries still refused are set aside on the dead-letter queue as ready-to-send PutEvents entries
   (scripts/redrive_events.py puts them back), so a bus outage delays events but never loses them;
4. only when the dead-letter queue refuses too does the batch report the first record whose events are
   not safe: Lambda retries from that record (partial-batch failure), and after its retries its own
   on-failure destination (the same queue) names the records.

Ports: an EventPublisher (EventBridge) and an EventDeadLetters (SQS), both handed in; `sleep` for backoff.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from whatsapp_crm.batching import batches_within
from whatsapp_crm.clock import parse_iso_or_none
from whatsapp_crm.domain_events import SOURCE, DomainEvent, EventOptions, TableChange, UnmappableChangeError, events_for
from whatsapp_crm.errors import QueueUnavailableError

PUT_EVENTS_MAX_ENTRIES = 10
# PutEvents takes 256 KB per call; stay clear of it (a detail with text is at most ~20 KB).
PUT_EVENTS_MAX_BYTES = 200 * 1024
BACKOFF_SECONDS = (0.2, 1.0, 3.0)


class EventPublisher(Protocol):
    def put(self, entries: Sequence[dict[str, Any]]) -> list[str | None]:
        """PutEvents; one item per entry: None when accepted, else the error code."""
        ...


class EventDeadLetters(Protocol):
    def set_aside(self, letters: Sequence[dict[str, Any]]) -> None:
        """Keep these documents; QueueUnavailableError unless every one was taken."""
        ...


def put_events_entry(event: DomainEvent, bus_name: str) -> dict[str, Any]:
    """The PutEvents entry of an event: what is published, and what a dead letter keeps for the redrive."""
    entry: dict[str, Any] = {
        "Source": SOURCE,
        "DetailType": event.detail_type.value,
        "Detail": json.dumps(event.detail, ensure_ascii=False, separators=(",", ":"), sort_keys=True),
        "EventBusName": bus_name,
    }
    if event.time:
        entry["Time"] = event.time
    return entry


def entry_for_api(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored entry as boto3 takes it (Time as a datetime)."""
    at: datetime | None = parse_iso_or_none(entry.get("Time"))
    result = {key: value for key, value in entry.items() if key != "Time"}
    if at is not None:
        result["Time"] = at
    return result


@dataclass(slots=True)
class OutboxReport:
    records: int = 0
    ignored: int = 0  # changes no event is about (claims, counters...) or that mean nothing new
    unmappable: int = 0  # set aside whole
    published: int = 0
    retried: int = 0  # entries that needed another PutEvents call
    dead_lettered: int = 0  # events set aside after every attempt failed
    by_type: dict[str, int] = field(default_factory=dict)
    # The stream record Lambda must retry from (nothing before it is lost), or None.
    retry_from: str | None = None

    def log_fields(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "ignored": self.ignored,
            "unmappable": self.unmappable,
            "published": self.published,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "retry_from": self.retry_from,
        }


def _chunks(entries: list[tuple[DomainEvent, dict[str, Any]]]) -> Iterable[list[tuple[DomainEvent, dict[str, Any]]]]:
    return batches_within(entries, _entry_bytes, PUT_EVENTS_MAX_ENTRIES, PUT_EVENTS_MAX_BYTES)


def _entry_bytes(pair: tuple[DomainEvent, dict[str, Any]]) -> int:
    # The detail plus room for the entry's other fields (source, detail type, bus name).
    return len(pair[1]["Detail"].encode("utf-8")) + 200


def _unmappable_letter(change: TableChange, reason: str) -> dict[str, Any]:
    # Keys and position only: the images may hold a lead's words, and the item itself is in the table.
    return {
        "kind": "unmappable_change",
        "reason": reason,
        "event_name": change.event_name,
        "keys": {name: str(value) for name, value in change.keys.items()},
        "sequence_number": change.sequence_number,
        "committed_at": change.committed_at,
    }


def publish_changes(
    changes: Sequence[TableChange],
    *,
    bus_name: str,
    publisher: EventPublisher,
    dead_letters: EventDeadLetters,
    options: EventOptions | None = None,
    sleep: Callable[[float], None] | None = None,
    attempts: int = 3,
) -> OutboxReport:
    """Map, publish and, if need be, set aside the events of these changes (module docstring)."""
    report = OutboxReport(records=len(changes))
    letters: list[tuple[str, dict[str, Any]]] = []  # (sequence number, document)
    pending: list[tuple[DomainEvent, dict[str, Any]]] = []
    for change in changes:
        try:
            events = events_for(change, options)
        except UnmappableChangeError as error:
            report.unmappable += 1
            letters.append((change.sequence_number, _unmappable_letter(change, error.reason)))
            continue
        if not events:
            report.ignored += 1
        pending.extend((event, put_events_entry(event, bus_name)) for event in events)
    for chunk in _chunks(pending):
        for event, error_code in _put_with_retries(chunk, publisher, report, sleep, attempts):
            report.dead_lettered += 1
            letter = {
                "kind": "unpublished_event",
                "reason": "put_events_failed",
                "error_code": error_code,
                "detail_id": event.id,
                "entry": put_events_entry(event, bus_name),
            }
            letters.append((event.sequence_number, letter))
    for event, _ in pending:
        report.by_type[event.detail_type.value] = report.by_type.get(event.detail_type.value, 0) + 1
    report.published = len(pending) - report.dead_lettered
    if letters:
        try:
            dead_letters.set_aside([document for _, document in letters])
        except QueueUnavailableError:
            # Not published and not kept: Lambda must bring these records back. Stream order is numeric.
            report.retry_from = min((sequence for sequence, _ in letters), key=_sequence_order)
    return report


def _sequence_order(sequence_number: str) -> tuple[int, str]:
    return (len(sequence_number), sequence_number)


def _put_with_retries(
    chunk: list[tuple[DomainEvent, dict[str, Any]]],
    publisher: EventPublisher,
    report: OutboxReport,
    sleep: Callable[[float], None] | None,
    attempts: int,
) -> list[tuple[DomainEvent, str]]:
    """The events of this chunk EventBridge still refused after every attempt, with the last error code."""
    remaining = chunk
    refused: list[tuple[DomainEvent, str]] = []
    for attempt in range(max(attempts, 1)):
        if attempt:
            report.retried += len(remaining)
            if sleep is not None:
                sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
        results = publisher.put([entry for _, entry in remaining])
        failed = [(pair, code) for pair, code in zip(remaining, results, strict=True) if code is not None]
        refused = [(pair[0], code) for pair, code in failed]
        remaining = [pair for pair, _ in failed]
        if not remaining:
            break
    return refused
