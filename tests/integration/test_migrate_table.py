"""scripts/migrate_table.py against moto's server: a table written before issue 14 (a lead item holding its
one conversation, messages in a thread keyed by the lead only) moves to conversations keyed by number, is
read per number through the real conversations API afterwards, and a second run changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conftest import AwsStack
from integration.api_client import ApiClient
from local import meta_payloads as meta
from local.graph_simulator import GraphSimulator
from scripts.migrate_table import migrate
from whatsapp_crm.store import keys

NUMBER, OTHER = meta.DEMO_PHONE_NUMBER_ID, "110022003300"
LEAD, UNNUMBERED = "972525551234", "972525550077"
AT = "2026-12-06T10:00:00Z"


def _legacy_lead(wa_id: str, number: str | None, **extra: dict[str, Any]) -> dict[str, Any]:
    """A lead item as the version before issue 14 wrote it: its conversation's fields on the lead."""
    item: dict[str, Any] = {
        "PK": {"S": f"LEAD#{wa_id}"},
        "SK": {"S": "LEAD"},
        "GSI1PK": {"S": keys.leads_pk(wa_id)},
        "GSI1SK": {"S": f"{AT}#{wa_id}"},
        "wa_id": {"S": wa_id},
        "profile_name": {"S": "דנה"},
        "last_inbound_at": {"S": AT},
        "last_inbound_wamid": {"S": "wamid.OLD1"},
        "last_message_at": {"S": AT},
        "last_message_preview": {"S": "שלום"},
        "unread_tags": {"SS": ["0000aaaa", "0000bbbb"]},
        "last_auto_reply_at_greeting": {"S": AT},
        "updated_at": {"S": AT},
        **extra,
    }
    if number is not None:
        item["last_phone_number_id"] = {"S": number}
    return item


def _legacy_message(wamid: str, wa_id: str, number: str | None, at: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "PK": {"S": f"MSG#{wamid}"},
        "SK": {"S": "MSG"},
        "GSI1PK": {"S": f"THREAD#{wa_id}"},
        "GSI1SK": {"S": f"{at}#{wamid}"},
        "wamid": {"S": wamid},
        "wa_id": {"S": wa_id},
        "direction": {"S": "inbound"},
        "message_type": {"S": "text"},
        "text": {"S": "שלום"},
        "timestamp": {"S": at},
        "received_at": {"S": at},
    }
    if number is not None:
        item["phone_number_id"] = {"S": number}
    return item


@pytest.fixture
def legacy(aws: AwsStack) -> tuple[Any, str]:
    """Given a table written before issue 14: a lead who opted out once and back in, two messages of theirs,
    and a lead stored before numbers were recorded."""
    client, table = aws.client("dynamodb"), aws.ref("ConversationsTable")
    items = [
        _legacy_lead(LEAD, NUMBER, opted_out={"BOOL": False}, opt_state_at={"S": "2026-12-01T00:00:00Z"}),
        _legacy_message("wamid.OLD0", LEAD, NUMBER, "2026-12-06T09:59:00Z"),
        _legacy_message("wamid.OLD1", LEAD, NUMBER, AT),
        _legacy_lead(UNNUMBERED, None),
        _legacy_message("wamid.OLD2", UNNUMBERED, None, AT),
    ]
    for item in items:
        client.put_item(TableName=table, Item=item)
    return client, table


def _items(client: Any, table: str, wa_id: str) -> dict[str, dict[str, Any]]:
    answer = client.query(
        TableName=table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": f"LEAD#{wa_id}"}},
        ConsistentRead=True,
    )
    return {item["SK"]["S"]: item for item in answer["Items"]}


def _thread_key(client: Any, table: str, wamid: str) -> str:
    item = client.get_item(TableName=table, Key={"PK": {"S": f"MSG#{wamid}"}, "SK": {"S": "MSG"}})["Item"]
    return str(item["GSI1PK"]["S"])


def test_a_dry_run_counts_and_changes_nothing(legacy: tuple[Any, str]) -> None:
    client, table = legacy
    tallies = migrate(client, table, dry_run=True)
    assert (tallies["conversations"].moved, tallies["conversations"].unnumbered) == (1, 1)
    assert (tallies["threads"].moved, tallies["threads"].unnumbered) == (2, 1)
    assert set(_items(client, table, LEAD)) == {"LEAD"}
    assert _thread_key(client, table, "wamid.OLD1") == f"THREAD#{LEAD}"


def test_each_lead_s_conversation_moves_to_its_number_and_its_messages_to_that_thread(
    legacy: tuple[Any, str],
    function_env: Callable[..., dict[str, str]],
    graph_fake: GraphSimulator,
) -> None:
    client, table = legacy
    # When the migration runs
    tallies = migrate(client, table)
    # Then the lead's conversation is an item of its number, and the lead keeps only the business's fields
    items = _items(client, table, LEAD)
    assert set(items) == {"LEAD", f"CONV#{NUMBER}"}
    conversation, lead = items[f"CONV#{NUMBER}"], items["LEAD"]
    assert conversation["last_inbound_at"]["S"] == AT
    assert set(conversation["unread_tags"]["SS"]) == {"0000aaaa", "0000bbbb"}
    assert conversation["last_auto_reply_at_greeting"]["S"] == AT
    assert conversation["GSI1SK"]["S"] == keys.leads_sk(AT, LEAD, NUMBER)
    assert lead["opted_out"] == {"BOOL": False}
    assert not {"last_inbound_at", "unread_tags", "GSI1PK", "GSI1SK", "profile_name"} & set(lead)
    # And its messages are in that conversation's thread; the unnumbered lead's are left and counted
    assert _thread_key(client, table, "wamid.OLD1") == f"THREAD#{NUMBER}#{LEAD}"
    assert _thread_key(client, table, "wamid.OLD2") == f"THREAD#{UNNUMBERED}"
    assert (tallies["conversations"].moved, tallies["conversations"].unnumbered) == (1, 1)
    assert (tallies["threads"].moved, tallies["threads"].unnumbered) == (2, 1)
    # And the CRM reads the conversation and its thread as before, listed once
    api = ApiClient(function_env, graph_fake, WHATSAPP_PHONE_NUMBER_IDS=f"{NUMBER},{OTHER}")
    listed = [entry for entry in api.conversations().json()["conversations"] if entry["wa_id"] == LEAD]
    assert [(entry["phone_number_id"], entry["unread_count"], entry["name"]) for entry in listed] == [
        (NUMBER, 2, "דנה")
    ]
    thread = api.messages(LEAD).json()
    assert (thread["phone_number_id"], [m["id"] for m in thread["messages"]]) == (NUMBER, ["wamid.OLD1", "wamid.OLD0"])
    # And a second run finds nothing left to move but the unnumbered lead
    again = migrate(client, table)
    assert (again["conversations"].moved, again["threads"].moved) == (0, 0)
    assert _items(client, table, LEAD) == items


def test_a_conversation_written_since_the_deploy_keeps_its_newer_fields_and_gains_the_old_unread(
    legacy: tuple[Any, str],
) -> None:
    client, table = legacy
    # Given the lead wrote again after the deploy: the new version wrote its conversation item
    newer = "2026-12-07T08:00:00Z"
    client.put_item(
        TableName=table,
        Item={
            "PK": {"S": f"LEAD#{LEAD}"},
            "SK": {"S": f"CONV#{NUMBER}"},
            "wa_id": {"S": LEAD},
            "last_inbound_at": {"S": newer},
            "last_message_at": {"S": newer},
            "unread_tags": {"SS": ["0000cccc"]},
        },
    )
    # When the migration runs
    migrate(client, table)
    # Then the newer timeline stands and every unread message counts
    conversation = _items(client, table, LEAD)[f"CONV#{NUMBER}"]
    assert conversation["last_inbound_at"]["S"] == newer
    assert set(conversation["unread_tags"]["SS"]) == {"0000aaaa", "0000bbbb", "0000cccc"}
    assert conversation["profile_name"]["S"] == "דנה"


def test_a_default_number_takes_the_leads_and_messages_stored_before_numbers_were_recorded(
    legacy: tuple[Any, str],
) -> None:
    client, table = legacy
    tallies = migrate(client, table, default_number=OTHER)
    assert (tallies["conversations"].unnumbered, tallies["threads"].unnumbered) == (0, 0)
    assert set(_items(client, table, UNNUMBERED)) == {"LEAD", f"CONV#{OTHER}"}
    assert _thread_key(client, table, "wamid.OLD2") == f"THREAD#{OTHER}#{UNNUMBERED}"
