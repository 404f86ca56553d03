"""DynamoDB adapter of the conversation store. The only module that speaks to DynamoDB.

Every webhook event costs one write request: a transaction for a new inbound message (message + lead +
hourly counter), one conditional update for a status. Conditions make redelivery and reordering safe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.clock import FUTURE_SKEW_SECONDS, parse_iso, shifted_iso
from whatsapp_crm.errors import StoreUnavailableError, UnstorableError
from whatsapp_crm.records import (
    InboundRecord,
    OutboundRecord,
    PreferenceChange,
    SentBy,
    StatusOutcome,
    StatusRank,
    StatusUpdate,
)
from whatsapp_crm.store import keys

if TYPE_CHECKING:
    from whatsapp_crm.templates import TemplateStatusUpdate

# Counters outlive the 24-hour health window by a margin; DynamoDB's TTL sweeper deletes them later.
STATS_RETENTION = timedelta(days=3)

_CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)
_deserializer = TypeDeserializer()
_CLIENT_LOCK = threading.Lock()

AttributeValue = dict[str, Any]


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
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain_number(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_number(item) for item in value]
    return value


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _unstorable(error: ClientError) -> UnstorableError | None:
    """A refusal no retry can change: ValidationException (item over 400 KB, a key over 2048/1024 bytes,
    an empty or invalid attribute), also inside a cancelled transaction (reason code ValidationError)."""
    code = _error_code(error)
    if code == "ValidationException":
        return UnstorableError(code)
    if code == "TransactionCanceledException":
        reasons = {str(reason.get("Code")) for reason in error.response.get("CancellationReasons") or []}
        if "ValidationError" in reasons:
            return UnstorableError("ValidationError")
    return None


@contextmanager
def _store_errors() -> Iterator[None]:
    """Anything DynamoDB did not confirm becomes StoreUnavailableError (the webhook answers 500), except a
    refusal for good, which is UnstorableError."""
    try:
        yield
    except ClientError as error:
        if (permanent := _unstorable(error)) is not None:
            raise permanent from error
        raise StoreUnavailableError(f"DynamoDB refused the request: {_error_code(error)}") from error
    except BotoCoreError as error:
        raise StoreUnavailableError(f"DynamoDB unreachable: {type(error).__name__}") from error


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


class _Update:
    """Builds an UpdateExpression with generated placeholders, so callers never collide.

    `names` and `values` hold extra placeholders for conditions (`#x...`, `:x...`, or hand-picked ones).
    """

    __slots__ = ("_operations", "_operands", "names", "values")

    def __init__(self) -> None:
        self._operations: list[tuple[str, str]] = []
        self._operands: list[Any] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, AttributeValue] = {}

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

    def _push(self, operation: str, attribute: str, value: Any) -> _Update:
        if value is not None:
            self._operations.append((operation, attribute))
            self._operands.append(value)
        return self

    def set(self, attribute: str, value: Any) -> _Update:
        return self._push("set", attribute, value)

    def set_if_absent(self, attribute: str, value: Any) -> _Update:
        return self._push("set_if_absent", attribute, value)

    def add(self, attribute: str, amount: int) -> _Update:
        return self._push("add", attribute, amount)

    @property
    def expression(self) -> str:
        return _compile(tuple(self._operations))[0]

    def request(self, table: str, key: Mapping[str, str], condition: str | None = None) -> dict[str, Any]:
        expression, names = _compile(tuple(self._operations))
        values = {f":v{index}": to_attribute(operand) for index, operand in enumerate(self._operands)}
        values.update(self.values)
        request: dict[str, Any] = {
            "TableName": table,
            "Key": {name: {"S": value} for name, value in key.items()},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {**names, **self.names},
        }
        if values:
            request["ExpressionAttributeValues"] = values
        if condition:
            request["ConditionExpression"] = condition
        return request


def lead_key(wa_id: str) -> dict[str, str]:
    return {"PK": keys.lead_pk(wa_id), "SK": keys.LEAD_SK}


def message_key(wamid: str) -> dict[str, str]:
    return {"PK": keys.message_pk(wamid), "SK": keys.MESSAGE_SK}


@lru_cache(maxsize=64)
def _horizon(at: str) -> str:
    """The latest moment a stored timeline value may plausibly hold when an event arrives at `at`."""
    return shifted_iso(at, timedelta(seconds=FUTURE_SKEW_SECONDS)) or "9999-12-31T23:59:59Z"


@lru_cache(maxsize=64)
def _stats_expiry(hour: str) -> str:
    return str(int((parse_iso(f"{hour}:00:00Z") + STATS_RETENTION).timestamp()))


@lru_cache(maxsize=16)
def _stats_expression(
    increments: tuple[tuple[str, int], ...],
) -> tuple[str, dict[str, str], tuple[tuple[str, str], ...]]:
    """Expression, names and (placeholder, number) values of an ADD on these counters: the same few
    shapes recur for every event, so only the hour and the shard are left to the hot path."""
    names = {"#ttl": keys.TTL_ATTRIBUTE, "#hour": "hour"} | {f"#c{i}": name for i, (name, _) in enumerate(increments)}
    adds = ", ".join(f"#c{i} :c{i}" for i in range(len(increments)))
    numbers = tuple((f":c{i}", str(amount)) for i, (_, amount) in enumerate(increments))
    return f"SET #ttl = if_not_exists(#ttl, :ttl), #hour = if_not_exists(#hour, :hour) ADD {adds}", names, numbers


def stats_update(table: str, at: str, discriminator: str, **increments: int) -> dict[str, Any]:
    """An ADD on this hour's counter shard, for use inside the same transaction as the event."""
    hour = at[:13]
    expression, names, numbers = _stats_expression(tuple(increments.items()))
    values: dict[str, AttributeValue] = {":ttl": {"N": _stats_expiry(hour)}, ":hour": {"S": hour}}
    for placeholder, number in numbers:
        values[placeholder] = {"N": number}
    return {
        "TableName": table,
        "Key": {"PK": {"S": keys.stats_pk(at)}, "SK": {"S": keys.stats_shard(discriminator)}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


class _LeadTimeline:
    """How far an inbound message may move the lead's timeline, depending on what is already there.

    Messages can arrive out of order; a late, older message must never move `last_message_at` or
    `last_inbound_at` backwards. The transaction is tried with the widest variant first and narrowed
    only when DynamoDB says the lead already holds something newer.
    """

    FULL = "full"  # newest event of the thread: moves last_message_at, preview, last_inbound_at
    INBOUND_ONLY = "inbound_only"  # an outbound message is newer, but this is the newest inbound
    COUNT_ONLY = "count_only"  # an older inbound delivered late: only the unread count changes

    ORDER = (FULL, INBOUND_ONLY, COUNT_ONLY)


@lru_cache(maxsize=8)
def _lead_expression(timeline: str, with_name: bool) -> tuple[str, dict[str, str], str | None]:
    """The lead update of an inbound message, per timeline variant (see _LeadTimeline). Static text, so
    the per-event cost is only the values."""
    assignments = [
        "#wa_id = :wa",
        "#phone = :pn",
        "#awaits = :yes",
        "#updated = :now",
        "#first = if_not_exists(#first, :ts)",
    ]
    names = {
        "#wa_id": "wa_id",
        "#phone": "last_phone_number_id",
        "#awaits": "awaits_response",
        "#updated": "updated_at",
        "#first": "first_seen_at",
        "#unread": "unread_count",
    }
    condition = None
    if with_name:
        assignments.append("#name = :name")
        names["#name"] = "profile_name"
    if timeline in (_LeadTimeline.FULL, _LeadTimeline.INBOUND_ONLY):
        assignments += ["#last_in = :ts", "#last_in_id = :wamid"]
        names |= {"#last_in": "last_inbound_at", "#last_in_id": "last_inbound_wamid"}
        # `> :horizon`: a moment implausibly far ahead (stored before the webhook checked Meta's
        # timestamps) must not pin the lead's timeline for ever; the next real message replaces it.
        condition = "(attribute_not_exists(#last_in) OR #last_in < :ts OR #last_in > :horizon)"
    if timeline == _LeadTimeline.FULL:
        assignments += ["#last = :ts", "#preview = :preview", "#dir = :in", "#gpk = :leads", "#gsk = :gsk"]
        names |= {
            "#last": "last_message_at",
            "#preview": "last_message_preview",
            "#dir": "last_message_direction",
            "#gpk": "GSI1PK",
            "#gsk": "GSI1SK",
        }
        condition = f"{condition} AND (attribute_not_exists(#last) OR #last <= :ts OR #last > :horizon)"
    return "SET " + ", ".join(assignments) + " ADD #unread :one", names, condition


# DynamoDB numbers are strings; str(int(rank)) per status costs more than this lookup.
_RANK_NUMBERS = {rank: str(int(rank)) for rank in StatusRank}


@lru_cache(maxsize=128)
def _status_expression(
    status: str, has_recipient: bool, has_error: bool, has_pricing: bool, has_callback: bool
) -> tuple[str, dict[str, str]]:
    """Move a message's status forward; create an `unknown` outbound record when the status comes first.
    Fields a sender writes (type, text, timestamp) are only set if absent, so the later send record wins."""
    assignments = [
        "#status = :status",
        "#rank = :rank",
        "#status_at = :ts",
        "#history = :ts",
        "#wamid = if_not_exists(#wamid, :wamid)",
        "#direction = if_not_exists(#direction, :out)",
        "#type = if_not_exists(#type, :unknown)",
        "#timestamp = if_not_exists(#timestamp, :ts)",
        "#phone = if_not_exists(#phone, :pn)",
        "#created_by = if_not_exists(#created_by, :by)",
    ]
    names = {
        "#status": "status",
        "#rank": "status_rank",
        "#status_at": "status_at",
        "#history": f"status_ts_{status}",
        "#wamid": "wamid",
        "#direction": "direction",
        "#type": "message_type",
        "#timestamp": "timestamp",
        "#phone": "phone_number_id",
        "#created_by": "created_by",
    }
    if has_recipient:
        assignments += [
            "#wa_id = if_not_exists(#wa_id, :wa)",
            "#gpk = if_not_exists(#gpk, :gpk)",
            "#gsk = if_not_exists(#gsk, :gsk)",
        ]
        names |= {"#wa_id": "wa_id", "#gpk": "GSI1PK", "#gsk": "GSI1SK"}
    if has_error:
        assignments.append("#error = :error")
        names["#error"] = "error"
    if has_pricing:
        assignments.append("#pricing = :pricing")
        names["#pricing"] = "pricing_category"
    if has_callback:
        assignments.append("#callback = if_not_exists(#callback, :callback)")
        names["#callback"] = "biz_opaque_callback_data"
    return "SET " + ", ".join(assignments), names


class DynamoTable:
    """One DynamoDB table and a client made on first use. Pass a client to share connections or in tests."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            # The webhook writes from several threads (ingest.py); boto3's default session is not safe to
            # build clients from concurrently, the client itself is.
            with _CLIENT_LOCK:
                if self._client is None:
                    self._client = boto3.client("dynamodb", config=_CLIENT_CONFIG)
        return self._client


class DynamoConversationStore(DynamoTable):
    """Conversation store on one DynamoDB table."""

    # --- webhook: inbound messages -------------------------------------------------------------

    def _message_put(self, record: InboundRecord) -> dict[str, Any]:
        # Written out attribute by attribute: this runs for every inbound message (see bench_webhook.py).
        item: dict[str, AttributeValue] = {
            "PK": {"S": keys.message_pk(record.wamid)},
            "SK": {"S": keys.MESSAGE_SK},
            "GSI1PK": {"S": keys.thread_pk(record.wa_id)},
            "GSI1SK": {"S": keys.thread_sk(record.timestamp, record.wamid)},
            "wamid": {"S": record.wamid},
            "wa_id": {"S": record.wa_id},
            "direction": {"S": "inbound"},
            "message_type": {"S": record.message_type},
            "timestamp": {"S": record.timestamp},
            "received_at": {"S": record.received_at},
            "phone_number_id": {"S": record.phone_number_id},
            "raw": {"S": record.raw_json},
        }
        # Unrolled: a loop over (name, value) pairs builds a tuple of tuples per message.
        if record.text is not None:
            item["text"] = {"S": record.text}
        if record.media_id is not None:
            item["media_id"] = {"S": record.media_id}
        if record.mime_type is not None:
            item["mime_type"] = {"S": record.mime_type}
        if record.reply_to is not None:
            item["reply_to"] = {"S": record.reply_to}
        if record.meta_timestamp is not None:
            item["meta_timestamp"] = {"N": str(record.meta_timestamp)}
        if record.errors:
            item["error"] = to_attribute(record.errors[0].as_item())
        return {"TableName": self.table_name, "Item": item, "ConditionExpression": "attribute_not_exists(PK)"}

    def _lead_update(self, record: InboundRecord, timeline: str) -> dict[str, Any]:
        expression, names, condition = _lead_expression(timeline, record.profile_name is not None)
        values: dict[str, AttributeValue] = {
            ":wa": {"S": record.wa_id},
            ":pn": {"S": record.phone_number_id},
            ":yes": {"BOOL": True},
            ":now": {"S": record.received_at},
            ":one": {"N": "1"},
            ":ts": {"S": record.timestamp},
        }
        if record.profile_name is not None:
            values[":name"] = {"S": record.profile_name}
        if timeline != _LeadTimeline.COUNT_ONLY:
            values[":wamid"] = {"S": record.wamid}
            values[":horizon"] = {"S": _horizon(record.received_at)}
        if timeline == _LeadTimeline.FULL:
            values[":preview"] = {"S": record.preview}
            values[":in"] = {"S": "inbound"}
            values[":leads"] = {"S": keys.LEADS_BY_ACTIVITY}
            values[":gsk"] = {"S": keys.leads_sk(record.timestamp, record.wa_id)}
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"PK": {"S": keys.lead_pk(record.wa_id)}, "SK": {"S": keys.LEAD_SK}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if condition:
            request["ConditionExpression"] = condition
        return request

    def record_inbound(self, record: InboundRecord) -> bool:
        """Store a new inbound message and update its lead, once. False when the wamid is already stored."""
        for timeline in _LeadTimeline.ORDER:
            transaction = [
                {"Put": self._message_put(record)},
                {"Update": self._lead_update(record, timeline)},
                {"Update": stats_update(self.table_name, record.received_at, record.wamid, received=1)},
            ]
            try:
                self.client.transact_write_items(TransactItems=transaction)
                return True
            except ClientError as error:
                failed = _cancelled_items(error)
                if failed is None:
                    if (permanent := _unstorable(error)) is not None:
                        raise permanent from error
                    raise StoreUnavailableError(f"DynamoDB refused the message: {_error_code(error)}") from error
            except BotoCoreError as error:
                raise StoreUnavailableError(f"DynamoDB unreachable: {type(error).__name__}") from error
            if 0 in failed:
                return False  # the message is already stored: a redelivery
            if failed != {1}:
                raise StoreUnavailableError(f"transaction cancelled on items {sorted(failed)}")
        raise StoreUnavailableError("lead update kept failing its condition")

    # --- webhook: statuses ---------------------------------------------------------------------

    def _status_update(self, update: StatusUpdate) -> dict[str, Any]:
        has_recipient = bool(update.recipient_wa_id)
        expression, names = _status_expression(
            update.status,
            has_recipient,
            update.error is not None,
            update.pricing_category is not None,
            update.biz_opaque_callback_data is not None,
        )
        values: dict[str, AttributeValue] = {
            ":status": {"S": update.status},
            ":rank": {"N": _RANK_NUMBERS[update.rank]},
            ":ts": {"S": update.timestamp},
            ":wamid": {"S": update.wamid},
            ":out": {"S": "outbound"},
            ":unknown": {"S": "unknown"},
            ":pn": {"S": update.phone_number_id},
            ":by": {"S": "status"},
        }
        if update.recipient_wa_id:
            values[":wa"] = {"S": update.recipient_wa_id}
            values[":gpk"] = {"S": keys.thread_pk(update.recipient_wa_id)}
            values[":gsk"] = {"S": keys.thread_sk(update.timestamp, update.wamid)}
        if update.error is not None:
            values[":error"] = to_attribute(update.error.as_item())
        if update.pricing_category is not None:
            values[":pricing"] = {"S": update.pricing_category}
        if update.biz_opaque_callback_data is not None:
            values[":callback"] = {"S": update.biz_opaque_callback_data}
        return {
            "TableName": self.table_name,
            "Key": {"PK": {"S": keys.message_pk(update.wamid)}, "SK": {"S": keys.MESSAGE_SK}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ConditionExpression": "attribute_not_exists(#rank) OR #rank < :rank",
        }

    def record_status(self, update: StatusUpdate) -> StatusOutcome:
        """Move the message's status forward (creating an `unknown` outbound record if it is new)."""
        request = self._status_update(update)
        try:
            if update.error is not None:
                # A failure is counted for /health in the same write, and only the first time.
                failed_counter = stats_update(self.table_name, update.received_at, update.wamid, failed=1)
                self.client.transact_write_items(TransactItems=[{"Update": request}, {"Update": failed_counter}])
            else:
                self.client.update_item(**request)
            return StatusOutcome.APPLIED
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException" and _cancelled_items(error) != {0}:
                if (permanent := _unstorable(error)) is not None:
                    raise permanent from error
                raise StoreUnavailableError(f"DynamoDB refused the status: {_error_code(error)}") from error
        except BotoCoreError as error:
            raise StoreUnavailableError(f"DynamoDB unreachable: {type(error).__name__}") from error
        return self._record_late_status(update)

    def _record_late_status(self, update: StatusUpdate) -> StatusOutcome:
        """The message already holds this status or a later one: keep the history, not the status."""
        attribute = f"status_ts_{update.status}"
        history = _Update().set(attribute, update.timestamp)
        condition = "attribute_exists(PK) AND attribute_not_exists(#late)"
        history.names["#late"] = attribute
        with _store_errors():
            try:
                self.client.update_item(**history.request(self.table_name, message_key(update.wamid), condition))
            except ClientError as error:
                if _error_code(error) == "ConditionalCheckFailedException":
                    return StatusOutcome.DUPLICATE
                raise
        return StatusOutcome.STALE

    # --- send path and responder: outbound messages ------------------------------------------

    def _outbound_update(self, record: OutboundRecord) -> dict[str, Any]:
        update = (
            _Update()
            .set("wamid", record.wamid)
            .set("wa_id", record.wa_id)
            .set("direction", "outbound")
            .set("message_type", record.message_type)
            .set("timestamp", record.timestamp)
            .set("sent_at", record.timestamp)
            .set("GSI1PK", keys.thread_pk(record.wa_id))
            .set("GSI1SK", keys.thread_sk(record.timestamp, record.wamid))
            .set("phone_number_id", record.phone_number_id)
            .set("sent_by", record.sent_by.value)
            .set("auto_reply", record.sent_by is SentBy.AUTO_REPLY)
            .set("text", record.text)
            .set("intent", record.intent)
            .set("reply_to", record.reply_to)
            .set("media_id", record.media_id)
            .set("request", record.request_json)
            .set("message_status", record.message_status)
            .set("biz_opaque_callback_data", record.callback)
            # A status webhook may have created this item already; its status must survive the merge.
            .set_if_absent("status", "accepted")
            .set_if_absent("status_rank", 0)
            .set("status_ts_accepted", record.timestamp)
        )
        condition = "attribute_not_exists(#sent)"
        update.names["#sent"] = "sent_at"
        return update.request(self.table_name, message_key(record.wamid), condition)

    def _outbound_lead_update(self, record: OutboundRecord, move_timeline: bool) -> dict[str, Any]:
        update = (
            _Update()
            .set("wa_id", record.wa_id)
            .set("last_outbound_at", record.timestamp)
            .set("lead_id", record.lead_id)
            .set("awaits_response", record.awaits_response)
            .set("updated_at", record.timestamp)
        )
        if record.sent_by is SentBy.HUMAN:
            update.set("last_human_outbound_at", record.timestamp)
        condition = None
        if move_timeline:
            update.set("last_message_at", record.timestamp).set("last_message_preview", record.preview)
            update.set("last_message_direction", "outbound")
            update.set("GSI1PK", keys.LEADS_BY_ACTIVITY)
            update.set("GSI1SK", keys.leads_sk(record.timestamp, record.wa_id))
            condition = "attribute_not_exists(#m) OR #m <= :since OR #m > :horizon"
            update.names["#m"] = "last_message_at"
            update.values[":since"] = to_attribute(record.timestamp)
            update.values[":horizon"] = to_attribute(_horizon(record.timestamp))
        return update.request(self.table_name, lead_key(record.wa_id), condition)

    def record_outbound(self, record: OutboundRecord) -> bool:
        """Store an accepted send with its lead update and the hourly `sent` counter, in one transaction.

        False when this wamid was already recorded by a sender (a retried call), so nothing is counted twice.
        """
        for move_timeline in (True, False):
            transaction = [
                {"Update": self._outbound_update(record)},
                {"Update": self._outbound_lead_update(record, move_timeline)},
                {"Update": stats_update(self.table_name, record.timestamp, record.wamid, sent=1)},
            ]
            try:
                self.client.transact_write_items(TransactItems=transaction)
                return True
            except ClientError as error:
                failed = _cancelled_items(error)
                if failed is None:
                    raise StoreUnavailableError(f"DynamoDB refused the send record: {_error_code(error)}") from error
            except BotoCoreError as error:
                raise StoreUnavailableError(f"DynamoDB unreachable: {type(error).__name__}") from error
            if 0 in failed:
                return False
            if failed != {1}:
                raise StoreUnavailableError(f"transaction cancelled on items {sorted(failed)}")
        raise StoreUnavailableError("lead update kept failing its condition")

    # --- opt-out state -----------------------------------------------------------------------

    def record_template_status(self, update: TemplateStatusUpdate) -> bool:
        """A `message_template_status_update` moves the cached template (store/templates.py)."""
        from whatsapp_crm.store.templates import apply_template_status

        return apply_template_status(self.client, self.table_name, update)

    def record_preference(self, change: PreferenceChange) -> bool:
        """Set or clear the lead's opt-out. Returns False when a newer change is already recorded."""
        update = (
            _Update()
            .set("wa_id", change.wa_id)
            .set("opted_out", change.opted_out)
            .set("opt_state_at", change.timestamp)
            .set("opt_state_source", change.source)
            .set("opt_state_detail", change.detail)
        )
        if change.opted_out:
            update.set("opted_out_at", change.timestamp)
        condition = "attribute_not_exists(#since) OR #since <= :since"
        update.names["#since"] = "opt_state_at"
        update.values[":since"] = to_attribute(change.timestamp)
        with _store_errors():
            try:
                self.client.update_item(**update.request(self.table_name, lead_key(change.wa_id), condition))
            except ClientError as error:
                if _error_code(error) == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    # --- reads ---------------------------------------------------------------------------------

    def _get(self, key: dict[str, str], consistent: bool = True) -> dict[str, Any] | None:
        with _store_errors():
            response = self.client.get_item(
                TableName=self.table_name,
                Key={name: {"S": value} for name, value in key.items()},
                ConsistentRead=consistent,
            )
        item = response.get("Item")
        return from_item(item) if item else None

    def get_message(self, wamid: str) -> dict[str, Any] | None:
        return self._get(message_key(wamid))

    def get_lead(self, wa_id: str) -> dict[str, Any] | None:
        return self._get(lead_key(wa_id))


def _cancelled_items(error: ClientError) -> set[int] | None:
    """Indexes of the transaction items whose condition failed, or None if it was not a cancellation."""
    if _error_code(error) != "TransactionCanceledException":
        return None
    reasons = error.response.get("CancellationReasons") or []
    failed = {index for index, reason in enumerate(reasons) if reason.get("Code") == "ConditionalCheckFailed"}
    others = {
        reason.get("Code") for reason in reasons if reason.get("Code") not in (None, "None", "ConditionalCheckFailed")
    }
    if others:
        return None
    return failed
