"""SQS adapter for the responder -> media archiver hand-off (a standard queue: order does not matter, and the
archiver is idempotent per media id)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.errors import QueueUnavailableError
from whatsapp_crm.media_archive import ArchiveRequest

_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


class SqsMediaQueue:
    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("sqs", config=_CLIENT_CONFIG)
        return self._client

    def request(self, request: ArchiveRequest) -> None:
        try:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=request.model_dump_json(exclude_none=True))
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailableError(f"SQS refused the media archive request: {type(error).__name__}") from error
