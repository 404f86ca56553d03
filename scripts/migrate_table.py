#!/usr/bin/env python3
"""Move a conversations table written before the table redesign onto its sharded leads listing.

    .venv/bin/python scripts/migrate_table.py --table <ConversationsTable name> [--dry-run]

docs/table-design.md "Migration" gives the order: deploy with KeepLegacyIndex=true, run this, deploy again.
It scans the lead items (`LEAD#<wa_id>`/`LEAD`) and sets `GSI1PK` from the old single `LEADS` partition to
the lead's shard (`LEADS#<nn>`), each a conditional update that changes nothing if the webhook moved the lead
meanwhile: safe to run twice and while traffic flows. Prints how many leads it moved and skipped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "whatsapp"))

from whatsapp_crm.store import keys

LEGACY_LEADS_PARTITION = "LEADS"


def legacy_leads(client: Any, table: str) -> Iterator[dict[str, Any]]:
    """Lead items still in the single legacy partition (only the attributes the move needs)."""
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "#sk = :lead AND #gpk = :legacy",
        "ProjectionExpression": "#pk, #sk, wa_id",
        "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK", "#gpk": "GSI1PK"},
        "ExpressionAttributeValues": {":lead": {"S": keys.LEAD_SK}, ":legacy": {"S": LEGACY_LEADS_PARTITION}},
    }
    while True:
        page = client.scan(**request)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--table", required=True, help="the stack's ConversationsTable name")
    parser.add_argument("--dry-run", action="store_true", help="count the leads to move, change nothing")
    args = parser.parse_args(argv)
    import boto3

    client = boto3.client("dynamodb")
    moved = skipped = 0
    for item in legacy_leads(client, args.table):
        if args.dry_run or move_lead(client, args.table, item):
            moved += 1
        else:
            skipped += 1
    verb = "would move" if args.dry_run else "moved"
    print(f"{verb} {moved} leads to the sharded listing; {skipped} already moved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
