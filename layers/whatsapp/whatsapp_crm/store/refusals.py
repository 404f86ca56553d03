"""The `refused` hourly counter behind /health: sends Meta refused outright or never answered.

Written apart from any transaction (there is no other write at that moment) and best-effort: losing one
count only blurs a health estimate, and must never turn a refusal into a different error.
"""

from __future__ import annotations

from typing import Any

import boto3

from whatsapp_crm.errors import StoreUnavailableError
from whatsapp_crm.observability import logger
from whatsapp_crm.store.dynamodb import _CLIENT_CONFIG, _store_errors, stats_update


def record_refusal(client: Any, table_name: str, at: str, discriminator: str) -> None:
    """ADD 1 to `refused` on this hour's counter shard (the shard picked by `discriminator`)."""
    try:
        with _store_errors():
            client.update_item(**stats_update(table_name, at, discriminator, refused=1))
    except StoreUnavailableError as error:
        logger.warning("could not count a refused send for /health", extra={"problem": str(error)})


class DynamoRefusalCounter:
    """The send API's port for counting refusals (the responder's store has the same method)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("dynamodb", config=_CLIENT_CONFIG)
        return self._client

    def record_refusal(self, at: str, discriminator: str) -> None:
        record_refusal(self.client, self.table_name, at, discriminator)
