"""SQS adapter for the responder -> media archiver hand-off (a standard queue: order does not matter, and the
archiver is idempotent per media id)."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.errors import QueueUnavailableError
from whatsapp_crm.media_archive import ArchiveRequest
from whatsapp_crm.sqs.queue import SqsQueue


class SqsMediaQueue(SqsQueue):
    def request(self, request: ArchiveRequest) -> None:
        try:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=request.model_dump_json(exclude_none=True))
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailableError(f"SQS refused the media archive request: {type(error).__name__}") from error
