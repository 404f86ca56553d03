"""DynamoDB counters for the send rate limits: one conditional UpdateItem per limit, items expire by TTL.

item           PK                                            SK     attributes
rate counter   RATE#<scope>#<subject>#<window start, ISO>    RATE   count, limit, expires_at
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.ratelimit import WindowSlot
from whatsapp_crm.store import keys
from whatsapp_crm.store.toolkit import Table, Update, to_attribute

RATE_SK = "RATE"


class DynamoRateCounter:
    """The send rate limits' port (ratelimit.RateCounter)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = Table(table_name, client)

    def take(self, slot: WindowSlot) -> bool:
        update = (
            Update()
            .add("count", 1)
            .set_if_absent(keys.TTL_ATTRIBUTE, slot.expires_at)
            .set_if_absent("limit", slot.rate.limit)
        )
        condition = "attribute_not_exists(#count) OR #count < :limit"
        update.names["#count"] = "count"
        update.values[":limit"] = to_attribute(slot.rate.limit)
        return self.table.update(update.request(self.table.name, {"PK": slot.key, "SK": RATE_SK}, condition))

    def give_back(self, slot: WindowSlot) -> None:
        update = Update().add("count", -1)
        condition = "attribute_exists(#count) AND #count > :zero"
        update.names["#count"] = "count"
        update.values[":zero"] = to_attribute(0)
        try:
            self.table.client.update_item(**update.request(self.table.name, {"PK": slot.key, "SK": RATE_SK}, condition))
        except (ClientError, BotoCoreError):
            # Losing one unit of a one-minute window errs on the safe side; the refusal itself stands.
            pass
