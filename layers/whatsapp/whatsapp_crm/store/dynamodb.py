"""The conversation store on DynamoDB: inbound messages, statuses, outbound messages, leads, opt-outs.

Built from the toolkit (store/toolkit.py). No transactions on the hot paths (a transaction doubles every
item's write units, docs/cost.md): a new inbound message is a conditional Put, its lead's update and a
counter ADD; a status one conditional update. Conditions and idempotent updates make redelivery, retries
and reordering safe (docs/table-design.md). The outbound writes and lead reads are functions over a `Table`, so the
responder's store (store/responder.py) and the read API's (store/read_api.py) use them without inheriting
the webhook's methods.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from whatsapp_crm.clock import FUTURE_SKEW_SECONDS, parse_iso, shifted_iso
from whatsapp_crm.errors import StoreUnavailableError, UnstorableError
from whatsapp_crm.observability import logger
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
from whatsapp_crm.store.toolkit import AttributeValue, Table, Update, key_attributes, store_errors, to_attribute

if TYPE_CHECKING:
    from whatsapp_crm.templates import TemplateStatusUpdate

# Counters outlive the 24-hour health window by a margin; DynamoDB's TTL sweeper deletes them later.
STATS_RETENTION = timedelta(days=3)


def lead_key(wa_id: str) -> dict[str, str]:
    return {"PK": keys.lead_pk(wa_id), "SK": keys.LEAD_SK}


def conversation_key(wa_id: str, phone_number_id: str) -> dict[str, str]:
    """The lead's conversation with one business number: beside the lead item, in its partition."""
    return {"PK": keys.lead_pk(wa_id), "SK": keys.conversation_sk(phone_number_id)}


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
    """An ADD on this hour's counter shard (a partition of its own), written after the event's own write."""
    hour = keys.stats_hour(at)
    expression, names, numbers = _stats_expression(tuple(increments.items()))
    values: dict[str, AttributeValue] = {":ttl": {"N": _stats_expiry(hour)}, ":hour": {"S": hour}}
    for placeholder, number in numbers:
        values[placeholder] = {"N": number}
    return {
        "TableName": table,
        "Key": {"PK": {"S": keys.stats_pk(hour, keys.stats_shard(discriminator))}, "SK": {"S": keys.STATS_SK}},
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


def unread_tag(wamid: str) -> str:
    """A message's member of its lead's `unread_tags` set: adding it twice counts it once."""
    return f"{zlib.crc32(wamid.encode('utf-8')):08x}"


@lru_cache(maxsize=16)
def _lead_expression(timeline: str, with_name: bool, unread: bool = True) -> tuple[str, dict[str, str], str | None]:
    """The lead update of an inbound message, per timeline variant (see _LeadTimeline). Static text, so
    the per-event cost is only the values. Without `unread` (a redelivery repairing a lead the first
    delivery never reached), the timeline moves only where the lead is strictly older than the message."""
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
        if not unread:
            condition = "(attribute_not_exists(#last_in) OR #last_in < :ts)"
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
    expression = "SET " + ", ".join(assignments)
    if unread:
        expression += " ADD #unread :tag"
        names["#unread"] = "unread_tags"
    return expression, names, condition


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


# --- the requests (also a transaction's entries) ------------------------------------------------


def message_put(table: str, record: InboundRecord) -> dict[str, Any]:
    """The Put of a new inbound message, only if its wamid is not stored yet."""
    # Written out attribute by attribute: this runs for every inbound message (see bench_webhook.py).
    item: dict[str, AttributeValue] = {
        "PK": {"S": keys.message_pk(record.wamid)},
        "SK": {"S": keys.MESSAGE_SK},
        "GSI1PK": {"S": keys.thread_pk(record.phone_number_id, record.wa_id)},
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
    return {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(PK)"}


def redelivered_unread_update(table: str, record: InboundRecord) -> dict[str, Any]:
    """A redelivered message's unread tag, only if no agent has read its thread since it was sent: a set
    ADD, so a redelivery after a complete first delivery changes nothing."""
    return {
        "TableName": table,
        "Key": {"PK": {"S": keys.lead_pk(record.wa_id)}, "SK": {"S": keys.conversation_sk(record.phone_number_id)}},
        "UpdateExpression": "ADD #unread :tag",
        "ConditionExpression": "attribute_exists(PK) AND (attribute_not_exists(#read) OR #read < :ts)",
        "ExpressionAttributeNames": {"#unread": "unread_tags", "#read": "read_at"},
        "ExpressionAttributeValues": {":tag": {"SS": [unread_tag(record.wamid)]}, ":ts": {"S": record.timestamp}},
    }


def inbound_lead_update(table: str, record: InboundRecord, timeline: str, unread: bool = True) -> dict[str, Any]:
    """The lead's update for an inbound message, as far as `timeline` (a _LeadTimeline) lets it move."""
    expression, names, condition = _lead_expression(timeline, record.profile_name is not None, unread)
    values: dict[str, AttributeValue] = {
        ":wa": {"S": record.wa_id},
        ":pn": {"S": record.phone_number_id},
        ":yes": {"BOOL": True},
        ":now": {"S": record.received_at},
        ":ts": {"S": record.timestamp},
    }
    if unread:
        values[":tag"] = {"SS": [unread_tag(record.wamid)]}
    if record.profile_name is not None:
        values[":name"] = {"S": record.profile_name}
    if timeline != _LeadTimeline.COUNT_ONLY:
        values[":wamid"] = {"S": record.wamid}
        if unread or timeline == _LeadTimeline.FULL:
            values[":horizon"] = {"S": _horizon(record.received_at)}
    if timeline == _LeadTimeline.FULL:
        values[":preview"] = {"S": record.preview}
        values[":in"] = {"S": "inbound"}
        values[":leads"] = {"S": keys.leads_pk(record.wa_id)}
        values[":gsk"] = {"S": keys.leads_sk(record.timestamp, record.wa_id, record.phone_number_id)}
    request: dict[str, Any] = {
        "TableName": table,
        "Key": {"PK": {"S": keys.lead_pk(record.wa_id)}, "SK": {"S": keys.conversation_sk(record.phone_number_id)}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    if condition:
        request["ConditionExpression"] = condition
    return request


def status_update(table: str, update: StatusUpdate) -> dict[str, Any]:
    """Move a message's status forward, only if the stored rank is lower."""
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
        values[":gpk"] = {"S": keys.thread_pk(update.phone_number_id, update.recipient_wa_id)}
        values[":gsk"] = {"S": keys.thread_sk(update.timestamp, update.wamid)}
    if update.error is not None:
        values[":error"] = to_attribute(update.error.as_item())
    if update.pricing_category is not None:
        values[":pricing"] = {"S": update.pricing_category}
    if update.biz_opaque_callback_data is not None:
        values[":callback"] = {"S": update.biz_opaque_callback_data}
    return {
        "TableName": table,
        "Key": {"PK": {"S": keys.message_pk(update.wamid)}, "SK": {"S": keys.MESSAGE_SK}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ConditionExpression": "attribute_not_exists(#rank) OR #rank < :rank",
    }


def outbound_update(table: str, record: OutboundRecord) -> dict[str, Any]:
    """The outbound message, merged into what a status may have created, only if no sender recorded it."""
    update = (
        Update()
        .set("wamid", record.wamid)
        .set("wa_id", record.wa_id)
        .set("direction", "outbound")
        .set("message_type", record.message_type)
        .set("timestamp", record.timestamp)
        .set("sent_at", record.timestamp)
        # A status webhook that came first placed the message in the thread already (at Meta's time of the
        # status): moving it would cost the index a delete and a put.
        .set_if_absent("GSI1PK", keys.thread_pk(record.phone_number_id, record.wa_id))
        .set_if_absent("GSI1SK", keys.thread_sk(record.timestamp, record.wamid))
        .set("phone_number_id", record.phone_number_id)
        .set("sent_by", record.sent_by.value)
        .set("auto_reply", record.sent_by is SentBy.AUTO_REPLY)
        .set("text", record.text)
        .set("intent", record.intent)
        .set("reply_to", record.reply_to)
        .set("media_id", record.media_id)
        .set("request", record.request_json)
        .set("buttons", record.buttons_json)
        .set("message_status", record.message_status)
        .set("biz_opaque_callback_data", record.callback)
        # A status webhook may have created this item already; its status must survive the merge.
        .set_if_absent("status", "accepted")
        .set_if_absent("status_rank", 0)
        .set("status_ts_accepted", record.timestamp)
    )
    condition = "attribute_not_exists(#sent)"
    update.names["#sent"] = "sent_at"
    return update.request(table, message_key(record.wamid), condition)


def outbound_lead_update(table: str, record: OutboundRecord, move_timeline: bool) -> dict[str, Any]:
    """The conversation's update for an outbound message (the lead's with the sending number);
    `move_timeline` only while nothing newer is on it."""
    update = (
        Update()
        .set("wa_id", record.wa_id)
        .set("last_phone_number_id", record.phone_number_id)
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
        if record.sent_by is not SentBy.AUTO_REPLY:
            # An auto-reply follows its inbound message within seconds: it leaves the lead's place in the
            # listing alone, which saves the index a delete and a put per answered message.
            update.set("GSI1PK", keys.leads_pk(record.wa_id))
            update.set("GSI1SK", keys.leads_sk(record.timestamp, record.wa_id, record.phone_number_id))
        condition = "attribute_not_exists(#m) OR #m <= :since OR #m > :horizon"
        update.names["#m"] = "last_message_at"
        update.values[":since"] = to_attribute(record.timestamp)
        update.values[":horizon"] = to_attribute(_horizon(record.timestamp))
    return update.request(table, conversation_key(record.wa_id, record.phone_number_id), condition)


# --- what several stores do on the conversation items ---------------------------------------------


def count(table: Table, at: str, discriminator: str, **increments: int) -> None:
    """ADD to this hour's counters. After the event's own write, so a failure here is logged, never raised:
    the event is stored, and failing its delivery would not count it either."""
    try:
        table.add_once(stats_update(table.name, at, discriminator, **increments), "the hourly counter")
    except (StoreUnavailableError, UnstorableError) as error:
        logger.warning("hourly counter not written", extra={"problem": str(error), **increments})


def record_outbound(table: Table, record: OutboundRecord, lead_extras: Mapping[str, Any] | None = None) -> bool:
    """Store an accepted send, then its conversation update, then (first record only) the hourly `sent` counter.

    False when this wamid was already recorded by a sender (a retried call), so nothing is counted twice.
    Plain writes: the message's condition decides, the conversation update is idempotent and runs either
    way (docs/table-design.md): a first record whose answer was lost, or whose caller died before the
    conversation update, is found already recorded on the retry, and the retry must still move the timeline.
    """
    try:
        first = table.update(outbound_update(table.name, record), "the send record")
    except UnstorableError as error:
        # Meta accepted the send already: the caller's one failure path is "not recorded", never "unstorable".
        raise StoreUnavailableError(f"DynamoDB refused the send record: {error}") from error
    _update_outbound_lead(table, record, lead_extras or {})
    if first:
        increments = {"sent": 1, "auto_replies": 1} if record.sent_by is SentBy.AUTO_REPLY else {"sent": 1}
        count(table, record.timestamp, record.wamid, **increments)
    return first


def _update_outbound_lead(table: Table, record: OutboundRecord, extras: Mapping[str, Any]) -> None:
    for move_timeline in (True, False):
        update = outbound_lead_update(table.name, record, move_timeline)
        if extras:
            update = with_extra_sets(update, extras)
        if table.update(update, "the lead"):
            return
    raise StoreUnavailableError("lead update kept failing its condition")


def with_extra_sets(request: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`request` (an UpdateItem built by Update) with more SET clauses, under placeholders of their own."""
    names = dict(request["ExpressionAttributeNames"])
    attribute_values = dict(request.get("ExpressionAttributeValues", {}))
    clauses = []
    for index, (attribute, value) in enumerate(values.items()):
        names[f"#extra{index}"] = attribute
        attribute_values[f":extra{index}"] = to_attribute(value)
        clauses.append(f"#extra{index} = :extra{index}")
    expression = str(request["UpdateExpression"])
    if expression.startswith("SET "):
        expression = "SET " + ", ".join(clauses) + ", " + expression[len("SET ") :]
    else:
        expression = ("SET " + ", ".join(clauses) + " " + expression).strip()
    return {
        **request,
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": attribute_values,
    }


def record_preference(table: Table, change: PreferenceChange) -> bool:
    """Set or clear the lead's opt-out, for every number of the business (it is on the lead item, which
    each conversation's decisions read). Returns False when a newer change is already recorded."""
    update = (
        Update()
        .set("wa_id", change.wa_id)
        # The number the change came through: the events' phone_number_id (the opt-out itself is the lead's).
        .set("last_phone_number_id", change.phone_number_id)
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
    return table.update(update.request(table.name, lead_key(change.wa_id), condition))


# What the lead item holds for the whole business; everything else a reader sees is a conversation's.
LEAD_FIELDS = frozenset(
    {"opted_out", "opted_out_at", "opt_state_at", "opt_state_source", "opt_state_detail", "meeting_request"}
)
# A lead item written before issue 14 holds its (one) conversation's timeline itself.
_LEGACY_TIMELINE = ("last_message_at", "last_inbound_at", "last_outbound_at")


def get_lead(table: Table, wa_id: str, phone_number_id: str | None = None) -> dict[str, Any] | None:
    """The lead as seen through one of its conversations (one consistent Query of its partition)."""
    request = {
        "TableName": table.name,
        "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": keys.lead_pk(wa_id)}},
        "ConsistentRead": True,
    }
    return lead_state(wa_id, list(table.query(request)), phone_number_id)


def conversations_of(
    wa_id: str, items: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The lead item and the conversations (number -> item) among one lead partition's items. A lead item
    written before issue 14 stands for the conversation with its `last_phone_number_id` ("" if it has
    none) until scripts/migrate_table.py copies it to a conversation item."""
    lead: dict[str, Any] = {}
    conversations: dict[str, dict[str, Any]] = {}
    for item in items:
        sort_key = str(item.get("SK", ""))
        if sort_key == keys.LEAD_SK:
            lead = dict(item)
        elif (number := keys.conversation_number(sort_key)) is not None:
            conversations[number] = lead_view(dict(item))
    if any(name in lead for name in _LEGACY_TIMELINE):
        legacy = {name: value for name, value in lead.items() if name not in LEAD_FIELDS}
        conversations.setdefault(str(lead.get("last_phone_number_id") or ""), lead_view(legacy | {"wa_id": wa_id}))
    return lead, conversations


def latest_number(conversations: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The number the lead wrote to last (then the one with the newest message): sends and reads default to it."""
    if not conversations:
        return None

    def recency(number: str) -> tuple[str, str]:
        item = conversations[number]
        return str(item.get("last_inbound_at") or ""), str(item.get("last_message_at") or "")

    return max(conversations, key=recency)


def lead_state(
    wa_id: str, items: Sequence[Mapping[str, Any]], phone_number_id: str | None = None
) -> dict[str, Any] | None:
    """One conversation's fields (of `phone_number_id`, else the latest) with the lead's business-wide ones
    (opt-out, meeting request) over them, `phone_number_id`/`last_phone_number_id` naming the conversation's
    number, and `conversations` every conversation of the lead. None when the lead has no item at all."""
    lead, conversations = conversations_of(wa_id, items)
    if not lead and not conversations:
        return None
    number = phone_number_id if phone_number_id is not None else latest_number(conversations)
    view = dict(conversations.get(number or "", {}))
    view.update({name: value for name, value in lead.items() if name in LEAD_FIELDS})
    view["wa_id"] = wa_id
    view["phone_number_id"] = view["last_phone_number_id"] = number or None
    view["conversations"] = conversations
    return view


def lead_view(lead: dict[str, Any]) -> dict[str, Any]:
    """A lead as readers know it: `unread_count` is the unread tags set's size (plus any count left by the
    previous design); the tags themselves stay inside the store."""
    tags = lead.pop("unread_tags", None)
    if tags:
        previous = lead.get("unread_count")
        lead["unread_count"] = (previous if isinstance(previous, int) else 0) + len(tags)
    return lead


# What the responder decided about an inbound message, kept on its reply record (MSG#<wamid>/REPLY).
DECISION_FIELDS = (
    "intent",
    "language",
    "intent_cue",
    "opt_out_unclear",
    "reply_status",
    "reply_wamid",
    "reply_at",
    "reply_error",
)


def with_decision(message: dict[str, Any], reply: Mapping[str, Any] | None) -> dict[str, Any]:
    """The inbound message as readers know it: the reply record's decision fields shown on it (messages
    stored before the table redesign carry them themselves)."""
    if not reply:
        return message
    return message | {name: reply[name] for name in DECISION_FIELDS if name in reply}


def sent_with_callback(table: Table, thread: str, callback: str, since: str) -> str | None:
    """The wamid of an outbound message in `thread` since `since` carrying `callback` (biz_opaque_callback_data:
    the send's own record keeps it, Meta echoes it in every status, the index projects it), if any: evidence
    that an interrupted send reached Meta."""
    request: dict[str, Any] = {
        "TableName": table.name,
        "IndexName": keys.GSI1,
        "KeyConditionExpression": "GSI1PK = :thread AND GSI1SK >= :since",
        "FilterExpression": "#callback = :callback",
        "ExpressionAttributeNames": {"#callback": "biz_opaque_callback_data"},
        "ExpressionAttributeValues": {
            ":thread": to_attribute(thread),
            ":since": to_attribute(since),
            ":callback": to_attribute(callback),
        },
    }
    for entry in table.query(request):
        if entry.get("direction") == "outbound" and entry.get("wamid"):
            return str(entry["wamid"])
    return None


# --- the store ---------------------------------------------------------------------------------------


class DynamoConversationStore:
    """The webhook's writes (ingest.ConversationWriter) and the send path's (outbound.OutboundStore)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = Table(table_name, client)

    # --- webhook: inbound messages -------------------------------------------------------------

    def record_inbound(self, record: InboundRecord) -> bool:
        """Store a new inbound message and update its lead, once. False when the wamid is already stored.

        Three plain writes, no transaction: the message's conditional Put decides whether this delivery is
        the first; the lead update runs either way (a redelivery repairs a lead the first delivery never
        reached, and adds the unread tag, a set member, only if no agent read the thread since the message
        was sent); the counter only for the first.
        """
        first = self.table.conditional("put_item", message_put(self.table.name, record), "the message") is not None
        try:
            self._update_inbound_lead(record, first)
        except UnstorableError:
            if first:
                # The lead cannot take this message (a sender id at a key's size limit): nothing half-written.
                with store_errors("the message"):
                    self.table.client.delete_item(
                        TableName=self.table.name, Key=key_attributes(message_key(record.wamid))
                    )
            raise
        if first:
            count(self.table, record.received_at, record.wamid, received=1)
        return first

    def _update_inbound_lead(self, record: InboundRecord, first: bool) -> None:
        if first:
            for timeline in _LeadTimeline.ORDER:
                if self.table.update(inbound_lead_update(self.table.name, record, timeline), "the lead"):
                    return
            raise StoreUnavailableError("lead update kept failing its condition")
        for timeline in _LeadTimeline.ORDER[:2]:
            if self.table.update(inbound_lead_update(self.table.name, record, timeline, unread=False), "the lead"):
                break
        # The first delivery may have died before its lead update: its unread tag goes in now, unless an
        # agent has read the thread since the message was sent (a redelivery never makes it unread again).
        self.table.update(redelivered_unread_update(self.table.name, record), "the unread tag")

    # --- webhook: statuses ---------------------------------------------------------------------

    def record_status(self, update: StatusUpdate) -> StatusOutcome:
        """Move the message's status forward (creating an `unknown` outbound record if it is new)."""
        if self.table.update(status_update(self.table.name, update), "the status"):
            if update.error is not None:
                # `failed` ranks highest, so only its first arrival passes the forward condition: counted once.
                count(self.table, update.received_at, update.wamid, failed=1)
            return StatusOutcome.APPLIED
        return self._record_late_status(update)

    def _record_late_status(self, update: StatusUpdate) -> StatusOutcome:
        """The message already holds this status or a later one: keep the history, not the status."""
        attribute = f"status_ts_{update.status}"
        history = Update().set(attribute, update.timestamp)
        condition = "attribute_exists(PK) AND attribute_not_exists(#late)"
        history.names["#late"] = attribute
        if self.table.update(history.request(self.table.name, message_key(update.wamid), condition)):
            return StatusOutcome.STALE
        return StatusOutcome.DUPLICATE

    # --- webhook: template statuses and opt-outs ---------------------------------------------------

    def record_template_status(self, update: TemplateStatusUpdate) -> bool:
        """A `message_template_status_update` moves the cached template (store/templates.py)."""
        from whatsapp_crm.store.templates import apply_template_status

        return apply_template_status(self.table, update)

    def record_preference(self, change: PreferenceChange) -> bool:
        return record_preference(self.table, change)

    # --- send path --------------------------------------------------------------------------------

    def record_outbound(self, record: OutboundRecord) -> bool:
        return record_outbound(self.table, record)

    # --- reads ---------------------------------------------------------------------------------------

    def get_message(self, wamid: str) -> dict[str, Any] | None:
        """The message with the responder's decision on it: one consistent Query of its partition."""
        request = {
            "TableName": self.table.name,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.message_pk(wamid)}},
            "ConsistentRead": True,
        }
        found = {str(item["SK"]): item for item in self.table.query(request)}
        message = found.get(keys.MESSAGE_SK)
        if message is None:
            return None
        return with_decision(message, found.get(keys.REPLY_CLAIM_SK))

    def get_lead(self, wa_id: str) -> dict[str, Any] | None:
        return get_lead(self.table, wa_id)
