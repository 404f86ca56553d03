"""EventBridge adapter: PutEvents on the CRM bus. The only module that speaks to EventBridge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.outbox import entry_for_api

# botocore's standard retries take throttling and 5xx of the whole call; refused entries come back per entry
# and whatsapp_crm.outbox retries those.
_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


class EventBridgePublisher:
    """Satisfies outbox.EventPublisher. The client is built on first use (tests hand one in)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("events", config=_CLIENT_CONFIG)
        return self._client

    def put(self, entries: Sequence[dict[str, Any]]) -> list[str | None]:
        try:
            response = self.client.put_events(Entries=[entry_for_api(entry) for entry in entries])
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", "ClientError"))
            return [code] * len(entries)
        except BotoCoreError as error:
            return [type(error).__name__] * len(entries)
        results = response.get("Entries") or []
        if len(results) != len(entries):
            return ["IncompleteResponse"] * len(entries)
        return [None if result.get("EventId") else str(result.get("ErrorCode") or "Unknown") for result in results]
