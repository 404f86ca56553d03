#!/usr/bin/env python3
"""Move a conversations table written before the table redesign (issue 11) and before conversations were
keyed by business number (issue 14) onto the current layout.

    .venv/bin/python scripts/migrate_table.py --table <ConversationsTable name> [--dry-run]
        [--default-phone-number-id <id>]

docs/table-design.md "Migration" gives the order: deploy with KeepLegacyIndex=true, run this, deploy again.
Three steps, each a scan and one conditional write per item, safe to run twice and while traffic flows:

1. leads still in the single `LEADS` listing partition move to their shard (`LEADS#<nn>`);
2. a lead item holding its conversation's fields itself (window, unread tags, timeline, cool-downs) has them
   copied to the conversation item of its `last_phone_number_id` (`LEAD#<wa_id>`/`CONV#<number>`), merged
   under what the new version already wrote there (`if_not_exists`, unread tags added to the set), then
   removed from the lead together with its old listing entry;
3. messages whose thread key names only the lead (`THREAD#<wa_id>`) get their conversation's
   (`THREAD#<phone_number_id>#<wa_id>`).

Leads and messages stored before the number was recorded take `--default-phone-number-id`; without it they
are left as they are and counted. `--dry-run` counts what would change and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "whatsapp"))

from whatsapp_crm.store import keys
from whatsapp_crm.store.dynamodb import LEAD_FIELDS
from whatsapp_crm.store.toolkit import from_item, to_attribute

LEGACY_LEADS_PARTITION = "LEADS"
# What a lead item keeps besides its business-wide fields (LEAD_FIELDS): its keys and the number that the
# events name for its facts.
_LEAD_OWN = frozenset({"PK", "SK", "wa_id", "last_phone_number_id"})
# A lead item still holds its conversation when it has any of these (written before issue 14).
_LEGACY_TIMELINE = ("last_message_at", "last_inbound_at", "last_outbound_at")


def _scan(client: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    while True:
        page = client.scan(**request)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def legacy_leads(client: Any, table: str) -> Iterator[dict[str, Any]]:
    """Lead items still in the single legacy partition (only the attributes the move needs)."""
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "#sk = :lead AND #gpk = :legacy",
        "ProjectionExpression": "#pk, #sk, wa_id",
        "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK", "#gpk": "GSI1PK"},
        "ExpressionAttributeValues": {":lead": {"S": keys.LEAD_SK}, ":legacy": {"S": LEGACY_LEADS_PARTITION}},
    }
    return _scan(client, request)


def move_lead(client: Any, table: str, item: dict[str, Any]) -> bool:
    """Set the lead's listing shard; False when it was already moved (by the webhook or a previous run)."""
    wa_id = item["PK"]["S"].removeprefix("LEAD#")
    try:
        client.update_item(
            TableName=table,
            Key={"PK": item["PK"], "SK": item["SK"]},
            UpdateExpression="SET #gpk = :shard",
            ConditionExpression="#gpk = :legacy",
            ExpressionAttributeNames={"#gpk": "GSI1PK"},
            ExpressionAttributeValues={
                ":shard": {"S": keys.leads_pk(wa_id)},
                ":legacy": {"S": LEGACY_LEADS_PARTITION},
            },
        )
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def leads_holding_a_conversation(client: Any, table: str) -> Iterator[dict[str, Any]]:
    """Lead items written before issue 14: their conversation's fields are on the lead itself."""
    names = {"#sk": "SK"} | {f"#t{index}": name for index, name in enumerate(_LEGACY_TIMELINE)}
    held = " OR ".join(f"attribute_exists(#t{index})" for index in range(len(_LEGACY_TIMELINE)))
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": f"#sk = :lead AND ({held})",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {":lead": {"S": keys.LEAD_SK}},
        "ConsistentRead": True,
    }
    for item in _scan(client, request):
        yield from_item(item)


def conversation_fields(lead: dict[str, Any]) -> dict[str, Any]:
    """What of a lead item written before issue 14 belongs to its conversation."""
    return {
        name: value
        for name, value in lead.items()
        if name not in LEAD_FIELDS and name not in _LEAD_OWN and name not in ("GSI1PK", "GSI1SK")
    }


def move_conversation(client: Any, table: str, lead: dict[str, Any], number: str) -> None:
    """Copy the lead's conversation to its conversation item, then take it (and its listing entry) off the
    lead. The copy never overwrites what the new version wrote (`if_not_exists`; unread tags are a set, so
    adding them twice counts them once); the clean-up only removes what the copy carried, and only while
    the lead still holds the values read (an old version still writing meanwhile: the next run moves it)."""
    wa_id = str(lead.get("wa_id") or str(lead["PK"]).removeprefix("LEAD#"))
    fields = conversation_fields(lead)
    tags = fields.pop("unread_tags", None)
    activity = str(lead.get("last_message_at") or lead.get("last_inbound_at") or lead.get("last_outbound_at"))
    fields |= {
        "wa_id": wa_id,
        "last_phone_number_id": number,
        "GSI1PK": keys.leads_pk(wa_id),
        "GSI1SK": keys.leads_sk(activity, wa_id, number),
    }
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    assignments = []
    for index, (name, value) in enumerate(sorted(fields.items())):
        names[f"#f{index}"] = name
        values[f":f{index}"] = to_attribute(value)
        assignments.append(f"#f{index} = if_not_exists(#f{index}, :f{index})")
    expression = "SET " + ", ".join(assignments)
    if tags:
        names["#tags"] = "unread_tags"
        values[":tags"] = {"SS": sorted(str(tag) for tag in tags)}
        expression += " ADD #tags :tags"
    client.update_item(
        TableName=table,
        Key={"PK": {"S": keys.lead_pk(wa_id)}, "SK": {"S": keys.conversation_sk(number)}},
        UpdateExpression=expression,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )
    removed = sorted(set(conversation_fields(lead)) - {"wa_id"}) + [
        name for name in ("GSI1PK", "GSI1SK") if name in lead
    ]
    clean_names = {f"#r{index}": name for index, name in enumerate(removed)}
    guards = {name: lead[name] for name in _LEGACY_TIMELINE + ("updated_at",) if name in lead}
    condition = " AND ".join(f"#g{index} = :g{index}" for index in range(len(guards))) or "attribute_exists(PK)"
    clean_names |= {f"#g{index}": name for index, name in enumerate(guards)}
    cleanup: dict[str, Any] = {
        "TableName": table,
        "Key": {"PK": {"S": keys.lead_pk(wa_id)}, "SK": {"S": keys.LEAD_SK}},
        "UpdateExpression": "REMOVE " + ", ".join(f"#r{index}" for index in range(len(removed))),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": clean_names,
    }
    if guards:
        cleanup["ExpressionAttributeValues"] = {
            f":g{index}": to_attribute(value) for index, value in enumerate(guards.values())
        }
    try:
        client.update_item(**cleanup)
    except client.exceptions.ConditionalCheckFailedException:
        pass  # written meanwhile by an old version: the copy stands, the next run moves the rest


def legacy_thread_messages(client: Any, table: str) -> Iterator[dict[str, Any]]:
    """Message items whose thread key names only the lead (`THREAD#<wa_id>`, written before issue 14)."""
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "#sk = :msg AND begins_with(#gpk, :thread)",
        "ProjectionExpression": "#pk, #sk, #gpk, wa_id, phone_number_id",
        "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK", "#gpk": "GSI1PK"},
        "ExpressionAttributeValues": {":msg": {"S": keys.MESSAGE_SK}, ":thread": {"S": "THREAD#"}},
    }
    for item in _scan(client, request):
        plain = from_item(item)
        if str(plain["GSI1PK"]).count("#") == 1:
            yield plain


def move_message(client: Any, table: str, message: dict[str, Any], number: str) -> bool:
    """Put the message in its conversation's thread; False when it is there already (a previous run)."""
    old = str(message["GSI1PK"])
    wa_id = str(message.get("wa_id") or old.removeprefix("THREAD#"))
    try:
        client.update_item(
            TableName=table,
            Key={"PK": {"S": str(message["PK"])}, "SK": {"S": str(message["SK"])}},
            UpdateExpression="SET #gpk = :thread",
            ConditionExpression="#gpk = :old",
            ExpressionAttributeNames={"#gpk": "GSI1PK"},
            ExpressionAttributeValues={":thread": {"S": keys.thread_pk(number, wa_id)}, ":old": {"S": old}},
        )
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True


@dataclass
class Tally:
    moved: int = 0
    skipped: int = 0  # already moved (by the new version or an earlier run)
    unnumbered: int = 0  # no number recorded and no --default-phone-number-id


def migrate(client: Any, table: str, *, dry_run: bool = False, default_number: str | None = None) -> dict[str, Tally]:
    """The three steps in order; what each moved, found moved and left for want of a number."""
    tallies = {"listing": Tally(), "conversations": Tally(), "threads": Tally()}
    for item in legacy_leads(client, table):
        if dry_run or move_lead(client, table, item):
            tallies["listing"].moved += 1
        else:
            tallies["listing"].skipped += 1
    for lead in leads_holding_a_conversation(client, table):
        number = lead.get("last_phone_number_id") or default_number
        if not isinstance(number, str) or not number:
            tallies["conversations"].unnumbered += 1
            continue
        if not dry_run:
            move_conversation(client, table, lead, number)
        tallies["conversations"].moved += 1
    for message in legacy_thread_messages(client, table):
        number = message.get("phone_number_id") or default_number
        if not isinstance(number, str) or not number:
            tallies["threads"].unnumbered += 1
        elif dry_run or move_message(client, table, message, number):
            tallies["threads"].moved += 1
        else:
            tallies["threads"].skipped += 1
    return tallies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--table", required=True, help="the stack's ConversationsTable name")
    parser.add_argument("--dry-run", action="store_true", help="count what would move, change nothing")
    parser.add_argument(
        "--default-phone-number-id",
        help="the business number of leads and messages stored before numbers were recorded (else left)",
    )
    args = parser.parse_args(argv)
    import boto3

    tallies = migrate(
        boto3.client("dynamodb"), args.table, dry_run=args.dry_run, default_number=args.default_phone_number_id
    )
    verb = "would move" if args.dry_run else "moved"
    listing, conversations, threads = tallies["listing"], tallies["conversations"], tallies["threads"]
    print(f"{verb} {listing.moved} leads to the sharded listing; {listing.skipped} already moved")
    print(
        f"{verb} {conversations.moved} leads' conversations to their number's conversation item; "
        f"{conversations.unnumbered} left (no number: pass --default-phone-number-id)"
    )
    print(
        f"{verb} {threads.moved} messages to their conversation's thread; {threads.skipped} already moved; "
        f"{threads.unnumbered} left (no number: pass --default-phone-number-id)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
