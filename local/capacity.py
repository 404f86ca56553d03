"""DynamoDB capacity units of every call a worker makes, computed from the items themselves (local only).

moto does not charge capacity, so with LOCAL_METER_CAPACITY=1 (bench/cost_profile.py sets it) each worker
reads every item a write touches just before and just after the write, through a client of its own that
no hook sees, and applies DynamoDB's published rules:

- a write costs 1 WRU per started KB of the larger of the item before and after (at least 1, also when its
  condition fails); inside TransactWriteItems twice that;
- every global secondary index whose entry the write creates, deletes or changes costs the entry's own
  units: a new or removed entry 1 write, a changed index key 2 (delete + put), a changed projected
  attribute 1; an index entry holds the table and index keys plus the projected attributes (projection
  ALL, KEYS_ONLY or INCLUDE, read from DescribeTable);
- a read costs 1 RRU per started 4 KB of what it returned, half of that when eventually consistent
  (BatchGetItem and Query results are summed per call, as DynamoDB does).

Item sizes follow DynamoDB's rules: attribute names plus values, numbers about 1 byte per 2 digits + 1.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from typing import Any

ENABLE_ENV = "LOCAL_METER_CAPACITY"

_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
_READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
_local = threading.local()

Item = dict[str, dict[str, Any]]


def is_meter_call() -> bool:
    """True while the meter's own client is calling (other hooks leave those calls alone)."""
    return bool(getattr(_local, "inside", False))


def attribute_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value (bytes)."""
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "B":
        return len(inner)
    if kind == "N":
        return len(str(inner).lstrip("-").replace(".", "")) // 2 + 2
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + attribute_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in inner)
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: member}) for member in inner)
    return len(json.dumps(inner))


def item_size(item: Item | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def _units(size: int, unit: int = 1024) -> int:
    return max(1, math.ceil(size / unit))


class _Index:
    def __init__(self, description: dict[str, Any], table_keys: list[str]) -> None:
        self.name = str(description["IndexName"])
        self.keys = [str(key["AttributeName"]) for key in description["KeySchema"]]
        projection = description.get("Projection", {})
        self.kind = str(projection.get("ProjectionType", "ALL"))
        self.projected = set(table_keys) | set(self.keys) | set(projection.get("NonKeyAttributes", []))

    def entry(self, item: Item | None) -> Item | None:
        if not item or any(key not in item for key in self.keys):
            return None
        if self.kind == "ALL":
            return item
        return {name: value for name, value in item.items() if name in self.projected}

    def write_units(self, before: Item | None, after: Item | None) -> int:
        old, new = self.entry(before), self.entry(after)
        if old is None and new is None:
            return 0
        if old is None or new is None:
            return _units(item_size(old or new))
        if any(old[key] != new[key] for key in self.keys):
            return _units(item_size(old)) + _units(item_size(new))
        if old != new:
            return _units(max(item_size(old), item_size(new)))
        return 0


class CapacityMeter:
    """botocore handlers that add each DynamoDB call's capacity units to a worker's meter."""

    def __init__(self, units: Counter[str]) -> None:
        self.units = units
        self._client: Any = None
        self._tables: dict[str, tuple[list[str], list[_Index]]] = {}
        self._lock = threading.Lock()

    def register(self, session: Any) -> None:
        session.register("before-parameter-build.dynamodb", self.before)
        session.register("after-call.dynamodb", self.after)

    def _side_client(self) -> Any:
        """A client whose calls no hook meters (they are the meter's own reads)."""
        with self._lock:
            if self._client is None:
                import boto3

                _local.inside = True
                try:
                    self._client = boto3.session.Session().client("dynamodb")
                finally:
                    _local.inside = False
            return self._client

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        _local.inside = True
        try:
            result: dict[str, Any] = getattr(self._side_client(), operation)(**params)
            return result
        finally:
            _local.inside = False

    def _table(self, name: str) -> tuple[list[str], list[_Index]]:
        if name not in self._tables:
            table = self._call("describe_table", TableName=name)["Table"]
            keys = [str(key["AttributeName"]) for key in table["KeySchema"]]
            indexes = [_Index(index, keys) for index in table.get("GlobalSecondaryIndexes", [])]
            self._tables[name] = (keys, indexes)
        return self._tables[name]

    def _get(self, table: str, key: Item) -> Item | None:
        item = self._call("get_item", TableName=table, Key=key, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    @staticmethod
    def _writes(operation: str, params: dict[str, Any]) -> list[tuple[str, Item, bool]]:
        """(table, item key, transactional) of every item this write request touches."""
        found: list[tuple[str, Item, bool]] = []

        def key_of(table: str, request: dict[str, Any]) -> Item:
            return (
                dict(request["Key"])
                if "Key" in request
                else {"__item__": {"M": request["Item"]}, "__t__": {"S": table}}
            )

        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            found.append((params["TableName"], key_of(params["TableName"], params), False))
        elif operation == "TransactWriteItems":
            for entry in params.get("TransactItems", []):
                for kind in ("Put", "Update", "Delete", "ConditionCheck"):
                    if kind in entry:
                        request = entry[kind]
                        found.append((request["TableName"], key_of(request["TableName"], request), True))
        elif operation == "BatchWriteItem":
            for table, requests in params.get("RequestItems", {}).items():
                for request in requests:
                    inner = request.get("PutRequest") or request.get("DeleteRequest") or {}
                    found.append((table, key_of(table, inner), False))
        return found

    def before(self, params: dict[str, Any], model: Any, context: Any = None, **_: Any) -> None:
        if getattr(_local, "inside", False) or not isinstance(context, dict):
            return
        operation = model.name
        try:
            if operation in _WRITES:
                touched = []
                for table, key, transactional in self._writes(operation, params):
                    keys, _indexes = self._table(table)
                    if "__item__" in key:
                        key = {name: key["__item__"]["M"][name] for name in keys}
                    touched.append((table, key, transactional, self._get(table, key)))
                context["capacity_writes"] = touched
            elif operation in _READS:
                context["capacity_read"] = (operation, bool(params.get("ConsistentRead")))
        except Exception:  # a meter must never change what the code under test sees
            context.pop("capacity_writes", None)

    def after(self, parsed: dict[str, Any], model: Any, context: Any = None, **_: Any) -> None:
        if getattr(_local, "inside", False) or not isinstance(context, dict):
            return
        try:
            if "capacity_writes" in context:
                self._count_writes(model.name, context.pop("capacity_writes"), parsed)
            elif "capacity_read" in context:
                operation, consistent = context.pop("capacity_read")
                self._count_read(operation, consistent, parsed)
        except Exception:  # see before()
            return

    def _count_writes(self, operation: str, touched: list[Any], parsed: dict[str, Any]) -> None:
        for table, key, transactional, before in touched:
            after = self._get(table, key)
            _keys, indexes = self._table(table)
            table_units = _units(max(item_size(before), item_size(after)))
            if transactional:
                self.units["wru_table"] += table_units
                self.units["wru_transaction_extra"] += table_units
            else:
                self.units["wru_table"] += table_units
            for index in indexes:
                self.units["wru_index"] += index.write_units(before, after)
            kind = (
                str(key.get("PK", {}).get("S", "?")).split("#")[0]
                + "/"
                + str(key.get("SK", {}).get("S", "?")).split("#")[0]
            )
            self.units[f"wru_item.{kind}"] += table_units * (2 if transactional else 1)
        self.units["wru"] = self.units["wru_table"] + self.units["wru_transaction_extra"] + self.units["wru_index"]

    def _count_read(self, operation: str, consistent: bool, parsed: dict[str, Any]) -> None:
        if operation == "GetItem":
            sizes = [item_size(parsed.get("Item"))]
        elif operation == "BatchGetItem":
            sizes = [item_size(item) for items in parsed.get("Responses", {}).values() for item in items]
        else:
            sizes = [sum(item_size(item) for item in parsed.get("Items", []))]
        units = sum(_units(size, 4096) for size in sizes) * (1.0 if consistent else 0.5)
        self.units["rru_x2"] += int(units * 2)
