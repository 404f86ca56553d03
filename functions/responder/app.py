"""ResponderFunction: auto-replies to inbound WhatsApp messages from the inbound FIFO queue.

Thin by design: batch parsing (pydantic), one domain call per record, metrics, and mapping failures to
batch item failures. The use case lives in whatsapp_crm.respond. A failed record fails the rest of its
message group in the batch (FIFO order per lead); other leads' records carry on.
"""

from __future__ import annotations

from typing import Any, Unpack

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from whatsapp_crm.errors import QueueUnavailableError
from whatsapp_crm.handoff import QueuedInbound
from whatsapp_crm.json_text import MalformedPayloadError, decode_json
from whatsapp_crm.media_archive import request_archive
from whatsapp_crm.observability import MetricUnit, logger, mask_phone, metrics
from whatsapp_crm.respond import (
    CredentialsRejectedError,
    ReplyOutcome,
    ReplyRetryableError,
    respond,
)
from whatsapp_crm.settings import ResponderSettings, load
from whatsapp_crm.sqs.redelivery import delays_for_failures
from whatsapp_crm.wiring import ResponderDoubles, ResponderPorts, invoke

# Records are parsed inside the record handler, never by the processor: Powertools parses a failed
# group's later records outside its try (skip_group_on_error), so one unparseable record used to fail
# the whole batch. The body is read with the webhook's own decoder (whatsapp_crm.json_text). No parser
# model: the records come as Powertools' SQSRecord views of the event (importing its pydantic event models
# builds every AWS event model Powertools has, a third of a bare boto3 cold start; issue 11).
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# Report failures item by item even when all failed: Lambda's Errors metric then means a real crash.
processor.raise_on_entire_batch_failure = False

_OUTCOME_METRICS = {ReplyOutcome.SENT: "AutoRepliesSent", ReplyOutcome.FAILED: "AutoRepliesFailed"}


class _Batch:
    """One invocation's record handler, with the delays that rate-limited groups asked for."""

    def __init__(self, context: LambdaContext) -> None:
        self.context = context
        self.ports = ResponderPorts(load(ResponderSettings))
        self.store = self.ports.store
        self.sender = self.ports.sender
        self.policy = self.ports.policy
        self.clock = self.ports.clock
        self.media_requests = self.ports.media_requests
        self.delay_by_group: dict[str, int] = {}

    def _time_left(self) -> float:
        return self.context.get_remaining_time_in_millis() / 1000

    def handle_record(self, record: SQSRecord) -> str:
        try:
            queued = QueuedInbound.model_validate(decode_json(str(record.body)))
        except (MalformedPayloadError, ValidationError) as error:
            return self._set_aside(record, error)
        logger.append_keys(wamid=queued.wamid, lead=mask_phone(queued.wa_id))
        try:
            # First, and whatever the reply decides: what the lead sent is kept (the archiver is idempotent,
            # so a retried record asking again costs nothing).
            if self.media_requests is not None:
                request_archive(queued.wamid, queued.wa_id, queued.phone_number_id, queued.message, self.media_requests)
            report = respond(
                queued,
                store=self.store,
                sender=self.sender,
                policy=self.policy,
                clock=self.clock,
                attempt=int(record.attributes.approximate_receive_count),
                time_left=self._time_left,
            )
        except CredentialsRejectedError as error:
            metrics.add_metric(name="TokenErrors", unit=MetricUnit.Count, value=1)
            logger.error("Graph API rejected the access token; rotate it", extra={"graph_error_code": error.code})
            raise
        except ReplyRetryableError as error:
            metrics.add_metric(name="AutoReplyRetries", unit=MetricUnit.Count, value=1)
            group = record.attributes.message_group_id
            if error.retry_after_seconds and group:
                self.delay_by_group[group] = max(self.delay_by_group.get(group, 0), error.retry_after_seconds)
            logger.warning(
                "auto-reply will be retried",
                extra={
                    "reason": error.reason,
                    "graph_error_code": error.code,
                    "retry_after": error.retry_after_seconds,
                },
            )
            raise
        finally:
            logger.remove_keys(["wamid", "lead"])
        metrics.add_metric(
            name=_OUTCOME_METRICS.get(report.outcome, "AutoRepliesSkipped"), unit=MetricUnit.Count, value=1
        )
        logger.info("auto-reply handled", extra=report.log_fields())
        return report.outcome.value

    def _set_aside(self, record: SQSRecord, error: Exception) -> str:
        """A record that will never parse goes to the dead-letter queue now, alone; its group carries on.
        If SQS does not take it, the record fails and comes back (then the queue's redrive moves it)."""
        reason = error.reason if isinstance(error, MalformedPayloadError) else "not_a_queued_inbound_message"
        self.ports.dead_letters.forward(
            str(record.body),
            record.attributes.message_group_id or "unparseable",
            record.attributes.message_deduplication_id or record.message_id,
            reason,
        )
        metrics.add_metric(name="UnparseableRecords", unit=MetricUnit.Count, value=1)
        # The type of the problem only: the body may hold a lead's words.
        logger.error(
            "queue record cannot be parsed; moved to the dead-letter queue",
            extra={"reason": reason, "error_type": type(error).__name__, "sqs_message_id": record.message_id},
        )
        return "dead_lettered"

    def defer_failed_groups(self, event: dict[str, Any], response: dict[str, Any]) -> None:
        if not self.delay_by_group:
            return
        failed = {str(item["itemIdentifier"]) for item in response.get("batchItemFailures", [])}
        redelivery = self.ports.redelivery
        for seconds, handles in delays_for_failures(event.get("Records", []), failed, self.delay_by_group).items():
            try:
                redelivery.delay(handles, seconds)
            except QueueUnavailableError:
                # They still come back, only after the queue's own visibility timeout.
                logger.warning("could not delay rate-limited records", extra={"records": len(handles)})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = _Batch(context)
    response = process_partial_response(event, batch.handle_record, processor, context)
    batch.defer_failed_groups(event, dict(response))
    return dict(response)


def handle(event: dict[str, Any], context: LambdaContext, **doubles: Unpack[ResponderDoubles]) -> dict[str, Any]:
    """Entry point for tests: the same processing with test doubles handed in (whatsapp_crm.wiring)."""
    return invoke(lambda_handler, event, context, doubles)
