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
    record_outbound,
    record_preference,
    sent_with_callback,
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

    def claim_reply(
        self,
        wamid: str,
        wa_id: str,
        *,
        owner: str,
        now: datetime,
        lease: timedelta,
        annotation: Mapping[str, Any] | None = None,
    ) -> Claim:
        """Take the claim; `annotation` (the intent) is written with it, in the same write."""
        claimed_at = iso(now)
        update = (
            Update.setting(annotation or {})
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

    def _close(self, claim: Claim, finish: Update, annotation: Mapping[str, Any]) -> bool:
        """Close the claim with the decision on it (the reply record is where readers find it): one write.
        False when another attempt owns the claim now; that attempt records its own decision."""
        for name, value in annotation.items():
            finish.set(name, value)
        return self.table.update(self._owned_update(claim, finish))

    def _annotation(self, wamid: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Set decision fields on the message's reply record (created if there is none yet)."""
        return Update.setting(fields).set("wamid", wamid).request(self.table.name, reply_claim_key(wamid))

    def finish_reply_sent(self, claim: Claim, record: OutboundRecord) -> bool:
        """Record the reply (message, lead, counters) and close the claim with the decision on it.

        Plain writes in this order, no transaction: a crash before the close leaves an open claim whose retry
        finds the recorded reply (find_sent_reply) and closes it, without sending or counting again.
        False when the claim was no longer ours (the reply is still recorded).
        """
        cooldown = {f"{AUTO_REPLY_AT_PREFIX}{record.intent}": record.timestamp} if record.intent else {}
        record_outbound(self.table, record, lead_extras=cooldown)
        finish = self._finish(DONE, "sent", record.timestamp)
        decision = {"reply_status": "sent", "reply_wamid": record.wamid, "reply_at": record.timestamp}
        return self._close(claim, finish, decision)

    def find_sent_reply(self, wa_id: str, phone_number_id: str, inbound_wamid: str, since: str) -> SentReply | None:
        """An outbound message in the lead's thread with the number since `since` that answers `inbound_wamid`,
        if any: the callback data the reply was sent with (its record keeps it, Meta echoes it in every status).
        A reply sent before threads were keyed by number (an attempt interrupted by the issue 14 deploy) is in
        the lead's old thread: looked up there too, on this rare path only."""
        callback = f"{CALLBACK_PREFIX}{inbound_wamid}"
        for thread in (keys.thread_pk(phone_number_id, wa_id), keys.legacy_thread_pk(wa_id)):
            wamid = sent_with_callback(self.table, thread, callback, since)
            if wamid is not None:
                # The index projects no sent_at: one read, on this rare path only.
                item = self.table.get(message_key(wamid)) or {}
                return SentReply(wamid=wamid, recorded="sent_at" in item)
        return None

    def record_refusal(self, at: str, discriminator: str) -> None:
        record_refusal(self.table, at, discriminator)

    # --- the inbound message -------------------------------------------------------------------------

    def annotate_inbound(self, wamid: str, fields: Mapping[str, Any]) -> bool:
        """Record the decision about an inbound message nobody answers (on its reply record)."""
        if not Update.setting(fields).expression:
            return True
        return self.table.update(self._annotation(wamid, fields))

    # --- the lead ---------------------------------------------------------------------------------------

    def get_lead_snapshot(self, wa_id: str, phone_number_id: str) -> LeadSnapshot:
        """The lead's opt-out (every number's) with the human takeover and cool-downs of its conversation
        with `phone_number_id`: one Query of the lead's partition."""
        item = get_lead(self.table, wa_id, phone_number_id) or {}
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

    def record_meeting_request(self, wa_id: str, phone_number_id: str, request: MeetingRequest) -> bool:
        """The lead's latest meeting request (tapped in the conversation with `phone_number_id`); False when a
        later tap is already recorded."""
        meeting = {
            "slot_id": request.slot_id,
            "slot_start": request.slot_start,
            "requested_at": request.requested_at,
            "status": request.status,
            "source_wamid": request.source_wamid,
        }
        update = Update().set("wa_id", wa_id).set("last_phone_number_id", phone_number_id)
        update.set("meeting_request", meeting)
        condition = "attribute_not_exists(#mr) OR #mr.#at <= :at"
        update.names.update({"#mr": "meeting_request", "#at": "requested_at"})
        update.values[":at"] = to_attribute(request.requested_at)
        return self.table.update(update.request(self.table.name, lead_key(wa_id), condition))
