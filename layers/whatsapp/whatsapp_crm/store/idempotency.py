"""Idempotency keys of POST /messages on the conversations table (whatsapp_crm.idempotency has the rules).

item             PK                 SK     attributes
idempotency key  IDEM#<sha256(key)>  IDEM   fingerprint, state, owner, lease_until, response (JSON), sending_at,
                                           wa_id, callback, created_at, expires_at (TTL, 24 h after the claim)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from whatsapp_crm.clock import iso
from whatsapp_crm.idempotency import LEASE, KeyRecord, State
from whatsapp_crm.store import keys
from whatsapp_crm.store.dynamodb import sent_with_callback
from whatsapp_crm.store.toolkit import Table, from_item, store_errors, to_attribute

SK = "IDEM"


def _key(key_id: str) -> dict[str, Any]:
    return {"PK": {"S": f"IDEM#{key_id}"}, "SK": {"S": SK}}


def _record(item: Mapping[str, Any]) -> KeyRecord:
    response = item.get("response")
    return KeyRecord(
        fingerprint=str(item.get("fingerprint", "")),
        state=str(item.get("state", "")),
        owner=str(item.get("owner", "")),
        lease_until=int(item.get("lease_until") or 0),
        response=json.loads(response) if isinstance(response, str) else None,
        sending_at=item.get("sending_at") if isinstance(item.get("sending_at"), str) else None,
        wa_id=item.get("wa_id") if isinstance(item.get("wa_id"), str) else None,
        callback=item.get("callback") if isinstance(item.get("callback"), str) else None,
        phone_number_id=item.get("phone_number_id") if isinstance(item.get("phone_number_id"), str) else None,
    )


class DynamoIdempotencyStore:
    """The send API's idempotency keys (idempotency.IdempotencyStore)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = Table(table_name, client)

    def claim_idempotency_key(
        self, key_id: str, fingerprint: str, owner: str, now: datetime, lease: timedelta, retention: timedelta
    ) -> KeyRecord | None:
        epoch = int(now.timestamp())
        claimed = self.table.update(
            {
                "TableName": self.table.name,
                "Key": _key(key_id),
                "UpdateExpression": (
                    "SET fingerprint = :fp, #state = :progress, #owner = :owner, lease_until = :lease, "
                    "created_at = :now, #ttl = :expires REMOVE #response, sending_at, wa_id, #callback, phone_number_id"
                ),
                "ConditionExpression": "attribute_not_exists(PK) OR #ttl < :epoch OR #state = :released",
                "ExpressionAttributeNames": {
                    "#state": "state",
                    "#owner": "owner",
                    "#ttl": keys.TTL_ATTRIBUTE,
                    "#response": "response",
                    "#callback": "callback",
                },
                "ExpressionAttributeValues": {
                    ":fp": to_attribute(fingerprint),
                    ":progress": to_attribute(State.IN_PROGRESS),
                    ":owner": to_attribute(owner),
                    ":lease": to_attribute(epoch + int(lease.total_seconds())),
                    ":now": to_attribute(iso(now)),
                    ":expires": to_attribute(epoch + int(retention.total_seconds())),
                    ":epoch": to_attribute(epoch),
                    ":released": to_attribute(State.RELEASED),
                },
            }
        )
        if claimed:
            return None
        with store_errors():
            item = self.table.client.get_item(TableName=self.table.name, Key=_key(key_id), ConsistentRead=True).get(
                "Item"
            )
        if item is None:  # expired and swept between the two calls: claim again
            return self.claim_idempotency_key(key_id, fingerprint, owner, now, lease, retention)
        return _record(from_item(item))

    def take_over_idempotency_key(self, key_id: str, held: KeyRecord, owner: str, now: datetime) -> bool:
        return self.table.update(
            {
                "TableName": self.table.name,
                "Key": _key(key_id),
                "UpdateExpression": "SET #owner = :owner, #state = :progress, lease_until = :lease REMOVE sending_at",
                "ConditionExpression": "#owner = :held AND #state = :state",
                "ExpressionAttributeNames": {"#owner": "owner", "#state": "state"},
                "ExpressionAttributeValues": {
                    ":owner": to_attribute(owner),
                    ":progress": to_attribute(State.IN_PROGRESS),
                    ":lease": to_attribute(int(now.timestamp() + LEASE.total_seconds())),
                    ":held": to_attribute(held.owner),
                    ":state": to_attribute(held.state),
                },
            }
        )

    def mark_idempotent_sending(
        self, key_id: str, owner: str, wa_id: str, phone_number_id: str, callback: str, at: str
    ) -> None:
        self.table.update(
            {
                "TableName": self.table.name,
                "Key": _key(key_id),
                "UpdateExpression": "SET sending_at = :at, wa_id = :wa, phone_number_id = :pn, #callback = :cb",
                "ConditionExpression": "#owner = :owner",
                "ExpressionAttributeNames": {"#owner": "owner", "#callback": "callback"},
                "ExpressionAttributeValues": {
                    ":at": to_attribute(at),
                    ":wa": to_attribute(wa_id),
                    ":pn": to_attribute(phone_number_id),
                    ":cb": to_attribute(callback),
                    ":owner": to_attribute(owner),
                },
            }
        )

    def settle_idempotency_key(self, key_id: str, owner: str, state: str, response: Mapping[str, Any] | None) -> None:
        values: dict[str, Any] = {":state": to_attribute(state), ":owner": to_attribute(owner)}
        expression = "SET #state = :state"
        if response is not None:
            expression += ", #response = :response"
            values[":response"] = to_attribute(json.dumps(dict(response), ensure_ascii=False))
        self.table.update(
            {
                "TableName": self.table.name,
                "Key": _key(key_id),
                "UpdateExpression": expression,
                "ConditionExpression": "#owner = :owner",
                "ExpressionAttributeNames": {"#state": "state", "#owner": "owner", "#response": "response"}
                if response is not None
                else {"#state": "state", "#owner": "owner"},
                "ExpressionAttributeValues": values,
            }
        )

    def find_send_by_callback(self, wa_id: str, phone_number_id: str | None, callback: str, since: str) -> str | None:
        """An outbound message in the thread of the lead with the sending number since `since` carrying
        `callback` (Meta echoes it in the status webhooks; the send's own record keeps it too). A key held
        before issue 14 names no number: its send is in the lead's old thread."""
        thread = keys.thread_pk(phone_number_id, wa_id) if phone_number_id else keys.legacy_thread_pk(wa_id)
        return sent_with_callback(self.table, thread, callback, since)
