"""The DynamoDB toolkit every store is built from: one table, its client, and what each write needs.

- serialisation: `to_attribute` (a Python value -> an attribute value), `from_item` (an item -> a plain dict)
- `Update`: an UpdateExpression built clause by clause, placeholders generated so callers never collide
- error translation: `store_errors()` turns what DynamoDB did not confirm into StoreUnavailableError, and a
  refusal no retry can change into UnstorableError; `error_code`, `unstorable`, `cancelled_items` read errors
- `Table`: the table name and its one lazily built client (thread-safe), with the calls stores make:
  `get`, `query`, `conditional` (False-or-response when a condition fails), `transact` (the failed items' indexes)

Stores (store/dynamodb.py, responder.py, read_api.py, ...) hold a `Table` and expose only their own methods.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.aws_clients import LazyClient
from whatsapp_crm.errors import StoreUnavailableError, UnstorableError

CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)
# An ADD is not idempotent: botocore retrying one whose answer was lost (the write applied, the connection
# dropped) counts twice. Such writes go through a client that never retries by itself; `Table.add_once`
# tries again only when DynamoDB said the write was not applied.
ADD_ONCE_CLIENT_CONFIG = CLIENT_CONFIG.merge(Config(retries={"mode": "standard", "total_max_attempts": 1}))
# Refusals that mean "not applied, try later": safe to send again.
NOT_APPLIED_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
NOT_APPLIED_RETRY_PAUSES = (0.05, 0.1, 0.2)
CONDITION_FAILED = "ConditionalCheckFailedException"

AttributeValue = dict[str, Any]

_deserializer = TypeDeserializer()


# --- serialisation ---------------------------------------------------------------------------------


def to_attribute(value: Any) -> AttributeValue:
    """Python value -> DynamoDB attribute value (the subset this table uses)."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is bool:
        return {"BOOL": value}
    if kind is int:
        return {"N": str(value)}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, Mapping):
        return {"M": {key: to_attribute(item) for key, item in value.items() if item is not None}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(item) for item in value]}
    if value is None:
        return {"NULL": True}
    raise TypeError(f"unsupported attribute type: {type(value).__name__}")


def from_item(item: Mapping[str, AttributeValue]) -> dict[str, Any]:
    """DynamoDB item -> plain dict; numbers come back as int where they are integral."""
    plain = {key: _deserializer.deserialize(value) for key, value in item.items()}
    return {key: _plain_number(value) for key, value in plain.items()}


def _plain_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain_number(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_number(item) for item in value]
    return value


def key_attributes(key: Mapping[str, str]) -> dict[str, AttributeValue]:
    """A key of string attributes ({"PK": ..., "SK": ...}) as DynamoDB wants it."""
    return {name: {"S": value} for name, value in key.items()}


# --- error translation ----------------------------------------------------------------------------


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def unstorable(error: ClientError) -> UnstorableError | None:
    """A refusal no retry can change: ValidationException (item over 400 KB, a key over 2048/1024 bytes,
    an empty or invalid attribute), also inside a cancelled transaction (reason code ValidationError)."""
    code = error_code(error)
    if code == "ValidationException":
        return UnstorableError(code)
    if code == "TransactionCanceledException":
        reasons = {str(reason.get("Code")) for reason in error.response.get("CancellationReasons") or []}
        if "ValidationError" in reasons:
            return UnstorableError("ValidationError")
    return None


def cancelled_items(error: ClientError) -> set[int] | None:
    """Indexes of the transaction items whose condition failed, or None if it was not a cancellation by
    conditions alone (a conflict, throttling or validation reason on any item is a real failure)."""
    if error_code(error) != "TransactionCanceledException":
        return None
    reasons = error.response.get("CancellationReasons") or []
    failed = {index for index, reason in enumerate(reasons) if reason.get("Code") == "ConditionalCheckFailed"}
    others = {
        reason.get("Code") for reason in reasons if reason.get("Code") not in (None, "None", "ConditionalCheckFailed")
    }
    if others:
        return None
    return failed


def conflicted(error: ClientError) -> bool:
    """DynamoDB refused the write because another transaction held one of its items at that moment: a
    cancelled transaction with a TransactionConflict reason, or a single write's TransactionConflictException."""
    code = error_code(error)
    if code == "TransactionConflictException":
        return True
    if code != "TransactionCanceledException":
        return False
    return any(
        reason.get("Code") == "TransactionConflict" for reason in error.response.get("CancellationReasons") or []
    )


# Pauses (seconds, jittered by +-50%) before trying a conflicted write again. botocore retries neither kind of
# conflict; they come from concurrent writers (the webhook writes a POST's parts side by side, Lambda runs
# invocations side by side) that meet on one item: a lead, an hourly counter shard. A conflicted write
# changed nothing and every write here is conditional, so trying again is safe.
CONFLICT_RETRY_PAUSES = (0.02, 0.05, 0.1)


def _retrying_conflicts[T](call: Callable[[], T]) -> T:
    for pause in CONFLICT_RETRY_PAUSES:
        try:
            return call()
        except ClientError as error:
            if not conflicted(error):
                raise
        time.sleep(pause * (0.5 + random.random()))
    return call()


def translated(error: ClientError, subject: str = "the request") -> UnstorableError | StoreUnavailableError:
    """What a ClientError means to the caller: a refusal for good, or a store that did not confirm."""
    if (permanent := unstorable(error)) is not None:
        return permanent
    return StoreUnavailableError(f"DynamoDB refused {subject}: {error_code(error)}")


def unreachable(error: BotoCoreError) -> StoreUnavailableError:
    return StoreUnavailableError(f"DynamoDB unreachable: {type(error).__name__}")


@contextmanager
def store_errors(subject: str = "the request") -> Iterator[None]:
    """Anything DynamoDB did not confirm becomes StoreUnavailableError (the webhook answers 500), except a
    refusal for good, which is UnstorableError."""
    try:
        yield
    except ClientError as error:
        raise translated(error, subject) from error
    except BotoCoreError as error:
        raise unreachable(error) from error


# --- the update builder ---------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _compile(operations: tuple[tuple[str, str], ...]) -> tuple[str, dict[str, str]]:
    """UpdateExpression and names for a sequence of (operation, attribute); the same shapes recur for
    every event, so this is computed once per shape and the hot path only fills in values."""
    names: dict[str, str] = {}
    placeholders: dict[str, str] = {}
    sets: list[str] = []
    adds: list[str] = []
    for index, (operation, attribute) in enumerate(operations):
        name = placeholders.get(attribute)
        if name is None:
            name = placeholders[attribute] = f"#a{len(placeholders)}"
            names[name] = attribute
        value = f":v{index}"
        if operation == "set":
            sets.append(f"{name} = {value}")
        elif operation == "set_if_absent":
            sets.append(f"{name} = if_not_exists({name}, {value})")
        else:
            adds.append(f"{name} {value}")
    parts = []
    if sets:
        parts.append("SET " + ", ".join(sets))
    if adds:
        parts.append("ADD " + ", ".join(adds))
    return " ".join(parts), names


class Update:
    """Builds an UpdateExpression with generated placeholders, so callers never collide. A None value is
    skipped (the attribute is left as it is).

    `names` and `values` hold extra placeholders for conditions (`#x...`, `:x...`, or hand-picked ones).
    """

    __slots__ = ("_operands", "_operations", "names", "values")

    def __init__(self) -> None:
        self._operations: list[tuple[str, str]] = []
        self._operands: list[Any] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, AttributeValue] = {}

    @classmethod
    def setting(cls, fields: Mapping[str, Any]) -> Update:
        """SET each of these attributes."""
        update = cls()
        for name, value in fields.items():
            update.set(name, value)
        return update

    def name(self, attribute: str) -> str:
        """A placeholder for `attribute` to use in a condition."""
        placeholder = f"#x{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        """A placeholder for `value` to use in a condition."""
        placeholder = f":x{len(self.values)}"
        self.values[placeholder] = to_attribute(value)
        return placeholder

    def _push(self, operation: str, attribute: str, value: Any) -> Update:
        if value is not None:
            self._operations.append((operation, attribute))
            self._operands.append(value)
        return self

    def set(self, attribute: str, value: Any) -> Update:
        return self._push("set", attribute, value)

    def set_if_absent(self, attribute: str, value: Any) -> Update:
        return self._push("set_if_absent", attribute, value)

    def add(self, attribute: str, amount: int) -> Update:
        return self._push("add", attribute, amount)

    @property
    def expression(self) -> str:
        return _compile(tuple(self._operations))[0]

    def request(self, table: str, key: Mapping[str, str], condition: str | None = None) -> dict[str, Any]:
        """The UpdateItem request (also a transaction's `Update` entry)."""
        expression, names = _compile(tuple(self._operations))
        values = {f":v{index}": to_attribute(operand) for index, operand in enumerate(self._operands)}
        values.update(self.values)
        request: dict[str, Any] = {
            "TableName": table,
            "Key": key_attributes(key),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {**names, **self.names},
        }
        if values:
            request["ExpressionAttributeValues"] = values
        if condition:
            request["ConditionExpression"] = condition
        return request


# --- the table ------------------------------------------------------------------------------------


class Table:
    """One DynamoDB table and its client, built on first use. Pass a client to share connections or in tests."""

    __slots__ = ("_add_once_client", "_lazy_client", "name")

    def __init__(self, name: str, client: Any | None = None) -> None:
        self.name = name
        self._lazy_client = LazyClient("dynamodb", CLIENT_CONFIG, client)
        # A handed-in client serves both (tests and benchmarks choose its retries themselves).
        self._add_once_client = LazyClient("dynamodb", ADD_ONCE_CLIENT_CONFIG, client)

    @property
    def client(self) -> Any:
        return self._lazy_client.get()

    def get(self, key: Mapping[str, str], *, consistent: bool = True) -> dict[str, Any] | None:
        """The item as a plain dict, or None."""
        with store_errors():
            response = self.client.get_item(TableName=self.name, Key=key_attributes(key), ConsistentRead=consistent)
        item = response.get("Item")
        return from_item(item) if item else None

    def query(self, request: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The items of a Query as plain dicts, page after page, asking for a next page only when needed."""
        page_request = dict(request)
        while True:
            with store_errors():
                response = self.client.query(**page_request)
            for item in response.get("Items", []):
                yield from_item(item)
            if not response.get("LastEvaluatedKey"):
                return
            page_request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def conditional(self, operation: str, request: Mapping[str, Any], subject: str = "the request") -> Any:
        """A conditional write (`update_item`, `put_item`, `delete_item`): its response, or None when the
        condition failed."""
        with store_errors(subject):
            try:
                return _retrying_conflicts(lambda: getattr(self.client, operation)(**request))
            except ClientError as error:
                if error_code(error) == CONDITION_FAILED:
                    return None
                raise

    def add_once(self, request: Mapping[str, Any], subject: str = "the request") -> None:
        """An UpdateItem that is not idempotent (a counter's ADD), applied at most once: sent again only after
        DynamoDB said it was not applied (throttling). A lost answer, a dropped connection or a server error
        raises StoreUnavailableError without a retry, so a count can fall short after faults but never doubles."""
        client = self._add_once_client.get()
        with store_errors(subject):
            for pause in NOT_APPLIED_RETRY_PAUSES:
                try:
                    client.update_item(**request)
                    return
                except ClientError as error:
                    if error_code(error) not in NOT_APPLIED_CODES:
                        raise
                time.sleep(pause * (0.5 + random.random()))
            client.update_item(**request)

    def update(self, request: Mapping[str, Any], subject: str = "the request") -> bool:
        """A conditional UpdateItem; False when its condition failed."""
        return self.conditional("update_item", request, subject) is not None

    def transact(
        self, items: list[dict[str, Any]], subject: str = "the transaction", *, unstorable_is_unavailable: bool = False
    ) -> set[int] | None:
        """TransactWriteItems: None when committed, else the indexes of the items whose condition failed.

        Any other refusal raises, as store_errors() says; with `unstorable_is_unavailable`, a refusal for
        good is StoreUnavailableError too (for callers whose only failure path is "not recorded").
        """
        try:
            _retrying_conflicts(lambda: self.client.transact_write_items(TransactItems=items))
            return None
        except ClientError as error:
            failed = cancelled_items(error)
            if failed is not None:
                return failed
            if unstorable_is_unavailable:
                raise StoreUnavailableError(f"DynamoDB refused {subject}: {error_code(error)}") from error
            raise translated(error, subject) from error
        except BotoCoreError as error:
            raise unreachable(error) from error
