"""DynamoDB adapter of the responder: the reply claim, annotations on the inbound message, lead state.

The claim is one item per inbound wamid (PK=MSG#<wamid>, SK=REPLY) moved through these states, each
move a conditional write, so concurrent consumers cannot both win:

    (absent) / retry --claim--> in_progress (owner, lease) --finish--> done | failed_permanent
    in_progress with an expired lease --claim--> in_progress (new owner; the old `pending` is kept)
    in_progress --release (owner only)--> retry

`pending` holds the reply a holder was about to send, written just before the Graph call; a later
holder that finds it looks for evidence that Meta accepted that send before sending again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from whatsapp_crm.clock import iso
from whatsapp_crm.errors import StoreUnavailableError
from whatsapp_crm.records import MessageError, OutboundRecord, PreferenceChange
from whatsapp_crm.responder_records import (
    CALLBACK_PREFIX,
    Claim,
    ClaimStatus,
    LeadSnapshot,
    MeetingRequest,
    PendingReply,
    SentReply,
)
from whatsapp_crm.store import keys
from whatsapp_crm.store.dynamodb import (
    get_lead,
    lead_key,
    message_key,
    outbound_lead_update,
    outbound_update,
    record_outbound,
    record_preference,
    stats_update,
)
from whatsapp_crm.store.refusals import record_refusal
from whatsapp_crm.store.toolkit import Table, Update, from_item, to_attribute

IN_PROGRESS = "in_progress"
DONE = "done"
FAILED_PERMANENT = "failed_permanent"
RETRY = "retry"
AUTO_REPLY_AT_PREFIX = "last_auto_reply_at_"


def reply_claim_key(wamid: str) -> dict[str, str]:
    return {"PK": keys.message_pk(wamid), "SK": keys.REPLY_CLAIM_SK}


def _with_extra_sets(request: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
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


def _pending_item(pending: PendingReply) -> dict[str, Any]:
    return {
        "kind": pending.kind,
        "body": pending.body,
        "intent": pending.intent,
        "language": pending.language,
        "buttons": [{"id": button_id, "title": title} for button_id, title in pending.buttons],
    }


def _pending_from(item: Any) -> PendingReply | None:
    if not isinstance(item, Mapping) or not item.get("body"):
        return None
    buttons = tuple(
        (str(button.get("id", "")), str(button.get("title", "")))
        for button in item.get("buttons") or []
        if isinstance(button, Mapping)
    )
    return PendingReply(
        kind=str(item.get("kind", "text")),
        body=str(item["body"]),
        intent=str(item.get("intent", "default")),
        language=str(item.get("language", "he")),
        buttons=buttons,
    )


class DynamoReplyStore:
    """What the responder may do on the table (respond.ReplyStore): the claim, the reply and its lead update,
    annotations on the inbound message, the lead's opt-out and meeting request, the refusal counter."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table = Table(table_name, client)

    # --- the claim ---------------------------------------------------------------------------------

    def claim_reply(self, wamid: str, wa_id: str, *, owner: str, now: datetime, lease: timedelta) -> Claim:
        claimed_at = iso(now)
        update = (
            Update()
            .set("state", IN_PROGRESS)
            .set("owner", owner)
            .set("lease_expires_at", int((now + lease).timestamp()))
            .set("claimed_at", claimed_at)
            .set("wamid", wamid)
            .set("wa_id", wa_id)
            .set_if_absent("first_claimed_at", claimed_at)
            .add("attempts", 1)
        )
        state, lease_expiry = update.name("state"), update.name("lease_expires_at")
        condition = f"attribute_not_exists(PK) OR {state} = :retry OR ({state} = :progress AND {lease_expiry} < :now)"
        update.values.update(
            {
                ":retry": to_attribute(RETRY),
                ":progress": to_attribute(IN_PROGRESS),
                ":now": to_attribute(int(now.timestamp())),
            }
        )
        request = update.request(self.table.name, reply_claim_key(wamid), condition)
        response = self.table.conditional("update_item", {**request, "ReturnValues": "ALL_OLD"})
        if response is None:
            return self._claim_refused(wamid, owner, claimed_at)
        previous = from_item(response["Attributes"]) if response.get("Attributes") else {}
        first = str(previous.get("first_claimed_at") or claimed_at)
        if previous.get("state") == IN_PROGRESS:
            pending = _pending_from(previous.get("pending"))
            sending_at = str(previous["sending_at"]) if pending and previous.get("sending_at") else None
            return Claim(ClaimStatus.RESUMED, wamid, owner, claimed_at, first, pending=pending, sending_at=sending_at)
        return Claim(ClaimStatus.ACQUIRED, wamid, owner, claimed_at, first)

    def _claim_refused(self, wamid: str, owner: str, claimed_at: str) -> Claim:
        current = self.table.get(reply_claim_key(wamid)) or {}
        first = str(current.get("first_claimed_at") or claimed_at)
        if current.get("state") in (DONE, FAILED_PERMANENT):
            outcome = current.get("outcome") or current.get("state")
            return Claim(ClaimStatus.HANDLED, wamid, owner, claimed_at, first, outcome=str(outcome))
        lease = current.get("lease_expires_at")
        return Claim(
            ClaimStatus.HELD,
            wamid,
            owner,
            claimed_at,
            first,
            lease_expires_at=lease if isinstance(lease, int) else None,
        )

    def _owned_update(self, claim: Claim, update: Update) -> dict[str, Any]:
        """The update, applied only while this attempt still holds the claim."""
        owner, state = update.name("owner"), update.name("state")
        update.values.update({":me": to_attribute(claim.owner), ":progress": to_attribute(IN_PROGRESS)})
        return update.request(self.table.name, reply_claim_key(claim.wamid), f"{owner} = :me AND {state} = :progress")

    def mark_reply_sending(self, claim: Claim, pending: PendingReply, now: datetime) -> bool:
        update = Update().set("pending", _pending_item(pending)).set("sending_at", iso(now))
        return self.table.update(self._owned_update(claim, update))

    def release_reply(self, claim: Claim, reason: str, now: datetime, error: MessageError | None = None) -> None:
        update = Update().set("state", RETRY).set("released_at", iso(now)).set("release_reason", reason)
        if error is not None:
            update.set("last_error", error.as_item())
        self.table.update(self._owned_update(claim, update))

    @staticmethod
    def _finish(state: str, outcome: str, now: str, **fields: Any) -> Update:
        update = Update().set("state", state).set("outcome", outcome).set("finished_at", now)
        for name, value in fields.items():
            update.set(name, value)
        return update

    def finish_reply_skipped(self, claim: Claim, outcome: str, now: datetime) -> None:
        at = iso(now)
        self._close(claim, self._finish(DONE, outcome, at), {"reply_status": outcome, "reply_at": at})

    def finish_reply_failed(self, claim: Claim, error: MessageError, now: datetime) -> None:
        at = iso(now)
        finish = self._finish(FAILED_PERMANENT, "failed", at, error=error.as_item())
        self._close(claim, finish, {"reply_status": "failed", "reply_error": error.as_item(), "reply_at": at})

    def _close(self, claim: Claim, finish: Update, annotation: Mapping[str, Any]) -> None:
        """Close the claim and show the decision on the inbound message in one transaction: written apart,
        a failure between the two left a closed claim whose retry stops early, and no decision shown."""
        transaction = [
            {"Update": self._owned_update(claim, finish)},
            {"Update": self._annotation(claim.wamid, annotation)},
        ]
        failed = self._transact(transaction)
        if failed == {1}:
            # The inbound message is not stored (it always is, unless deleted): close the claim all the same.
            self.table.update(transaction[0]["Update"])
        # A failed claim condition means another attempt owns it now; that attempt records its own decision.

    def _annotation(self, wamid: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Set fields on a stored inbound message, never creating one."""
        return Update.setting(fields).request(self.table.name, message_key(wamid), "attribute_exists(PK)")

    def finish_reply_sent(self, claim: Claim, record: OutboundRecord) -> bool:
        """Record the reply, its lead update and counters, and close the claim, all in one transaction.

        False when the claim was no longer ours (the reply is still recorded, on its own).
        """
        finish = self._finish(DONE, "sent", record.timestamp, reply_wamid=record.wamid)
        claim_update = self._owned_update(claim, finish)
        cooldown = {f"{AUTO_REPLY_AT_PREFIX}{record.intent}": record.timestamp} if record.intent else {}
        # The decision shown on the inbound message commits with the claim, never after it.
        annotation = self._annotation(
            claim.wamid, {"reply_status": "sent", "reply_wamid": record.wamid, "reply_at": record.timestamp}
        )
        move_timeline = include_outbound = include_annotation = True
        for _ in range(4):
            lead_update = outbound_lead_update(self.table.name, record, move_timeline)
            transaction = [
                {"Update": claim_update},
                {"Update": _with_extra_sets(lead_update, cooldown) if cooldown else lead_update},
            ]
            if include_outbound:
                counters = stats_update(self.table.name, record.timestamp, record.wamid, sent=1, auto_replies=1)
                transaction += [{"Update": outbound_update(self.table.name, record)}, {"Update": counters}]
            annotation_index = len(transaction) if include_annotation else None
            if include_annotation:
                transaction.append({"Update": annotation})
            failed = self._transact(transaction)
            if failed is None:
                return True
            if 0 in failed:
                record_outbound(self.table, record)  # the reply went out all the same; keep it in the thread
                return False
            if annotation_index is not None and annotation_index in failed:
                include_annotation = False  # the inbound message is not stored: nothing to show it on
                failed = failed - {annotation_index}
            if failed - {1, 2} or (1 in failed and not move_timeline):
                raise StoreUnavailableError(f"reply transaction cancelled on items {sorted(failed)}")
            # 1: the lead holds a newer message, so the reply must not move its timeline.
            # 2: this wamid is recorded already (an adopted send): close the claim without counting it again.
            move_timeline = move_timeline and 1 not in failed
            include_outbound = include_outbound and 2 not in failed
        raise StoreUnavailableError("reply transaction kept failing its conditions")

    def _transact(self, transaction: list[dict[str, Any]]) -> set[int] | None:
        """None when committed, else the indexes whose condition failed. The reply went out already, so any
        refusal is "not recorded" (the message is retried), never "unstorable"."""
        return self.table.transact(transaction, "the reply", unstorable_is_unavailable=True)

    def find_sent_reply(self, wa_id: str, inbound_wamid: str, since: str) -> SentReply | None:
        """An outbound message in the lead's thread since `since` that answers `inbound_wamid`, if any."""
        request: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": keys.GSI1,
            "KeyConditionExpression": "GSI1PK = :thread AND GSI1SK >= :since",
            "FilterExpression": "(#reply_to = :wamid AND #auto = :yes) OR #callback = :callback",
            "ExpressionAttributeNames": {
                "#reply_to": "reply_to",
                "#auto": "auto_reply",
                "#callback": "biz_opaque_callback_data",
            },
            "ExpressionAttributeValues": {
                ":thread": to_attribute(keys.thread_pk(wa_id)),
                ":since": to_attribute(since),
                ":wamid": to_attribute(inbound_wamid),
                ":yes": to_attribute(True),
                ":callback": to_attribute(f"{CALLBACK_PREFIX}{inbound_wamid}"),
            },
        }
        for item in self.table.query(request):
            if item.get("direction") == "outbound" and item.get("wamid"):
                return SentReply(wamid=str(item["wamid"]), recorded="sent_at" in item)
        return None

    def record_refusal(self, at: str, discriminator: str) -> None:
        record_refusal(self.table, at, discriminator)

    # --- the inbound message -------------------------------------------------------------------------

    def annotate_inbound(self, wamid: str, fields: Mapping[str, Any]) -> bool:
        """Set fields on a stored inbound message; False (and nothing written) if it is not stored."""
        if not Update.setting(fields).expression:
            return True
        return self.table.update(self._annotation(wamid, fields))

    # --- the lead ---------------------------------------------------------------------------------------

    def get_lead_snapshot(self, wa_id: str) -> LeadSnapshot:
        item = get_lead(self.table, wa_id) or {}
        stamps = {
            name[len(AUTO_REPLY_AT_PREFIX) :]: str(value)
            for name, value in item.items()
            if name.startswith(AUTO_REPLY_AT_PREFIX) and isinstance(value, str)
        }
        return LeadSnapshot(
            wa_id=wa_id,
            opted_out=item.get("opted_out") is True,
            opt_state_at=item.get("opt_state_at"),
            opt_state_source=item.get("opt_state_source"),
            last_human_outbound_at=item.get("last_human_outbound_at"),
            auto_reply_at=stamps,
        )

    def record_preference(self, change: PreferenceChange) -> bool:
        return record_preference(self.table, change)

    def record_meeting_request(self, wa_id: str, request: MeetingRequest) -> bool:
        """The lead's latest meeting request; False when a later tap is already recorded."""
        meeting = {
            "slot_id": request.slot_id,
            "slot_start": request.slot_start,
            "requested_at": request.requested_at,
            "status": request.status,
            "source_wamid": request.source_wamid,
        }
        update = Update().set("wa_id", wa_id).set("meeting_request", meeting)
        condition = "attribute_not_exists(#mr) OR #mr.#at <= :at"
        update.names.update({"#mr": "meeting_request", "#at": "requested_at"})
        update.values[":at"] = to_attribute(request.requested_at)
        return self.table.update(update.request(self.table.name, lead_key(wa_id), condition))
