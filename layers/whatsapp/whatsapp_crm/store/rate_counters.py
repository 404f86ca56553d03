"""DynamoDB counters for the send rate limits: one conditional UpdateItem per limit, items expire by TTL.

item           PK                                            SK     attributes
rate counter   RATE#<scope>#<subject>#<window start, ISO>    RATE   count, limit, expires_at
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.ratelimit import WindowSlot
from whatsapp_crm.store import keys
from whatsapp_crm.store.dynamodb import DynamoTable, _error_code, _store_errors, _Update, to_attribute

RATE_SK = "RATE"


class DynamoRateCounter(DynamoTable):
    def take(self, slot: WindowSlot) -> bool:
        update = (
            _Update()
            .add("count", 1)
            .set_if_absent(keys.TTL_ATTRIBUTE, slot.expires_at)
            .set_if_absent("limit", slot.rate.limit)
        )
        condition = "attribute_not_exists(#count) OR #count < :limit"
        update.names["#count"] = "count"
        update.values[":limit"] = to_attribute(slot.rate.limit)
        request = update.request(self.table_name, {"PK": slot.key, "SK": RATE_SK}, condition)
        with _store_errors():
            try:
                self.client.update_item(**request)
            except ClientError as error:
                if _error_code(error) == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    def give_back(self, slot: WindowSlot) -> None:
        update = _Update().add("count", -1)
        condition = "attribute_exists(#count) AND #count > :zero"
        update.names["#count"] = "count"
        update.values[":zero"] = to_attribute(0)
        try:
            self.client.update_item(**update.request(self.table_name, {"PK": slot.key, "SK": RATE_SK}, condition))
        except (ClientError, BotoCoreError):
            # Losing one unit of a one-minute window errs on the safe side; the refusal itself stands.
            pass
