"""DynamoDB side of the media archive: one item per media id, and the media fields of its message.

item          PK                   SK      attributes
media file    MEDIA#<media_id>     MEDIA   status, wa_id, wamid, object_key, mime_type, size, sha256, reason, at,
                                           origin (inbound | upload)
message       MSG#<wamid>          MSG     + media_status, media_size, media_sha256, media_mime_type, media_reason

An outcome is one transaction of both writes: the media item (only while none is final: a redelivered
request cannot overwrite an archived file's record) and the message's fields, so a thread never shows a
media state the file route does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from whatsapp_crm.media_archive import MediaRecord, MediaStatus
from whatsapp_crm.store import keys
from whatsapp_crm.store.dynamodb import DynamoTable, _error_code, _store_errors, _Update, from_item, to_attribute


def media_key(media_id: str) -> dict[str, str]:
    return {"PK": keys.media_pk(media_id), "SK": keys.MEDIA_SK}


def _media_item(record: MediaRecord, origin: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "status": record.status.value,
        "media_id": record.media_id,
        "wa_id": record.wa_id or None,
        "wamid": record.wamid or None,
        "object_key": record.object_key,
        "mime_type": record.mime_type,
        "size": record.size,
        "sha256": record.sha256,
        "reason": record.reason.value if record.reason else None,
        "at": record.at,
        "filename": record.filename,
        "origin": origin,
    }
    item = {name: to_attribute(value) for name, value in fields.items() if value is not None}
    item.update({name: {"S": value} for name, value in media_key(record.media_id).items()})
    return item


class DynamoMediaLedger(DynamoTable):
    def media_record(self, media_id: str) -> Mapping[str, Any] | None:
        with _store_errors():
            answer = self.client.get_item(TableName=self.table_name, Key=_key(media_key(media_id)), ConsistentRead=True)
        item = answer.get("Item")
        return from_item(item) if item else None

    def record_media(self, record: MediaRecord) -> bool:
        """False when another run already recorded a final outcome for this media id."""
        put = {
            "Put": {
                "TableName": self.table_name,
                "Item": _media_item(record, "inbound"),
                "ConditionExpression": "attribute_not_exists(PK) OR #status = :pending",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":pending": {"S": MediaStatus.PENDING.value}},
            }
        }
        change = (
            _Update()
            .set("media_status", record.status.value)
            .set("media_size", record.size)
            .set("media_sha256", record.sha256)
            .set("media_mime_type", record.mime_type)
            .set("media_reason", record.reason.value if record.reason else None)
            .set("media_at", record.at)
        )
        update = change.request(self.table_name, {"PK": keys.message_pk(record.wamid), "SK": keys.MESSAGE_SK})
        update["ConditionExpression"] = "attribute_exists(PK)"
        with _store_errors():
            try:
                self.client.transact_write_items(TransactItems=[put, {"Update": update}])
            except ClientError as error:
                if _error_code(error) == "TransactionCanceledException":
                    return False
                raise
        return True

    def record_upload(self, record: MediaRecord) -> None:
        """A file an agent uploaded (POST /media): the business's own, not a lead's."""
        with _store_errors():
            self.client.put_item(TableName=self.table_name, Item=_media_item(record, "upload"))


def _key(key: Mapping[str, str]) -> dict[str, Any]:
    return {name: {"S": value} for name, value in key.items()}
