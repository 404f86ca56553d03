"""What every SQS adapter here shares: one queue URL and one lazily built client with the same timeouts."""

from __future__ import annotations

from typing import Any

from botocore.config import Config

from whatsapp_crm.aws_clients import LazyClient

# Short timeouts and botocore's standard retries: a webhook or responder call must fail fast, not hang.
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


class SqsQueue:
    """One queue; the boto3 client is built on first use (tests hand one in)."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._lazy_client = LazyClient("sqs", CLIENT_CONFIG, client)

    @property
    def client(self) -> Any:
        return self._lazy_client.get()
