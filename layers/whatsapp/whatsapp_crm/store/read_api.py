"""DynamoDB reads for the conversations API and /health, on top of the conversation store.

Access patterns (all on the one table):
  conversations       Query GSI2  GSI1PK = LEADS#<nn> on every shard, merged newest first
  a thread            Query GSI2  GSI1PK = THREAD#<phone_number_id>#<wa_id>   newest first
  page items          BatchGetItem of the page's items (the index projects keys and a few filter fields),
                      for inbound messages of their reply records (the responder's decision), for
                      conversations of their leads (the opt-out and meeting request are the lead's)
  health counters     BatchGetItem STATS#<hour>#<nn> for the last 24 hours
  reset unread        UpdateItem on the conversation, only while its last inbound message is the one seen

Pages ask DynamoDB for one item more than they return: that extra item says whether a next page exists,
so the last page never carries a cursor to an empty page.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from whatsapp_crm.errors import StoreUnavailableError
from whatsapp_crm.health import Counts
from whatsapp_crm.read_api import NumberFilter, Page, Position
from whatsapp_crm.store import keys
from whatsapp_crm.store.dynamodb import conversation_key, get_lead, lead_state, with_decision
from whatsapp_crm.store.toolkit import Table, Update, from_item, store_errors, to_attribute

BATCH_GET_LIMIT = 100
FILTER_ROUNDS = 5  # Queries per shard a number-filtered page follows before it cuts the page short
BATCH_GET_ROUNDS = 5  # unprocessed keys are retried this many times before the store counts as unavailable


def _listing_key(entry: Mapping[str, Any]) -> str:
    return str(entry["GSI1SK"]["S"])


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
        more = len(raw) > limit or "LastEvaluatedKey" in response
        return self._fetched_page(raw[:limit], more)

    def _fetched_page(self, entries: list[dict[str, Any]], more: bool, resume: Position | None = None) -> Page:
        """The page's full items (index entries carry keys and filter fields only), in the entries' order."""
        wanted = [{"PK": entry["PK"], "SK": entry["SK"]} for entry in entries]
        inbound = [entry["PK"] for entry in entries if entry.get("direction", {}).get("S") == "inbound"]
        wanted += [{"PK": pk, "SK": {"S": keys.REPLY_CLAIM_SK}} for pk in inbound]
        # A conversation's page also reads its leads (opt-out, meeting request), once per lead.
        conversation_leads = {
            entry["PK"]["S"] for entry in entries if keys.conversation_number(entry["SK"]["S"]) is not None
        }
        wanted += [{"PK": {"S": pk}, "SK": {"S": keys.LEAD_SK}} for pk in sorted(conversation_leads)]
        found = {(item["PK"], item["SK"]): item for item in self._batch_get_items(wanted)}
        listed = {(entry["PK"]["S"], keys.conversation_number(entry["SK"]["S"])) for entry in entries}
        items = []
        for entry in entries:
            pk, sort_key = entry["PK"]["S"], entry["SK"]["S"]
            item = found.get((pk, sort_key))
            if item is None:
                continue  # deleted between the Query and the read
            if item.get("direction") == "inbound":
                item = with_decision(item, found.get((pk, keys.REPLY_CLAIM_SK)))
            if sort_key == keys.LEAD_SK:
                # A lead listed as it was before issue 14 (scripts/migrate_table.py moves it to a
                # conversation item): shown once, not beside its own conversation item on the same page.
                view = lead_state(str(item.get("wa_id") or pk.removeprefix("LEAD#")), [item])
                if view is None or (pk, view.get("phone_number_id") or "") in listed:
                    continue
                item = view
            elif (number := keys.conversation_number(sort_key)) is not None:
                wa_id = str(item.get("wa_id") or pk.removeprefix("LEAD#"))
                item = lead_state(wa_id, [found.get((pk, keys.LEAD_SK)) or {}, item], number) or item
            items.append(item)
        next_position = None
        if more and resume is not None:
            next_position = resume  # a filtered page cut where its reading stopped: resume from there
        elif more and entries:
            last = entries[-1]
            next_position = Position(pk=last["PK"]["S"], sort_key=last["GSI1SK"]["S"])
        return Page(items=items, next_position=next_position)

    def _batch_get_items(self, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            found.extend(self._batch_get(wanted[start : start + BATCH_GET_LIMIT], counters=False))
        return found

    def _shard_entries(
        self, partition: str, limit: int, after: Position | None, number: NumberFilter | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Up to `limit` listing entries of one shard, newest first, older than the cursor, and where the
        shard's reading stopped short of that (the last key read) when a number filter left too few.

        DynamoDB applies Limit before the FilterExpression, so a filtered Query is followed a few rounds;
        past FILTER_ROUNDS the caller cuts its page at the returned key, never skipping the unread rest."""
        request: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": keys.GSI1,
            "KeyConditionExpression": "GSI1PK = :partition",
            "ExpressionAttributeValues": {":partition": {"S": partition}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if after is not None:
            # The sort key ends with the wa_id and the number, so it is unique: "older than the cursor" is exact.
            request["KeyConditionExpression"] += " AND GSI1SK < :after"
            request["ExpressionAttributeValues"][":after"] = {"S": after.sort_key}
        if number is not None:
            request["FilterExpression"] = "#number = :number" + (
                " OR attribute_not_exists(#number)" if number.or_unnumbered else ""
            )
            request["ExpressionAttributeNames"] = {"#number": "last_phone_number_id"}
            request["ExpressionAttributeValues"][":number"] = {"S": number.phone_number_id}
        entries: list[dict[str, Any]] = []
        with store_errors():
            for _ in range(FILTER_ROUNDS if number is not None else 1):
                response = self.table.client.query(**request)
                entries.extend(response.get("Items", []))
                stopped_at = response.get("LastEvaluatedKey")
                if len(entries) >= limit or stopped_at is None or number is None:
                    return entries[:limit], None
                request["ExclusiveStartKey"] = stopped_at
        return entries, stopped_at

    def list_leads(self, limit: int, after: Position | None, number: NumberFilter | None = None) -> Page:
        """The 16 listing shards queried at once and merged newest first (docs/table-design.md).

        With a number filter a shard may stop reading before it found enough; the page then holds only
        entries newer than the oldest such stop (all of those have been read on every shard), and the
        cursor resumes from there."""
        partitions = keys.leads_partitions()
        with ThreadPoolExecutor(max_workers=8) as pool:
            shards = list(
                pool.map(lambda partition: self._shard_entries(partition, limit + 1, after, number), partitions)
            )
        merged = list(heapq.merge(*(entries for entries, _ in shards), key=_listing_key, reverse=True))
        stops = [stopped_at for _, stopped_at in shards if stopped_at is not None]
        if not stops:
            return self._fetched_page(merged[:limit], len(merged) > limit)
        frontier = max(stops, key=_listing_key)
        complete = [entry for entry in merged if _listing_key(entry) >= _listing_key(frontier)]
        resume = Position(pk=frontier["PK"]["S"], sort_key=frontier["GSI1SK"]["S"])
        return self._fetched_page(complete[:limit], True, resume if len(complete) <= limit else None)

    def list_thread(self, wa_id: str, phone_number_id: str, limit: int, after: Position | None) -> Page:
        return self._page(keys.thread_pk(phone_number_id, wa_id), keys.MESSAGE_SK, limit, after)

    def get_lead(self, wa_id: str, phone_number_id: str | None = None) -> dict[str, Any] | None:
        return get_lead(self.table, wa_id, phone_number_id)

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

    def reset_unread(self, wa_id: str, phone_number_id: str, seen_wamid: str | None, at: str) -> bool:
        """Zero the conversation's unread count unless a newer inbound message arrived since `seen_wamid`."""
        update = Update().set("unread_count", 0).set("read_at", at)
        update.names["#last"] = "last_inbound_wamid"
        update.names["#tags"] = "unread_tags"
        if seen_wamid is None:
            condition = "attribute_exists(PK) AND attribute_not_exists(#last)"
        else:
            condition = "attribute_exists(PK) AND #last = :seen"
            update.values[":seen"] = to_attribute(seen_wamid)
        request = update.request(self.table.name, conversation_key(wa_id, phone_number_id), condition)
        request["UpdateExpression"] += " REMOVE #tags"
        return self.table.update(request)

    # --- health ----------------------------------------------------------------------------------

    def hourly_counts(self, hours: Sequence[str]) -> Mapping[str, Counts]:
        wanted = [
            {"PK": {"S": keys.stats_pk(hour, shard)}, "SK": {"S": keys.STATS_SK}}
            for hour in hours
            for shard in range(keys.STATS_SHARDS)
        ]
        totals: dict[str, Counts] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            for item in self._batch_get(wanted[start : start + BATCH_GET_LIMIT]):
                hour = str(item["PK"]).split("#")[1]
                counts = Counts(
                    received=int(item.get("received") or 0),
                    sent=int(item.get("sent") or 0),
                    failed=int(item.get("failed") or 0),
                    refused=int(item.get("refused") or 0),
                )
                totals[hour] = totals.get(hour, Counts()) + counts
        return totals

    def _batch_get(self, batch: list[dict[str, Any]], counters: bool = True) -> list[dict[str, Any]]:
        """The items of these keys (only the counter attributes with `counters`), retrying unprocessed keys."""
        found: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = batch
        for _ in range(BATCH_GET_ROUNDS):
            if not pending:
                return found
            wanted: dict[str, Any] = {"Keys": pending}
            if counters:
                wanted["ProjectionExpression"] = "#pk, #received, #sent, #failed, #refused"
                wanted["ExpressionAttributeNames"] = {
                    "#pk": "PK",
                    "#received": "received",
                    "#sent": "sent",
                    "#failed": "failed",
                    "#refused": "refused",
                }
            request = {self.table.name: wanted}
            with store_errors():
                response = self.table.client.batch_get_item(RequestItems=request)
            found.extend(from_item(item) for item in response.get("Responses", {}).get(self.table.name, []))
            pending = response.get("UnprocessedKeys", {}).get(self.table.name, {}).get("Keys", [])
            if not pending:
                return found
        raise StoreUnavailableError("DynamoDB kept leaving keys unprocessed")

    def latest_activity(self) -> str | None:
        page = self.list_leads(1, None)
        if not page.items:
            return None
        latest = page.items[0].get("last_message_at")
        return latest if isinstance(latest, str) else None
