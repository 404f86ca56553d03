"""DynamoDB reads for the conversations API and /health, on top of the conversation store.

Access patterns (all on the one table):
  leads by activity   Query GSI1  GSI1PK = LEADS            newest first
  a lead's thread     Query GSI1  GSI1PK = THREAD#<wa_id>   newest first
  health counters     BatchGetItem STATS#<hour> x SHARD#<n> for the last 24 hours
  reset unread        UpdateItem on LEAD#<wa_id>, only while its last inbound message is the one seen

Pages ask DynamoDB for one item more than they return: that extra item says whether a next page exists,
so the last page never carries a cursor to an empty page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from whatsapp_crm.errors import StoreUnavailableError
from whatsapp_crm.health import Counts
from whatsapp_crm.read_api import Page, Position
from whatsapp_crm.store import keys
from whatsapp_crm.store.dynamodb import get_lead, lead_key
from whatsapp_crm.store.toolkit import Table, Update, from_item, store_errors, to_attribute

BATCH_GET_LIMIT = 100
BATCH_GET_ROUNDS = 5  # unprocessed keys are retried this many times before the store counts as unavailable


class DynamoApiStore:
    """What the conversations API and /health may do: read pages, leads, media records and counters, and
    reset a lead's unread count (read_api.ConversationReader, health.HealthStore)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = Table(table_name, client)

    # --- pages ---------------------------------------------------------------------------------

    def _page(self, partition: str, table_sk: str, limit: int, after: Position | None) -> Page:
        request: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": keys.GSI1,
            "KeyConditionExpression": "GSI1PK = :partition",
            "ExpressionAttributeValues": {":partition": {"S": partition}},
            "ScanIndexForward": False,
            "Limit": limit + 1,
        }
        if after is not None:
            # The partition comes from the request, never from the cursor.
            request["ExclusiveStartKey"] = {
                "PK": {"S": after.pk},
                "SK": {"S": table_sk},
                "GSI1PK": {"S": partition},
                "GSI1SK": {"S": after.sort_key},
            }
        with store_errors():
            response = self.table.client.query(**request)
        raw = response.get("Items", [])
        items = [from_item(item) for item in raw[:limit]]
        more = len(raw) > limit or "LastEvaluatedKey" in response
        next_position = None
        if more and items:
            last = raw[len(items) - 1]
            next_position = Position(pk=last["PK"]["S"], sort_key=last["GSI1SK"]["S"])
        return Page(items=items, next_position=next_position)

    def list_leads(self, limit: int, after: Position | None) -> Page:
        return self._page(keys.LEADS_BY_ACTIVITY, keys.LEAD_SK, limit, after)

    def list_thread(self, wa_id: str, limit: int, after: Position | None) -> Page:
        return self._page(keys.thread_pk(wa_id), keys.MESSAGE_SK, limit, after)

    def get_lead(self, wa_id: str) -> dict[str, Any] | None:
        return get_lead(self.table, wa_id)

    def media_records(self, media_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The MEDIA# items of these ids (at most a page's worth: one BatchGetItem of up to 100 keys)."""
        found: dict[str, dict[str, Any]] = {}
        pending = [{"PK": {"S": keys.media_pk(media_id)}, "SK": {"S": keys.MEDIA_SK}} for media_id in media_ids[:100]]
        with store_errors():
            for _ in range(5):
                if not pending:
                    break
                answer = self.table.client.batch_get_item(RequestItems={self.table.name: {"Keys": pending}})
                for item in answer.get("Responses", {}).get(self.table.name, []):
                    plain = from_item(item)
                    found[str(plain.get("media_id"))] = plain
                pending = answer.get("UnprocessedKeys", {}).get(self.table.name, {}).get("Keys", [])
        return found

    # --- unread ----------------------------------------------------------------------------------

    def reset_unread(self, wa_id: str, seen_wamid: str | None, at: str) -> bool:
        """Zero the unread count unless a newer inbound message arrived since `seen_wamid` was read."""
        update = Update().set("unread_count", 0).set("read_at", at)
        update.names["#last"] = "last_inbound_wamid"
        if seen_wamid is None:
            condition = "attribute_exists(PK) AND attribute_not_exists(#last)"
        else:
            condition = "attribute_exists(PK) AND #last = :seen"
            update.values[":seen"] = to_attribute(seen_wamid)
        return self.table.update(update.request(self.table.name, lead_key(wa_id), condition))

    # --- health ----------------------------------------------------------------------------------

    def hourly_counts(self, hours: Sequence[str]) -> Mapping[str, Counts]:
        wanted = [
            {"PK": {"S": f"STATS#{hour}"}, "SK": {"S": f"SHARD#{shard}"}}
            for hour in hours
            for shard in range(keys.STATS_SHARDS)
        ]
        totals: dict[str, Counts] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            for item in self._batch_get(wanted[start : start + BATCH_GET_LIMIT]):
                hour = str(item["PK"]).removeprefix("STATS#")
                counts = Counts(
                    received=int(item.get("received") or 0),
                    sent=int(item.get("sent") or 0),
                    failed=int(item.get("failed") or 0),
                    refused=int(item.get("refused") or 0),
                )
                totals[hour] = totals.get(hour, Counts()) + counts
        return totals

    def _batch_get(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = batch
        for _ in range(BATCH_GET_ROUNDS):
            request = {
                self.table.name: {
                    "Keys": pending,
                    "ProjectionExpression": "#pk, #received, #sent, #failed, #refused",
                    "ExpressionAttributeNames": {
                        "#pk": "PK",
                        "#received": "received",
                        "#sent": "sent",
                        "#failed": "failed",
                        "#refused": "refused",
                    },
                }
            }
            with store_errors():
                response = self.table.client.batch_get_item(RequestItems=request)
            found.extend(from_item(item) for item in response.get("Responses", {}).get(self.table.name, []))
            pending = response.get("UnprocessedKeys", {}).get(self.table.name, {}).get("Keys", [])
            if not pending:
                return found
        raise StoreUnavailableError("DynamoDB kept leaving health counters unprocessed")

    def latest_activity(self) -> str | None:
        page = self.list_leads(1, None)
        if not page.items:
            return None
        latest = page.items[0].get("last_message_at")
        return latest if isinstance(latest, str) else None
