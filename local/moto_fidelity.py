"""moto's server with DynamoDB made faithful enough for concurrent writers (the local stack's embedded AWS).

Also: a DISABLED EventBridge rule delivers nothing, as in AWS (moto 5.2 ignores State).

Run as `python -m local.moto_fidelity -H 127.0.0.1 -p 0` (same arguments as `moto_server`).

Two gaps of moto 5.2's DynamoDB show up as soon as several functions write at once (bench/replay.py
found them; docs/reliability.md):

1. No isolation. Requests run on werkzeug threads without a lock, and TransactWriteItems snapshots every
   table it touches with copy.deepcopy and, when any condition fails, puts the snapshot back: every write
   that other threads made in between is silently undone. A redelivered webhook cancels its transaction
   by design (the message already exists), so under load moto lost other leads' messages, counters and
   reply claims. DynamoDB never does this: a cancelled transaction changes nothing, and other writes stand.
2. Cost. The snapshot copies the whole table on every transaction: with 20,000 items each transaction
   took seconds, so a replay of a day slowed down quadratically.
3. No idempotency token. botocore fills TransactWriteItems' ClientRequestToken and reuses it when it
   retries; DynamoDB answers a repeat of a committed transaction (same token, within 10 minutes) with
   success and does nothing. moto runs it again, its conditions now fail, and the caller is told that a
   transaction it committed was cancelled.

The fix, applied inside the moto server process only: one lock around each DynamoDB request (requests
are then serializable, which is stronger than DynamoDB's per-item atomicity and transaction isolation
and never weaker), a cancelled transaction restores only the items it touched, and a committed
transaction's token answers its repeats for 10 minutes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_installed = False
TOKEN_LIFETIME_SECONDS = 600


class _NoTableCopy:
    """moto.dynamodb.models' `copy`, except that deep-copying a whole Table returns the table itself."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if isinstance(value, self._table_type):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _touched_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    """(table, hash key, range key, deep copy of the item or None) for every item a transaction names."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    touched = []
    for entry in transact_items:
        try:
            operation = next(iter(entry.values()))
            table = backend.tables.get(operation.get("TableName"))
            if table is None:
                continue
            key = operation.get("Item") or operation.get("Key") or {}
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        except (KeyError, TypeError, AttributeError, StopIteration):
            continue  # moto itself refuses the malformed request
        touched.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
    return touched


def _restore(touched: list[tuple[Any, Any, Any, Any]]) -> None:
    for table, hash_key, range_key, before in reversed(touched):
        if before is None:
            table.delete_item(hash_key, range_key)
        elif range_key is not None:
            table.items[hash_key][range_key] = before
        else:
            table.items[hash_key] = before


def _honour_disabled_rules() -> None:
    """moto 5.2 delivers events to a rule's targets whatever its State; EventBridge skips DISABLED rules
    (template.yaml's example OptedOutLeadsRule is one)."""
    from moto.events.models import Rule

    original: Callable[..., Any] = Rule.send_to_targets

    def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
        if rule.state == "DISABLED":
            return
        original(rule, event, transform_input)

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]


def install() -> None:
    """Patch moto's DynamoDB in this process (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    original_call: Callable[..., Any] = DynamoHandler.call_action
    original_transact: Callable[..., Any] = models.DynamoDBBackend.transact_write_items
    original_handler_transact: Callable[..., Any] = DynamoHandler.transact_write_items
    committed: dict[str, tuple[str, float, Any]] = {}

    def call_action(handler: Any) -> Any:
        with lock:
            return original_call(handler)

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        with lock:
            touched = _touched_items(backend, transact_items)
            try:
                original_transact(backend, transact_items)
            except BaseException:
                _restore(touched)
                raise

    def handler_transact(handler: Any) -> Any:
        token = handler.body.get("ClientRequestToken")
        if not token:
            return original_handler_transact(handler)
        digest = hashlib.sha256(json.dumps(handler.body.get("TransactItems"), sort_keys=True).encode()).hexdigest()
        now = time.monotonic()
        for expired in [key for key, (_, at, _) in committed.items() if now - at > TOKEN_LIFETIME_SECONDS]:
            del committed[expired]
        if token in committed and committed[token][0] == digest:
            return committed[token][2]
        result = original_handler_transact(handler)
        committed[token] = (digest, now, result)
        return result

    _honour_disabled_rules()
    models.copy = _NoTableCopy(Table)  # type: ignore[attr-defined,assignment]
    DynamoHandler.transact_write_items = handler_transact  # type: ignore[assignment]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[assignment]
    _installed = True


def main(argv: list[str] | None = None) -> None:
    install()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
