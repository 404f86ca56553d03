"""SQS FIFO adapter for the webhook -> responder hand-off."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.errors import QueueUnavailableError
from whatsapp_crm.handoff import Handoff
from whatsapp_crm.sqs.queue import SqsQueue

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024


def _batches(messages: Sequence[Handoff]) -> Iterator[list[Handoff]]:
    """Groups of at most 10 entries and 256 KiB, the limits of one SendMessageBatch call."""
    if len(messages) <= 1:
        # The usual POST: a lone message is its own batch whatever its size, so skip encoding it to measure.
        if messages:
            yield list(messages)
        return
    batch: list[Handoff] = []
    size = 0
    for message in messages:
        body_size = len(message.body.encode("utf-8"))
        if batch and (len(batch) == MAX_BATCH_ENTRIES or size + body_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += body_size
    if batch:
        yield batch


class SqsInboundQueue(SqsQueue):
    def enqueue(self, messages: Sequence[Handoff]) -> None:
        """Send every message or raise QueueUnavailableError (then the webhook answers 500 and Meta retries)."""
        for batch in _batches(messages):
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": message.body,
                    "MessageGroupId": message.wa_id,
                    "MessageDeduplicationId": _dedup_id(message.wamid),
                }
                for index, message in enumerate(batch)
            ]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise QueueUnavailableError(f"SQS refused the batch: {type(error).__name__}") from error
            if response.get("Failed"):
                codes = sorted({str(failure.get("Code")) for failure in response["Failed"]})
                raise QueueUnavailableError(f"SQS rejected {len(response['Failed'])} entries: {codes}")


def _dedup_id(wamid: str) -> str:
    """SQS allows 128 characters of [A-Za-z0-9 punctuation]; wamids fit, but never trust that blindly."""
    if len(wamid) <= 128 and wamid.isascii():
        return wamid
    import hashlib

    return hashlib.sha256(wamid.encode("utf-8")).hexdigest()
