"""When a failed inbound-queue record comes back: SQS visibility, changed instead of sleeping in Lambda.

A record that failed is normally hidden for the queue's visibility timeout (180 s). A rate limit says
how long to wait instead; the responder hides the record exactly that long. In a FIFO queue a message
group stays blocked while any of its messages is in flight, so every failed record of the group gets
the same delay, or the earliest one would still wait for the others' full timeout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.errors import QueueUnavailableError
from whatsapp_crm.sqs.queue import SqsQueue

MAX_VISIBILITY_SECONDS = 12 * 60 * 60  # SQS's limit
_BATCH = 10


def delays_for_failures(
    records: Iterable[Mapping[str, Any]],
    failed_message_ids: set[str],
    delay_by_group: Mapping[str, int],
) -> dict[int, list[str]]:
    """Receipt handles to hide, by delay in seconds: each failed record of a group that asked for a delay."""
    plan: dict[int, list[str]] = {}
    for record in records:
        group = (record.get("attributes") or {}).get("MessageGroupId")
        if record.get("messageId") not in failed_message_ids or not isinstance(group, str):
            continue
        if group not in delay_by_group:
            continue
        seconds = max(0, min(MAX_VISIBILITY_SECONDS, delay_by_group[group]))
        plan.setdefault(seconds, []).append(str(record["receiptHandle"]))
    return plan


class SqsRedelivery(SqsQueue):
    """ChangeMessageVisibility on one queue. The only SQS writer besides whatsapp_crm.sqs.inbound_queue."""

    def delay(self, receipt_handles: Sequence[str], seconds: int) -> None:
        """Hide these in-flight messages for `seconds` from now; QueueUnavailableError if SQS refused any."""
        for start in range(0, len(receipt_handles), _BATCH):
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for index, handle in enumerate(receipt_handles[start : start + _BATCH])
            ]
            try:
                response = self.client.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise QueueUnavailableError(f"SQS refused the visibility change: {type(error).__name__}") from error
            if response.get("Failed"):
                codes = sorted({str(failure.get("Code")) for failure in response["Failed"]})
                raise QueueUnavailableError(f"SQS kept {len(response['Failed'])} messages visible: {codes}")


class SqsDeadLetterForward(SqsQueue):
    """Moves one record to the inbound dead-letter queue at once, for a record no retry can help (it does
    not parse): waiting for maxReceiveCount would hold its lead's group for five visibility timeouts."""

    def forward(self, body: str, group_id: str, deduplication_id: str, reason: str) -> None:
        """Send the record's body unchanged, with why it was set aside; QueueUnavailableError if SQS refused."""
        try:
            self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=body,
                MessageGroupId=group_id,
                MessageDeduplicationId=deduplication_id,
                MessageAttributes={"dead_letter_reason": {"DataType": "String", "StringValue": reason}},
            )
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailableError(f"SQS refused the dead letter: {type(error).__name__}") from error
