"""The `refused` hourly counter behind /health: sends Meta refused outright or never answered.

Written apart from any transaction (there is no other write at that moment) and best-effort: losing one
count only blurs a health estimate, and must never turn a refusal into a different error.
"""

from __future__ import annotations

from typing import Any

from whatsapp_crm.errors import StoreUnavailableError, UnstorableError
from whatsapp_crm.observability import logger
from whatsapp_crm.store.dynamodb import stats_update
from whatsapp_crm.store.toolkit import Table


def record_refusal(table: Table, at: str, discriminator: str) -> None:
    """ADD 1 to `refused` on this hour's counter shard (the shard picked by `discriminator`)."""
    try:
        table.add_once(stats_update(table.name, at, discriminator, refused=1), "the refusal counter")
    except (StoreUnavailableError, UnstorableError) as error:
        logger.warning("could not count a refused send for /health", extra={"problem": str(error)})


class DynamoRefusalCounter:
    """The send API's port for counting refusals (the responder's store has the same method)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = Table(table_name, client)

    def record_refusal(self, at: str, discriminator: str) -> None:
        record_refusal(self.table, at, discriminator)
