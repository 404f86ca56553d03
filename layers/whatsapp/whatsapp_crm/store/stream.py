"""DynamoDB Streams records (as Lambda delivers them) into table changes the domain reads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from whatsapp_crm.domain_events import TableChange
from whatsapp_crm.store.toolkit import from_item


def _committed_at(value: Any) -> str | None:
    """ApproximateCreationDateTime: epoch seconds (Lambda), or what a local feeder passed on."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str) and value:
        try:
            return _committed_at(float(value))
        except ValueError:
            return value
    return None


def _image(value: Any) -> dict[str, Any] | None:
    return from_item(value) if isinstance(value, Mapping) and value else None


def change_from_record(record: Mapping[str, Any]) -> TableChange:
    """One stream record; a record without a `dynamodb` section is a change with no keys (ignored)."""
    body = record.get("dynamodb") if isinstance(record.get("dynamodb"), Mapping) else {}
    assert isinstance(body, Mapping)
    keys = _image(body.get("Keys")) or {}
    return TableChange(
        event_name=str(record.get("eventName", "")),
        keys=keys,
        old=_image(body.get("OldImage")),
        new=_image(body.get("NewImage")),
        sequence_number=str(body.get("SequenceNumber", "")),
        committed_at=_committed_at(body.get("ApproximateCreationDateTime")),
    )
