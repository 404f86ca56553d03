"""The auto-reply use case with hand-written fakes: what a lead receives (or does not) for one message."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local import meta_payloads as meta
from whatsapp_crm.clock import iso
from whatsapp_crm.graph.client import SendResult
from whatsapp_crm.graph.errors import (
    AuthError,
    GraphAPIError,
    GraphUnavailableError,
    InvalidParameterError,
    MarketingOptOutError,
    PairRateLimitError,
    ReengagementRequiredError,
    TemplateError,
    TransientError,
    UndeliverableError,
)
from whatsapp_crm.handoff import QueuedInbound
from whatsapp_crm.records import MessageError, OutboundRecord, PreferenceChange
from whatsapp_crm.respond import (
    CALLBACK_PREFIX,
    Claim,
    ClaimStatus,
    CredentialsRejectedError,
    LeadSnapshot,
    MeetingRequest,
    PendingReply,
    ReplyOutcome,
    ReplyPolicy,
    ReplyRetryableError,
    SentReply,
    respond,
)
from whatsapp_crm.schedule import BusinessHours
from whatsapp_crm.send_models import AnyMessage, InteractiveMessage

LEAD = "972525551234"
# Tuesday 10:00 in Israel: inside the default business hours.
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


# --- fakes -------------------------------------------------------------------------------------------


@dataclass
class _ClaimRecord:
    state: str
    owner: str
    lease_expires_at: int
    first_claimed_at: str
    pending: PendingReply | None = None
    sending_at: str | None = None
    outcome: str | None = None
    error: MessageError | None = None
    reply_wamid: str | None = None


@dataclass
class FakeStore:
    """In-memory ReplyStore with the same conditional semantics as the DynamoDB adapter."""

    lead: LeadSnapshot = field(default_factory=lambda: LeadSnapshot(wa_id=LEAD))
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)
    claims: dict[str, _ClaimRecord] = field(default_factory=dict)
    outbound: list[OutboundRecord] = field(default_factory=list)
    preferences: list[PreferenceChange] = field(default_factory=list)
    meetings: list[MeetingRequest] = field(default_factory=list)
    evidence: dict[str, SentReply] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)  # wamids whose send Meta refused (/health counter)
    fail_on: str | None = None  # a method name that raises, to simulate DynamoDB failing there

    def _maybe_fail(self, method: str) -> None:
        if self.fail_on == method:
            from whatsapp_crm.errors import StoreUnavailableError

            raise StoreUnavailableError(f"{method} failed")

    def annotate_inbound(self, wamid: str, fields: Mapping[str, Any]) -> bool:
        self.annotations.setdefault(wamid, {}).update({k: v for k, v in fields.items() if v is not None})
        return True

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
        self._maybe_fail("claim_reply")
        at, expires = iso(now), int((now + lease).timestamp())
        current = self.claims.get(wamid)
        if current is None or current.state == "retry":
            first = current.first_claimed_at if current else at
            self.claims[wamid] = _ClaimRecord("in_progress", owner, expires, first)
            self.annotate_inbound(wamid, annotation or {})  # written with the claim
            return Claim(ClaimStatus.ACQUIRED, wamid, owner, at, first)
        if current.state in ("done", "failed_permanent"):
            return Claim(ClaimStatus.HANDLED, wamid, owner, at, current.first_claimed_at, outcome=current.outcome)
        if current.lease_expires_at >= int(now.timestamp()):
            return Claim(
                ClaimStatus.HELD, wamid, owner, at, current.first_claimed_at, lease_expires_at=current.lease_expires_at
            )
        pending, sending_at = current.pending, current.sending_at
        self.annotate_inbound(wamid, annotation or {})
        self.claims[wamid] = _ClaimRecord(
            "in_progress", owner, expires, current.first_claimed_at, pending=pending, sending_at=sending_at
        )
        return Claim(
            ClaimStatus.RESUMED, wamid, owner, at, current.first_claimed_at, pending=pending, sending_at=sending_at
        )

    def _owned(self, claim: Claim) -> _ClaimRecord | None:
        current = self.claims.get(claim.wamid)
        if current is None or current.owner != claim.owner or current.state != "in_progress":
            return None
        return current

    def mark_reply_sending(self, claim: Claim, pending: PendingReply, now: datetime) -> bool:
        current = self._owned(claim)
        if current is None:
            return False
        current.pending, current.sending_at = pending, iso(now)
        return True

    def release_reply(self, claim: Claim, reason: str, now: datetime, error: MessageError | None = None) -> None:
        current = self._owned(claim)
        if current is not None:
            current.state, current.error = "retry", error

    def finish_reply_sent(self, claim: Claim, record: OutboundRecord) -> bool:
        self._maybe_fail("finish_reply_sent")
        current = self._owned(claim)
        self.outbound.append(record)
        if current is None:
            return False
        current.state, current.outcome, current.reply_wamid = "done", "sent", record.wamid
        if record.intent:
            stamps = {**self.lead.auto_reply_at, record.intent: record.timestamp}
            self.lead = replace(self.lead, auto_reply_at=stamps)
        self.annotate_inbound(claim.wamid, {"reply_status": "sent", "reply_wamid": record.wamid})
        return True

    def finish_reply_skipped(self, claim: Claim, outcome: str, now: datetime) -> None:
        current = self._owned(claim)
        if current is not None:
            current.state, current.outcome = "done", outcome
        self.annotate_inbound(claim.wamid, {"reply_status": outcome})

    def finish_reply_failed(self, claim: Claim, error: MessageError, now: datetime) -> None:
        current = self._owned(claim)
        if current is not None:
            current.state, current.outcome, current.error = "failed_permanent", "failed", error
        self.annotate_inbound(claim.wamid, {"reply_status": "failed", "reply_error": error.as_item()})

    def find_sent_reply(self, wa_id: str, phone_number_id: str, inbound_wamid: str, since: str) -> SentReply | None:
        return self.evidence.get(inbound_wamid)

    def record_refusal(self, at: str, discriminator: str) -> None:
        self.refusals.append(discriminator)

    def get_lead_snapshot(self, wa_id: str, phone_number_id: str) -> LeadSnapshot:
        self._maybe_fail("get_lead_snapshot")
        return self.lead

    def record_preference(self, change: PreferenceChange) -> bool:
        if self.lead.opt_state_at is not None and self.lead.opt_state_at > change.timestamp:
            return False
        self.preferences.append(change)
        self.lead = replace(
            self.lead, opted_out=change.opted_out, opt_state_at=change.timestamp, opt_state_source=change.source
        )
        return True

    def record_meeting_request(self, wa_id: str, phone_number_id: str, request: MeetingRequest) -> bool:
        self.meetings.append(request)
        return True

    # what a test looks at
    def claim_state(self, wamid: str) -> str | None:
        current = self.claims.get(wamid)
        return current.state if current else None


@dataclass
class Sent:
    kind: str
    phone_number_id: str
    to: str
    body: str
    reply_to: str | None
    buttons: tuple[tuple[str, str], ...] = ()
    callback: str | None = None


@dataclass
class FakeSender:
    """Records what would reach Meta; raises the queued errors first (sends and reads separately)."""

    sent: list[Sent] = field(default_factory=list)
    reads: list[tuple[str, str, bool]] = field(default_factory=list)
    send_errors: list[Exception] = field(default_factory=list)
    read_errors: list[Exception] = field(default_factory=list)
    counter: int = 0

    def _result(self, wa_id: str) -> SendResult:
        self.counter += 1
        return SendResult(message_id=f"wamid.OUT{self.counter}", wa_id=wa_id, input=f"+{wa_id}", message_status=None)

    def send_message(self, phone_number_id: str, message: AnyMessage) -> SendResult:
        if self.send_errors:
            raise self.send_errors.pop(0)
        body = message.graph_body()
        to = message.to  # as posted: E.164 with '+'
        reply_to = message.context.message_id if getattr(message, "context", None) is not None else None
        callback = message.biz_opaque_callback_data
        if isinstance(message, InteractiveMessage):
            buttons = tuple((b["reply"]["id"], b["reply"]["title"]) for b in body["interactive"]["action"]["buttons"])
            text = body["interactive"]["body"]["text"]
            self.sent.append(Sent("buttons", phone_number_id, to, text, reply_to, buttons, callback))
        else:
            self.sent.append(Sent("text", phone_number_id, to, body["text"]["body"], reply_to, callback=callback))
        return self._result(to.removeprefix("+"))

    def mark_as_read(self, phone_number_id: str, message_id: str, *, typing_indicator: bool = False) -> None:
        if self.read_errors:
            raise self.read_errors.pop(0)
        self.reads.append((phone_number_id, message_id, typing_indicator))


class OverlapSender(FakeSender):
    """A sender whose read receipt waits (up to 5 s) for the send to begin, as if Meta were slow to answer."""

    def __init__(self) -> None:
        super().__init__()
        self.send_started = threading.Event()
        self.overlapped = False

    def send_message(self, phone_number_id: str, message: AnyMessage) -> SendResult:
        self.send_started.set()
        return super().send_message(phone_number_id, message)

    def mark_as_read(self, phone_number_id: str, message_id: str, *, typing_indicator: bool = False) -> None:
        self.overlapped = self.send_started.wait(timeout=5)
        super().mark_as_read(phone_number_id, message_id, typing_indicator=typing_indicator)


# --- helpers -----------------------------------------------------------------------------------------


def _policy(**overrides: Any) -> ReplyPolicy:
    hours = BusinessHours.parse("sun-thu 09:00-18:00", "Asia/Jerusalem")
    return replace(ReplyPolicy(hours=hours), **overrides)


def _queued(message: dict[str, Any], *, phone_number_id: str = meta.DEMO_PHONE_NUMBER_ID) -> QueuedInbound:
    return QueuedInbound(
        wamid=message["id"],
        wa_id=message["from"],
        phone_number_id=phone_number_id,
        display_phone_number=meta.DEMO_DISPLAY_NUMBER,
        profile_name="Dana",
        timestamp=int(message["timestamp"]),
        received_at=iso(NOW),
        message=message,
    )


def _text(body: str, *, at: datetime = NOW - timedelta(seconds=5), wa_id: str = LEAD) -> QueuedInbound:
    return _queued(meta.text_message(wa_id, body, timestamp=int(at.timestamp())))


def _run(
    queued: QueuedInbound,
    store: FakeStore,
    sender: FakeSender,
    *,
    now: datetime = NOW,
    policy: ReplyPolicy | None = None,
    attempt: int = 1,
    time_left: float | None = None,
) -> Any:
    return respond(
        queued,
        store=store,
        sender=sender,
        policy=policy or _policy(),
        clock=lambda: now,
        attempt=attempt,
        time_left=(lambda: time_left) if time_left is not None else None,
    )


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def sender() -> FakeSender:
    return FakeSender()


# --- what gets answered ------------------------------------------------------------------------------


class TestReply:
    def test_a_hebrew_greeting_gets_one_hebrew_reply_quoting_it_from_the_receiving_number(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given a lead greeting us in Hebrew on a second business number
        queued = _queued(
            meta.text_message(LEAD, "היי, שלום!", timestamp=int(NOW.timestamp()) - 5), phone_number_id="998877"
        )
        # When the responder handles it
        report = _run(queued, store, sender)
        # Then the message is marked read with typing, and one Hebrew reply quotes it from that number
        assert report.outcome is ReplyOutcome.SENT
        assert sender.reads == [("998877", queued.wamid, True)]
        assert len(sender.sent) == 1
        reply = sender.sent[0]
        assert (reply.phone_number_id, reply.to, reply.reply_to) == ("998877", f"+{LEAD}", queued.wamid)
        assert any("\u05d0" <= char <= "\u05ea" for char in reply.body)
        assert reply.callback == f"{CALLBACK_PREFIX}{queued.wamid}"
        # And the intent is on the inbound message, the reply is recorded as an auto-reply that answered it
        assert store.annotations[queued.wamid]["intent"] == "greeting"
        assert store.annotations[queued.wamid]["language"] == "he"
        assert store.annotations[queued.wamid]["reply_status"] == "sent"
        [record] = store.outbound
        assert record.sent_by.value == "auto_reply"
        assert (record.intent, record.reply_to, record.awaits_response) == ("greeting", queued.wamid, False)
        assert record.text == reply.body
        assert store.claim_state(queued.wamid) == "done"

    def test_an_english_question_is_answered_in_english(self, store: FakeStore, sender: FakeSender) -> None:
        report = _run(_text("Hello, is anyone available to talk today?"), store, sender)
        assert report.outcome is ReplyOutcome.SENT
        assert report.inquiry.language.value == "en"
        assert not any("\u05d0" <= char <= "\u05ea" for char in sender.sent[0].body)

    def test_a_message_without_a_known_intent_stays_open_for_a_human(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        _run(_text("כמה עולה הדירה ברחוב הרצל?"), store, sender)
        [record] = store.outbound
        assert record.intent == "default"
        assert record.awaits_response is True

    def test_mark_as_read_can_be_turned_off(self, store: FakeStore, sender: FakeSender) -> None:
        _run(_text("שלום"), store, sender, policy=_policy(mark_as_read=False))
        assert sender.reads == []
        assert len(sender.sent) == 1

    def test_the_read_receipt_and_the_send_wait_on_meta_at_the_same_time(self, store: FakeStore) -> None:
        sender = OverlapSender()
        assert _run(_text("שלום"), store, sender).outcome is ReplyOutcome.SENT
        # mark_as_read waited for the send to start: one after the other, it would have given up instead.
        assert sender.overlapped
        assert len(sender.sent) == 1 and len(sender.reads) == 1

    def test_a_failed_read_receipt_does_not_cost_the_reply(self, store: FakeStore, sender: FakeSender) -> None:
        sender.read_errors.append(InvalidParameterError(code=100, http_status=400))
        assert _run(_text("שלום"), store, sender).outcome is ReplyOutcome.SENT
        assert len(sender.sent) == 1


class TestTappedReplies:
    """A tap is the lead speaking too: template quick-reply buttons and list choices are classified."""

    def test_a_template_quick_reply_button_saying_remove_me_opts_the_lead_out(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given a lead taps the "הסר אותי" quick-reply button of a marketing template we sent them
        tap = {
            "context": {"from": meta.DEMO_DISPLAY_NUMBER, "id": "wamid.TEMPLATE1"},
            "from": LEAD,
            "id": meta.new_wamid(),
            "timestamp": str(int(NOW.timestamp()) - 5),
            "type": "button",
            "button": {"payload": "footer-button-2", "text": "הסר אותי"},
        }
        # When the responder handles it
        report = _run(_queued(tap), store, sender)
        # Then the lead is opted out by those words and gets the one Hebrew confirmation, quoting the tap
        assert report.outcome is ReplyOutcome.SENT
        assert store.lead.opted_out is True
        [change] = store.preferences
        assert change.source.startswith("text:")
        [confirmation] = sender.sent
        assert confirmation.reply_to == tap["id"]
        assert any("\u05d0" <= char <= "\u05ea" for char in confirmation.body)
        assert [record.intent for record in store.outbound] == ["opt_out"]
        assert (store.annotations[tap["id"]]["intent"], store.annotations[tap["id"]]["language"]) == ("opt_out", "he")

    def test_a_list_choice_without_an_intent_gets_the_default_reply_and_waits_for_a_human(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given a lead picks a listing from a list message (its title asks nothing the bot can answer)
        choice = {
            "context": {"from": meta.DEMO_DISPLAY_NUMBER, "id": "wamid.LIST1"},
            "from": LEAD,
            "id": meta.new_wamid(),
            "timestamp": str(int(NOW.timestamp()) - 5),
            "type": "interactive",
            "interactive": {
                "type": "list_reply",
                "list_reply": {"id": "listing-4821", "title": "דירת 4 חד׳ ברמת גן", "description": "3,200,000 ₪"},
            },
        }
        # When the responder handles it
        report = _run(_queued(choice), store, sender)
        # Then the lead gets the polite "we will get back to you" in Hebrew, and the lead awaits a human
        assert report.outcome is ReplyOutcome.SENT
        [reply] = sender.sent
        assert (reply.kind, reply.reply_to) == ("text", choice["id"])
        assert any("\u05d0" <= char <= "\u05ea" for char in reply.body)
        [record] = store.outbound
        assert (record.intent, record.awaits_response) == ("default", True)
        assert store.annotations[choice["id"]]["intent"] == "default"


class TestNoReply:
    @pytest.mark.parametrize(
        "message",
        [
            {"type": "image", "image": {"id": "1", "mime_type": "image/jpeg", "caption": "שלום"}},
            {"type": "location", "location": {"latitude": 32.08, "longitude": 34.78}},
            {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}},
            {"type": "contacts", "contacts": [{"name": {"formatted_name": "Avi"}}]},
            {"type": "order", "order": {"catalog_id": "1", "product_items": []}},
            {"type": "unsupported", "unsupported": {"type": "poll_creation"}},
            {"type": "hologram", "hologram": {"id": "9"}},  # a type Meta adds later: queued as unknown
        ],
        ids=["image-with-caption", "location", "reaction", "contacts", "order", "unsupported", "new-type"],
    )
    def test_messages_that_ask_nothing_get_no_reply(
        self, store: FakeStore, sender: FakeSender, message: dict[str, Any]
    ) -> None:
        # Given a non-text message
        raw = {"from": LEAD, "id": meta.new_wamid(), "timestamp": str(int(NOW.timestamp())), **message}
        # When handled
        report = _run(_queued(raw), store, sender)
        # Then nothing is sent, not even a read receipt, and no claim is taken
        assert report.outcome is ReplyOutcome.NO_INTENT
        assert (sender.sent, sender.reads) == ([], [])
        assert store.annotations[raw["id"]] == {"reply_status": "no_intent"}
        assert store.claims == {}

    def test_system_messages_get_no_reply(self, store: FakeStore, sender: FakeSender) -> None:
        raw = {
            "from": LEAD,
            "id": meta.new_wamid(),
            "timestamp": str(int(NOW.timestamp())),
            "type": "system",
            "system": {"body": "User changed number", "type": "user_changed_number"},
        }
        assert _run(_queued(raw), store, sender).outcome is ReplyOutcome.SYSTEM_MESSAGE
        assert sender.sent == []

    def test_our_own_number_is_never_answered(self, store: FakeStore, sender: FakeSender) -> None:
        report = _run(_text("שלום", wa_id=meta.DEMO_DISPLAY_NUMBER), store, sender)
        assert report.outcome is ReplyOutcome.OWN_MESSAGE
        assert sender.sent == []

    def test_a_message_older_than_the_24_hour_window_is_not_answered(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given a greeting Meta stamped 24 hours and a minute ago (the queue was stuck)
        queued = _text("שלום", at=NOW - timedelta(hours=24, minutes=1))
        # When handled now
        report = _run(queued, store, sender)
        # Then no reply, but its intent is still recorded
        assert report.outcome is ReplyOutcome.OUTSIDE_WINDOW
        assert sender.sent == []
        assert store.annotations[queued.wamid]["intent"] == "greeting"
        assert store.annotations[queued.wamid]["reply_status"] == "outside_window"

    def test_a_human_who_wrote_within_12_hours_keeps_the_conversation(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        store.lead = LeadSnapshot(LEAD, last_human_outbound_at=iso(NOW - timedelta(hours=11, minutes=59)))
        assert _run(_text("שלום"), store, sender).outcome is ReplyOutcome.HUMAN_TAKEOVER
        assert sender.sent == []
        assert [claim.outcome for claim in store.claims.values()] == ["human_takeover"]

    def test_auto_replies_resume_once_the_takeover_period_is_over(self, store: FakeStore, sender: FakeSender) -> None:
        store.lead = LeadSnapshot(LEAD, last_human_outbound_at=iso(NOW - timedelta(hours=12, minutes=1)))
        assert _run(_text("שלום"), store, sender).outcome is ReplyOutcome.SENT


class TestExactlyOnce:
    def test_a_redelivered_message_is_not_answered_twice(self, store: FakeStore, sender: FakeSender) -> None:
        queued = _text("שלום")
        assert _run(queued, store, sender).outcome is ReplyOutcome.SENT
        # (after the cool-down, so only the claim can hold it back)
        again = _run(queued, store, sender, now=NOW + timedelta(minutes=40))
        assert again.outcome is ReplyOutcome.ALREADY_HANDLED
        assert len(sender.sent) == 1

    def test_a_live_claim_elsewhere_makes_the_record_retry_after_its_lease(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        queued = _text("שלום")
        store.claim_reply(queued.wamid, LEAD, owner="other", now=NOW, lease=timedelta(seconds=90))
        with pytest.raises(ReplyRetryableError) as raised:
            _run(queued, store, sender, now=NOW + timedelta(seconds=30))
        assert raised.value.retry_after_seconds == 60
        assert sender.sent == []

    def test_an_interrupted_send_that_reached_meta_is_recorded_not_resent(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given an earlier attempt that wrote its pending reply, called Graph, and died before finishing
        queued = _text("שלום")
        earlier = store.claim_reply(queued.wamid, LEAD, owner="dead", now=NOW, lease=timedelta(seconds=90))
        pending = PendingReply(kind="text", body="שלום! תודה על הפנייה.", intent="greeting", language="he")
        store.mark_reply_sending(earlier, pending, NOW)
        # and Meta's status webhook for that reply has arrived
        store.evidence[queued.wamid] = SentReply(wamid="wamid.EARLIER", recorded=False)
        # When the record is retried after the lease ran out
        report = _run(queued, store, sender, now=NOW + timedelta(minutes=3))
        # Then the earlier reply is recorded and nothing is sent again
        assert (report.outcome, report.adopted, report.reply_wamid) == (ReplyOutcome.SENT, True, "wamid.EARLIER")
        assert sender.sent == []
        assert [record.wamid for record in store.outbound] == ["wamid.EARLIER"]
        assert store.outbound[0].text == pending.body

    def test_an_interrupted_send_waits_for_meta_s_status_before_sending_again(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given an earlier attempt that called Graph at NOW and never learned whether Meta accepted the reply
        queued = _text("שלום")
        earlier = store.claim_reply(queued.wamid, LEAD, owner="dead", now=NOW, lease=timedelta(seconds=90))
        store.mark_reply_sending(earlier, PendingReply("text", "x", "greeting", "he"), NOW)

        # When the record comes back 3 minutes later and no status webhook for that reply has arrived yet
        with pytest.raises(ReplyRetryableError) as raised:
            _run(queued, store, sender, now=NOW + timedelta(minutes=3))

        # Then nothing is sent; the record returns when the 5-minute wait is over, the claim still knowing the send
        assert sender.sent == []
        assert raised.value.retry_after_seconds == 2 * 60 + 1
        assert store.claim_state(queued.wamid) == "in_progress"
        assert store.claims[queued.wamid].pending is not None

        # And when it comes back after the wait, still without evidence, the reply is sent again, once
        report = _run(queued, store, sender, now=NOW + timedelta(minutes=5, seconds=1))
        assert (report.outcome, report.resumed, report.adopted) == (ReplyOutcome.SENT, True, False)
        assert len(sender.sent) == 1

    def test_a_status_arriving_during_the_wait_is_adopted_not_resent(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given a send that got no answer, and a retry that found no evidence yet
        queued = _text("שלום")
        sender.send_errors.append(GraphUnavailableError("Graph API unreachable (ReadTimeout)"))
        with pytest.raises(ReplyRetryableError):
            _run(queued, store, sender)
        with pytest.raises(ReplyRetryableError):
            _run(queued, store, sender, now=NOW + timedelta(minutes=2))

        # When Meta's status webhook for that reply arrives before the next retry
        store.evidence[queued.wamid] = SentReply(wamid="wamid.LATE", recorded=False)
        report = _run(queued, store, sender, now=NOW + timedelta(minutes=5, seconds=2))

        # Then the lead got exactly the one reply Meta accepted, and it is recorded
        assert (report.outcome, report.adopted, report.reply_wamid) == (ReplyOutcome.SENT, True, "wamid.LATE")
        assert sender.sent == []  # nothing after the first, unanswered call
        assert [record.wamid for record in store.outbound] == ["wamid.LATE"]

    def test_a_store_failure_while_resuming_keeps_the_unconfirmed_send(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given an interrupted send whose wait is over
        queued = _text("שלום")
        earlier = store.claim_reply(queued.wamid, LEAD, owner="dead", now=NOW, lease=timedelta(seconds=90))
        store.mark_reply_sending(earlier, PendingReply("text", "x", "greeting", "he"), NOW)
        later = NOW + timedelta(minutes=6)
        # When DynamoDB fails in the middle of the resumed attempt
        store.fail_on = "get_lead_snapshot"
        from whatsapp_crm.errors import StoreUnavailableError

        with pytest.raises(StoreUnavailableError):
            _run(queued, store, sender, now=later)

        # Then the claim is not released: the next attempt still resumes it (and would adopt a late status)
        assert store.claim_state(queued.wamid) == "in_progress"
        store.fail_on = None
        store.evidence[queued.wamid] = SentReply(wamid="wamid.EARLIER", recorded=False)
        report = _run(queued, store, sender, now=later + timedelta(minutes=2))
        assert (report.outcome, report.adopted) == (ReplyOutcome.SENT, True)
        assert sender.sent == []

    def test_a_store_failure_before_sending_releases_the_claim(self, store: FakeStore, sender: FakeSender) -> None:
        from whatsapp_crm.errors import StoreUnavailableError

        queued = _text("שלום")
        store.fail_on = "get_lead_snapshot"
        with pytest.raises(StoreUnavailableError):
            _run(queued, store, sender)
        assert store.claim_state(queued.wamid) == "retry"
        store.fail_on = None
        assert _run(queued, store, sender).outcome is ReplyOutcome.SENT
        assert len(sender.sent) == 1

    def test_too_little_time_left_retries_at_once_without_claiming(self, store: FakeStore, sender: FakeSender) -> None:
        # Given an invocation with less time left than one Graph call may take
        queued = _text("שלום")
        # When the record comes up
        with pytest.raises(ReplyRetryableError) as raised:
            _run(queued, store, sender, policy=_policy(send_budget_seconds=14.0), time_left=5.0)
        # Then nothing was claimed or sent, and it asks to come back in a second
        assert raised.value.retry_after_seconds == 1
        assert (sender.sent, sender.reads, store.claims) == ([], [], {})

    def test_running_out_of_time_after_the_read_receipt_releases_the_claim(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        queued = _text("שלום")
        remaining = iter([30.0, 5.0])
        with pytest.raises(ReplyRetryableError):
            respond(
                queued,
                store=store,
                sender=sender,
                policy=_policy(send_budget_seconds=14.0),
                clock=lambda: NOW,
                time_left=lambda: next(remaining),
            )
        assert sender.sent == []
        assert store.claim_state(queued.wamid) == "retry"


class TestCooldown:
    def test_the_same_intent_is_answered_once_per_30_minutes(self, store: FakeStore, sender: FakeSender) -> None:
        assert _run(_text("שלום"), store, sender).outcome is ReplyOutcome.SENT
        later = NOW + timedelta(minutes=29)
        report = _run(_text("היי", at=later), store, sender, now=later)
        assert report.outcome is ReplyOutcome.COOLDOWN
        assert len(sender.sent) == 1

    def test_after_the_cooldown_the_same_intent_is_answered_again(self, store: FakeStore, sender: FakeSender) -> None:
        _run(_text("שלום"), store, sender)
        later = NOW + timedelta(minutes=31)
        assert _run(_text("היי", at=later), store, sender, now=later).outcome is ReplyOutcome.SENT

    def test_another_intent_is_not_held_back(self, store: FakeStore, sender: FakeSender) -> None:
        _run(_text("שלום"), store, sender)
        later = NOW + timedelta(minutes=5)
        assert _run(_text("מתי אתה זמין?", at=later), store, sender, now=later).outcome is ReplyOutcome.SENT
        assert len(sender.sent) == 2


class TestOptOut:
    def test_opt_out_is_confirmed_once_and_then_the_lead_hears_nothing(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given a lead who writes "הסר"
        stop = _text("הסר")
        # When handled
        report = _run(stop, store, sender)
        # Then the lead is opted out by those words, and gets exactly one confirmation
        assert report.outcome is ReplyOutcome.SENT
        [change] = store.preferences
        assert change.opted_out is True
        assert change.source.startswith("text:")
        assert len(sender.sent) == 1
        # And afterwards nothing, whatever they write, including another stop
        for minutes, body in ((40, "שלום"), (80, "אפשר לקבוע פגישה?"), (120, "הסר")):
            later = NOW + timedelta(minutes=minutes)
            outcome = _run(_text(body, at=later), store, sender, now=later).outcome
            assert outcome is ReplyOutcome.OPTED_OUT
        assert len(sender.sent) == 1

    def test_the_confirmation_is_sent_even_during_a_takeover_and_a_cooldown(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        store.lead = LeadSnapshot(
            LEAD, last_human_outbound_at=iso(NOW - timedelta(hours=1)), auto_reply_at={"opt_out": iso(NOW)}
        )
        assert _run(_text("STOP"), store, sender).outcome is ReplyOutcome.SENT

    def test_a_retry_of_the_opting_out_message_still_owes_its_confirmation(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given the first attempt recorded the opt-out and then failed to send (transient)
        stop = _text("הסר")
        sender.send_errors.append(TransientError(code=131000, http_status=500))
        with pytest.raises(ReplyRetryableError):
            _run(stop, store, sender)
        # When the record is retried
        report = _run(stop, store, sender, attempt=2)
        # Then the confirmation goes out
        assert report.outcome is ReplyOutcome.SENT
        assert len(sender.sent) == 1

    def test_start_clears_the_opt_out_and_replies_resume(self, store: FakeStore, sender: FakeSender) -> None:
        _run(_text("הסר"), store, sender)
        later = NOW + timedelta(minutes=1)
        assert _run(_text("START", at=later), store, sender, now=later).outcome is ReplyOutcome.SENT
        assert store.lead.opted_out is False
        after = NOW + timedelta(minutes=2)
        assert _run(_text("שלום", at=after), store, sender, now=after).outcome is ReplyOutcome.SENT

    def test_a_meta_stop_newer_than_start_wins(self, store: FakeStore, sender: FakeSender) -> None:
        # Given the lead pressed Meta's "stop" button after writing START (that event was recorded first)
        store.lead = LeadSnapshot(LEAD, opted_out=True, opt_state_at=iso(NOW), opt_state_source="user_preferences:x")
        start = _text("הרשמה", at=NOW - timedelta(seconds=30))
        assert _run(start, store, sender).outcome is ReplyOutcome.SUPERSEDED
        assert sender.sent == []


class TestMeetings:
    def test_a_meeting_request_is_answered_with_up_to_three_slot_buttons(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        report = _run(_text("שלום, אפשר לקבוע פגישה?"), store, sender)
        assert report.inquiry.intent.value == "meeting"
        [reply] = sender.sent
        assert reply.kind == "buttons"
        assert 1 <= len(reply.buttons) <= 3
        assert all(len(title) <= 20 for _, title in reply.buttons)
        assert store.outbound[0].message_type == "interactive"

    def test_tapping_a_slot_records_the_meeting_and_confirms_it_despite_the_cooldown(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given the lead got slot buttons a minute ago
        _run(_text("אפשר לקבוע פגישה?"), store, sender)
        slot_id, title = sender.sent[0].buttons[0]
        # When they tap the first one
        tapped_at = NOW + timedelta(minutes=1)
        tap = meta.button_reply(
            LEAD, slot_id, title, context_id=store.outbound[0].wamid, timestamp=int(tapped_at.timestamp())
        )
        report = _run(_queued(tap), store, sender, now=tapped_at)
        # Then the meeting is recorded on the lead and confirmed, quoting the tap
        assert report.outcome is ReplyOutcome.SENT
        [meeting] = store.meetings
        assert (meeting.slot_id, meeting.status, meeting.source_wamid) == (slot_id, "requested", tap["id"])
        assert meeting.requested_at == iso(tapped_at)
        confirmation = sender.sent[1]
        assert confirmation.kind == "text"
        assert confirmation.reply_to == tap["id"]

    def test_a_stale_slot_gets_a_polite_reoffer_and_no_meeting(self, store: FakeStore, sender: FakeSender) -> None:
        # Given buttons offered a week ago (their slots are in the past now)
        week_ago = NOW - timedelta(days=7)
        _run(_text("אפשר לקבוע פגישה?", at=week_ago), store, sender, now=week_ago)
        slot_id, title = sender.sent[0].buttons[0]
        # When the lead taps one today
        tap = meta.button_reply(LEAD, slot_id, title, context_id="wamid.OLD", timestamp=int(NOW.timestamp()))
        report = _run(_queued(tap), store, sender)
        # Then no meeting is recorded and a fresh offer is sent instead of an error
        assert report.outcome is ReplyOutcome.SENT
        assert store.meetings == []
        assert len(sender.sent) == 2


class TestGraphErrors:
    def test_a_transient_error_releases_the_claim_and_the_retry_sends_once(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        queued = _text("שלום")
        sender.send_errors.append(GraphUnavailableError(code=131000, http_status=500))
        with pytest.raises(ReplyRetryableError):
            _run(queued, store, sender)
        assert store.claim_state(queued.wamid) == "retry"
        assert store.outbound == []
        assert _run(queued, store, sender, attempt=2).outcome is ReplyOutcome.SENT
        assert len(sender.sent) == 1

    def test_refusals_count_against_health_but_meta_s_pacing_does_not(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # Given three leads' replies: one refused for a revoked token, one undeliverable, one paced by Meta
        token, undeliverable, paced = _text("שלום"), _text("היי"), _text("ערב טוב")
        sender.send_errors.append(AuthError(code=190, http_status=401))
        with pytest.raises(CredentialsRejectedError):
            _run(token, store, sender)
        sender.send_errors.append(UndeliverableError(code=131026, http_status=400))
        _run(undeliverable, store, sender)
        sender.send_errors.append(PairRateLimitError(code=131056, http_status=400))
        with pytest.raises(ReplyRetryableError):
            _run(paced, store, sender)
        # Then /health's refused counter sees the first two only
        assert store.refusals == [token.wamid, undeliverable.wamid]

    def test_pair_rate_limit_asks_for_meta_s_backoff(self, store: FakeStore, sender: FakeSender) -> None:
        sender.send_errors.append(PairRateLimitError(code=131056, http_status=400))
        with pytest.raises(ReplyRetryableError) as raised:
            _run(_text("שלום"), store, sender, attempt=3)
        assert raised.value.retry_after_seconds == 64

    def test_no_answer_from_meta_keeps_the_claim_for_an_evidence_check(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        queued = _text("שלום")
        sender.send_errors.append(GraphUnavailableError("Graph API unreachable (ReadTimeout)"))
        with pytest.raises(ReplyRetryableError) as raised:
            _run(queued, store, sender)
        assert store.claim_state(queued.wamid) == "in_progress"
        assert store.claims[queued.wamid].pending is not None
        # Back when Meta's status webhook for that reply has had its 5 minutes to arrive
        assert raised.value.retry_after_seconds == 5 * 60 + 1

    def test_a_rejected_token_is_reported_as_such_and_retried(self, store: FakeStore, sender: FakeSender) -> None:
        queued = _text("שלום")
        sender.send_errors.append(AuthError(code=190, http_status=401))
        with pytest.raises(CredentialsRejectedError):
            _run(queued, store, sender)
        assert store.claim_state(queued.wamid) == "retry"

    def test_a_token_refused_on_the_read_receipt_only_still_sends_the_one_reply(
        self, store: FakeStore, sender: FakeSender
    ) -> None:
        # The read receipt overlaps the send, so a refusal there cannot stop it; a refused token refuses the
        # send too (the test above), which is what retries.
        sender.read_errors.append(AuthError(code=190, http_status=401))
        queued = _text("שלום")
        assert _run(queued, store, sender).outcome is ReplyOutcome.SENT
        assert len(sender.sent) == 1
        assert store.claim_state(queued.wamid) == "done"

    @pytest.mark.parametrize(
        "error",
        [
            ReengagementRequiredError(code=131047, title="Re-engagement message", http_status=400),
            UndeliverableError(code=131026, title="Message undeliverable", http_status=400),
            MarketingOptOutError(code=131050, title="User stopped marketing", http_status=400),
            TemplateError(code=132001, title="Template name does not exist", http_status=404),
            InvalidParameterError(code=100, title="Invalid parameter", http_status=400),
        ],
        ids=["131047", "131026", "131050", "132001", "100"],
    )
    def test_permanent_refusals_are_recorded_and_not_retried(
        self, store: FakeStore, sender: FakeSender, error: GraphAPIError
    ) -> None:
        queued = _text("שלום")
        sender.send_errors.append(error)
        report = _run(queued, store, sender)
        assert (report.outcome, report.error_code) == (ReplyOutcome.FAILED, error.code)
        assert store.annotations[queued.wamid]["reply_error"]["code"] == error.code
        assert store.claim_state(queued.wamid) == "failed_permanent"
        assert store.outbound == []
        # And a redelivery does not try again
        assert _run(queued, store, sender).outcome is ReplyOutcome.ALREADY_HANDLED

    def test_a_marketing_opt_out_refusal_opts_the_lead_out(self, store: FakeStore, sender: FakeSender) -> None:
        sender.send_errors.append(MarketingOptOutError(code=131050, http_status=400))
        _run(_text("שלום"), store, sender)
        assert store.lead.opted_out is True
        assert store.preferences[-1].source == "graph:131050"


def test_policy_from_settings_bounds_a_send_by_the_graph_timeouts() -> None:
    from whatsapp_crm.settings import ResponderSettings

    settings = ResponderSettings(
        table_name="t",
        inbound_queue_url="q",
        graph_connect_timeout_seconds=3,
        graph_read_timeout_seconds=6,
        graph_max_attempts=2,
        graph_max_retry_seconds=2,
        auto_reply_cooldown_minutes=10,
        mark_as_read=False,
    )
    policy = ReplyPolicy.from_settings(settings)
    assert policy.send_budget_seconds == 20
    assert policy.cooldown == timedelta(minutes=10)
    assert policy.mark_as_read is False
    assert policy.booking_url is None
