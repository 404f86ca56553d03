"""The events' dead letters: unpublished events (as PutEvents entries) and stream records that cannot be
mapped, one JSON document per SQS message on EventsDeadLetterQueue (standard, 14 days)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.errors import QueueUnavailableError
from whatsapp_crm.sqs.queue import SqsQueue

SEND_BATCH = 10


class SqsEventDeadLetters(SqsQueue):
    """Satisfies outbox.EventDeadLetters."""

    def set_aside(self, letters: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(letters), SEND_BATCH):
            batch = letters[start : start + SEND_BATCH]
            entries = [
                {"Id": str(index), "MessageBody": json.dumps(letter, ensure_ascii=False, separators=(",", ":"))}
                for index, letter in enumerate(batch)
            ]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise QueueUnavailableError(f"SQS refused the events' dead letters: {type(error).__name__}") from error
            if response.get("Failed"):
                raise QueueUnavailableError(f"SQS refused {len(response['Failed'])} of the events' dead letters")
