"""EventsFunction: the conversations table's stream into CRM domain events on CrmEventBus.

Thin by design: stream records into table changes, one use-case call (whatsapp_crm.outbox.publish_changes),
metrics, and a partial-batch response naming the first record Lambda must retry when an event could be
neither published nor set aside. What becomes an event is whatsapp_crm.domain_events; the adapters come from
whatsapp_crm.wiring (EventsPorts).
"""

from __future__ import annotations

from typing import Any, Unpack

from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_crm.observability import MetricUnit, logger, metrics
from whatsapp_crm.outbox import publish_changes
from whatsapp_crm.settings import EventsSettings, load
from whatsapp_crm.store.stream import change_from_record
from whatsapp_crm.wiring import EventsDoubles, EventsPorts, invoke


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ports = EventsPorts(load(EventsSettings))
    report = publish_changes(
        [change_from_record(record) for record in event.get("Records") or []],
        bus_name=ports.settings.crm_event_bus_name,
        publisher=ports.publisher,
        dead_letters=ports.dead_letters,
        options=ports.options,
        sleep=ports.sleep,
        attempts=ports.settings.put_events_attempts,
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


def handle(event: dict[str, Any], context: LambdaContext, **doubles: Unpack[EventsDoubles]) -> dict[str, Any]:
    """Entry point for tests: the same processing with test doubles handed in (whatsapp_crm.wiring)."""
    return invoke(lambda_handler, event, context, doubles)
