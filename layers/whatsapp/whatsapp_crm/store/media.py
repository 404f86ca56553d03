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

from whatsapp_crm.media_archive import MediaRecord, MediaStatus
from whatsapp_crm.store import keys
from whatsapp_crm.store.toolkit import Table, Update, key_attributes, store_errors, to_attribute


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
    item.update(key_attributes(media_key(record.media_id)))
    return item


class DynamoMediaLedger:
    """The media archive's records (media_archive.MediaLedger)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = Table(table_name, client)

    def media_record(self, media_id: str) -> Mapping[str, Any] | None:
        return self.table.get(media_key(media_id))

    def record_media(self, record: MediaRecord) -> bool:
        """False when another run already recorded a final outcome for this media id."""
        put = {
            "Put": {
                "TableName": self.table.name,
                "Item": _media_item(record, "inbound"),
                "ConditionExpression": "attribute_not_exists(PK) OR #status = :pending",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":pending": {"S": MediaStatus.PENDING.value}},
            }
        }
        change = (
            Update()
            .set("media_status", record.status.value)
            .set("media_size", record.size)
            .set("media_sha256", record.sha256)
            .set("media_mime_type", record.mime_type)
            .set("media_reason", record.reason.value if record.reason else None)
            .set("media_at", record.at)
        )
        update = change.request(self.table.name, {"PK": keys.message_pk(record.wamid), "SK": keys.MESSAGE_SK})
        update["ConditionExpression"] = "attribute_exists(PK)"
        # Either condition failing means the outcome is not ours to record (a final one exists, or no message).
        return self.table.transact([put, {"Update": update}], "the media record") is None

    def record_upload(self, record: MediaRecord) -> None:
        """A file an agent uploaded (POST /media): the business's own, not a lead's."""
        with store_errors():
            self.table.client.put_item(TableName=self.table.name, Item=_media_item(record, "upload"))
