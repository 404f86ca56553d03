"""SQS FIFO adapter for the webhook -> responder hand-off: QueuedInbound in, SendMessageBatch out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.batching import batches_within
from whatsapp_crm.errors import QueueUnavailableError
from whatsapp_crm.handoff import QueuedInbound
from whatsapp_crm.sqs.queue import SqsQueue

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024


def _batches(entries: Sequence[dict[str, str]]) -> Iterator[list[dict[str, str]]]:
    """Groups of at most 10 entries and 256 KiB, the limits of one SendMessageBatch call."""
    if len(entries) <= 1:
        # The usual POST: a lone message is its own batch whatever its size, so skip encoding it to measure.
        if entries:
            yield list(entries)
        return
    yield from batches_within(entries, _body_bytes, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES)


def _body_bytes(entry: dict[str, str]) -> int:
    return len(entry["MessageBody"].encode("utf-8"))


class SqsInboundQueue(SqsQueue):
    def enqueue(self, messages: Sequence[QueuedInbound]) -> None:
        """Send every message or raise QueueUnavailableError (then the webhook answers 500 and Meta retries)."""
        entries = [
            {
                "Id": str(index),  # unique in the call, so in every batch cut from it
                "MessageBody": message.body(),
                "MessageGroupId": message.wa_id,
                "MessageDeduplicationId": _dedup_id(message.wamid),
            }
            for index, message in enumerate(messages)
        ]
        for batch in _batches(entries):
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=batch)
            except (ClientError, BotoCoreError) as error:
                raise QueueUnavailableError(f"SQS refused the batch: {type(error).__name__}") from error
            if response.get("Failed"):
                codes = sorted({str(failure.get("Code")) for failure in response["Failed"]})
                raise QueueUnavailableError(f"SQS rejected {len(response['Failed'])} entries: {codes}")


def _dedup_id(wamid: str) -> str:
    """SQS allows 128 characters of [A-Za-z0-9 punctuation]; wamids fit, but never trust that blindly."""
    if len(wamid) <= 128 and wamid.isascii():
        return wamid
    return hashlib.sha256(wamid.encode("utf-8")).hexdigest()
