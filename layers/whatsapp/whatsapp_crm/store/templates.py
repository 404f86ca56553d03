"""DynamoDB adapter of the template cache: one partition, a few hundred small items at most.

item            PK          SK                          attributes
template        TEMPLATES   T#<name>#<language>         name, language, status, category, parameter_format,
                                                        parameters, template_id, status_at, last_event...
sync state      TEMPLATES   SYNC                        synced_at, template_count, waba_id, last_attempt_at,
                                                        last_error, refresh_claimed_at

A send reads one template's languages with one Query (`begins_with(SK, "T#<name>#")`; names are
`[a-z0-9_]+`, so `T#viewing#` never matches `T#viewing_reminder#`). A status webhook moves one item forward
with one conditional UpdateItem, only when it is newer than what the cache holds and the template ids match.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from whatsapp_crm.store import keys
from whatsapp_crm.store.toolkit import (
    CONDITION_FAILED,
    Table,
    Update,
    error_code,
    from_item,
    store_errors,
    to_attribute,
)
from whatsapp_crm.templates import CachedTemplate, SyncState, TemplateParameters, TemplateStatusUpdate


def _template_item(template: CachedTemplate) -> dict[str, Any]:
    item = {
        "PK": {"S": keys.TEMPLATES_PK},
        "SK": {"S": keys.template_sk(template.name, template.language)},
        "name": {"S": template.name},
        "language": {"S": template.language},
        "status": {"S": template.status},
        "parameter_format": {"S": template.parameter_format},
        "parameters": to_attribute(template.parameters.as_json()),
        "status_at": {"S": template.status_at},
    }
    if template.category:
        item["category"] = {"S": template.category}
    if template.template_id:
        item["template_id"] = {"S": template.template_id}
    return item


def _template(plain: dict[str, Any]) -> CachedTemplate:
    return CachedTemplate(
        name=str(plain["name"]),
        language=str(plain["language"]),
        status=str(plain.get("status") or "UNKNOWN"),
        category=plain.get("category"),
        parameter_format=str(plain.get("parameter_format") or "POSITIONAL"),
        parameters=TemplateParameters.from_json(plain.get("parameters") or {}),
        template_id=plain.get("template_id"),
        status_at=str(plain.get("status_at") or ""),
    )


class DynamoTemplateStore:
    """The template cache (templates.TemplateStore)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = Table(table_name, client)

    def _query(self, prefix: str) -> list[CachedTemplate]:
        request = {
            "TableName": self.table.name,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": keys.TEMPLATES_PK}, ":prefix": {"S": prefix}},
        }
        return [_template(item) for item in self.table.query(request)]

    # --- the send path and GET /templates ------------------------------------------------------------

    def templates_named(self, name: str) -> list[CachedTemplate]:
        return self._query(keys.template_name_prefix(name))

    def all_templates(self) -> list[CachedTemplate]:
        templates = self._query(keys.TEMPLATE_SK_PREFIX)
        return sorted(templates, key=lambda template: (template.name, template.language))

    def sync_state(self) -> SyncState | None:
        plain = self.table.get(self._sync_key())
        if not plain:
            return None
        if not plain.get("synced_at") and not plain.get("last_attempt_at"):
            return None
        return SyncState(
            synced_at=plain.get("synced_at"),
            template_count=int(plain.get("template_count") or 0),
            waba_id=plain.get("waba_id"),
            last_attempt_at=plain.get("last_attempt_at"),
            last_error=plain.get("last_error"),
        )

    # --- sync ----------------------------------------------------------------------------------------

    def claim_refresh(self, now: str, not_before: str) -> str | None:
        """Take the right to sync now; when someone synced after `not_before`, their start time instead."""
        update = Update().set("refresh_claimed_at", now).set("last_attempt_at", now)
        claimed = update.name("refresh_claimed_at")
        condition = f"attribute_not_exists({claimed}) OR {claimed} <= {update.value(not_before)}"
        request = update.request(self.table.name, self._sync_key(), condition)
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        with store_errors():
            try:
                self.table.client.update_item(**request)
            except ClientError as error:
                if error_code(error) != CONDITION_FAILED:
                    raise
                old = error.response.get("Item") or {}
                return str(from_item(old).get("refresh_claimed_at") or now) if old else now
        return None

    def replace_templates(self, templates: Sequence[CachedTemplate], started_at: str) -> tuple[int, int]:
        """Write what changed, delete what Meta no longer lists; (written, removed).

        A status webhook newer than this sync's start wins over what the listing said (conditions below).
        """
        existing = {(t.name, t.language): t for t in self._query(keys.TEMPLATE_SK_PREFIX)}
        written = removed = 0
        for template in templates:
            known = existing.pop((template.name, template.language), None)
            if known is not None and known.same_content(template):
                continue
            if self._put_unless_newer(template, started_at):
                written += 1
        for name, language in existing:
            if self._delete_unless_newer(name, language, started_at):
                removed += 1
        return written, removed

    # A sync's writes; False when a status webhook newer than the sync's start holds the item.

    def _put_unless_newer(self, template: CachedTemplate, started_at: str) -> bool:
        put = {
            "TableName": self.table.name,
            "Item": _template_item(template),
            "ConditionExpression": "attribute_not_exists(PK) OR status_at <= :started",
            "ExpressionAttributeValues": {":started": {"S": started_at}},
        }
        return self.table.conditional("put_item", put) is not None

    def _delete_unless_newer(self, name: str, language: str, started_at: str) -> bool:
        delete = {
            "TableName": self.table.name,
            "Key": {"PK": {"S": keys.TEMPLATES_PK}, "SK": {"S": keys.template_sk(name, language)}},
            "ConditionExpression": "status_at <= :started",
            "ExpressionAttributeValues": {":started": {"S": started_at}},
        }
        return self.table.conditional("delete_item", delete) is not None

    def record_sync(self, state: SyncState) -> None:
        update = (
            Update()
            .set("synced_at", state.synced_at)
            .set("template_count", state.template_count)
            .set("waba_id", state.waba_id)
            .set("last_error", "")
        )
        with store_errors():
            self.table.client.update_item(**update.request(self.table.name, self._sync_key()))

    def record_sync_failure(self, at: str, reason: str) -> None:
        update = Update().set("last_attempt_at", at).set("last_error", reason)
        with store_errors():
            self.table.client.update_item(**update.request(self.table.name, self._sync_key()))

    @staticmethod
    def _sync_key() -> dict[str, str]:
        return {"PK": keys.TEMPLATES_PK, "SK": keys.TEMPLATE_SYNC_SK}


def apply_template_status(table: Table, update: TemplateStatusUpdate) -> bool:
    """The webhook's one write for a template status event; False when skipped (a template we never saw,
    another template under that name, or an event older than what the cache holds)."""
    change = Update().set("last_event", update.event).set("last_event_at", update.at).set("reason", update.reason)
    if update.status is not None:
        change.set("status", update.status).set("status_at", update.at)
    identifier = change.name("template_id")
    status_at = change.name("status_at")
    at = change.value(update.at)
    condition = (
        f"attribute_exists(PK) AND {identifier} = {change.value(update.template_id)} "
        f"AND (attribute_not_exists({status_at}) OR {status_at} <= {at})"
    )
    key = {"PK": keys.TEMPLATES_PK, "SK": keys.template_sk(update.name, update.language)}
    return table.update(change.request(table.name, key, condition))
