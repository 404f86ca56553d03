"""EventsFunction: the conversations table's stream into CRM domain events on CrmEventBus.

Thin by design: stream records into table changes, one use-case call (whatsapp_crm.outbox.publish_changes),
metrics, and a partial-batch response naming the first record Lambda must retry when an event could be
neither published nor set aside. What becomes an event is whatsapp_crm.domain_events.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_crm.domain_events import EventOptions, StatusChanges
from whatsapp_crm.observability import MetricUnit, logger, metrics
from whatsapp_crm.outbox import EventDeadLetters, EventPublisher, publish_changes
from whatsapp_crm.settings import EventsSettings, load

_injected: dict[str, Any] = {}


def _settings() -> EventsSettings:
    return load(EventsSettings)


@cache
def _options(settings: EventsSettings) -> EventOptions:
    return EventOptions(
        include_text=settings.events_include_text,
        human_takeover=timedelta(hours=settings.human_takeover_hours),
        status_changes=StatusChanges(settings.events_status_changes),
    )


@cache
def _event_bridge() -> EventPublisher:
    from whatsapp_crm.eventbridge import EventBridgePublisher

    return EventBridgePublisher()


@cache
def _sqs_dead_letters(queue_url: str) -> EventDeadLetters:
    from whatsapp_crm.sqs.event_dead_letters import SqsEventDeadLetters

    return SqsEventDeadLetters(queue_url)


def _changes(event: dict[str, Any]) -> list[Any]:
    from whatsapp_crm.store.stream import change_from_record

    return [change_from_record(record) for record in event.get("Records") or []]


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = _settings()
    report = publish_changes(
        _changes(event),
        bus_name=settings.crm_event_bus_name,
        publisher=_injected.get("publisher") or _event_bridge(),
        dead_letters=_injected.get("dead_letters") or _sqs_dead_letters(settings.events_dead_letter_queue_url),
        options=_options(settings),
        sleep=_injected.get("sleep", time.sleep),
        attempts=settings.put_events_attempts,
    )
    for name, value in (
        ("EventsPublished", report.published),
        ("EventPublishRetries", report.retried),
        ("EventsDeadLettered", report.dead_lettered),
        ("UnmappableStreamRecords", report.unmappable),
    ):
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if report.dead_lettered or report.unmappable or report.retry_from:
        logger.error("events set aside or to be retried", extra=report.log_fields())
    else:
        # DEBUG: one INFO line per invocation would be most of this function's cost (docs/cost.md); the
        # metrics line carries the counts.
        logger.debug("stream batch published", extra={**report.log_fields(), "by_type": report.by_type})
    failures = [{"itemIdentifier": report.retry_from}] if report.retry_from else []
    return {"batchItemFailures": failures}


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    *,
    publisher: EventPublisher | None = None,
    dead_letters: EventDeadLetters | None = None,
    sleep: Any | None = None,
) -> dict[str, Any]:
    """Entry point for tests and the local stack: the same processing with ports handed in."""
    _injected.update(publisher=publisher, dead_letters=dead_letters)
    if sleep is not None:
        _injected["sleep"] = sleep
    try:
        return lambda_handler(event, context)
    finally:
        _injected.clear()
