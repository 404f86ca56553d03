"""local/capacity.py: the write units bench/cost_profile.py reports, from DynamoDB's published rules."""

from __future__ import annotations

from typing import Any

from local.capacity import _Index, item_size

TABLE_KEYS = ["PK", "SK"]


def _index(projection: dict[str, Any]) -> _Index:
    description = {
        "IndexName": "GSI2",
        "KeySchema": [{"AttributeName": "GSI1PK"}, {"AttributeName": "GSI1SK"}],
        "Projection": projection,
    }
    return _Index(description, TABLE_KEYS)


def _message(status: str, sort_key: str = "2026-12-07T10:00:00Z#w1") -> dict[str, Any]:
    return {
        "PK": {"S": "MSG#w1"},
        "SK": {"S": "MSG"},
        "GSI1PK": {"S": "THREAD#972525551234"},
        "GSI1SK": {"S": sort_key},
        "direction": {"S": "outbound"},
        "status": {"S": status},
    }


def test_a_status_rewrites_an_all_projection_entry_but_not_an_include_one() -> None:
    before, after = _message("sent"), _message("delivered")
    assert _index({"ProjectionType": "ALL"}).write_units(before, after) == 1
    include = {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["direction"]}
    assert _index(include).write_units(before, after) == 0


def test_a_moved_index_key_is_a_delete_and_a_put_and_a_new_entry_one_put() -> None:
    keys_only = _index({"ProjectionType": "KEYS_ONLY"})
    assert keys_only.write_units(_message("sent"), _message("sent", "2026-12-07T10:05:00Z#w1")) == 2
    assert keys_only.write_units(None, _message("sent")) == 1
    assert keys_only.write_units({"PK": {"S": "MSG#w1"}, "SK": {"S": "REPLY"}}, None) == 0


def test_item_size_counts_names_and_values_as_dynamodb_does() -> None:
    # 2 + 5 ("PK", "MSG#1") + 4 + 2 ("text", "שלום" is 8 bytes in UTF-8) + numbers: 1 byte per 2 digits + 1
    assert item_size({"PK": {"S": "MSG#1"}}) == 7
    assert item_size({"text": {"S": "שלום"}}) == 12
    assert item_size({"n": {"N": "12345"}}) == 1 + 4
