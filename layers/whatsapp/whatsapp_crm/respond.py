"""The auto-reply use case: one inbound WhatsApp message in, at most one reply out, ever.

Order of work for one queued message (docs/responder.md draws it):
1. Messages nobody should answer are annotated and dropped: our own, system notices, anything outside
   the 24-hour window, and types that carry no question (media, location, reactions...).
2. A durable claim on the wamid is taken (the store makes it conditional), carrying the intent, language
   and cue. Whoever holds it decides and replies; everyone else sees `done` and stops, or sees a live lease
   and retries later.
3. The lead's state decides: opt-out / opt-in, the question "shall we remove you?" when the engine cannot
   tell whether the message is an opt-out (and the lead's tap answering it), human takeover, cool-down,
   meeting slot taps.
4. Mark as read with the typing indicator while sending (two Graph calls at once), and record the reply.

Ports are passed in: a ReplyStore, a ReplySender (GraphClient satisfies it) and a clock. Failures that
SQS should retry surface as ReplyRetryableError; permanent Graph refusals are recorded and returned.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from whatsapp_crm.clock import Clock, iso, iso_from_unix, parse_iso, utc_now
from whatsapp_crm.graph.errors import (
    AccountRestrictedError,
    AuthError,
    GraphAPIError,
    GraphPermissionError,
    InvalidMessageError,
    MarketingOptOutError,
    PairRateLimitError,
    PaymentError,
    PhoneNumberNotRegisteredError,
    RateLimitError,
)
from whatsapp_crm.handoff import QueuedInbound
from whatsapp_crm.health import counts_as_refused
from whatsapp_crm.intent.engine import Intent, IntentResult, Language, detect_intent
from whatsapp_crm.intent.reply_plans import (
    KEEP_ME_ID,
    OPT_OUT_ANSWER_PREFIX,
    REMOVE_ME_ID,
    ReplyPlan,
    plan_opt_out_kept,
    plan_opt_out_question,
    plan_reply,
    plan_slot_confirmation,
    plan_slot_reoffer,
)
from whatsapp_crm.numbers import is_ours, parse_phone_number_ids
from whatsapp_crm.observability import logger, mask_phone
from whatsapp_crm.phone import InvalidPhoneNumberError, normalize_phone
from whatsapp_crm.records import MessageError, OutboundRecord, PreferenceChange, SentBy
from whatsapp_crm.responder_records import (
    CALLBACK_PREFIX,
    Claim,
    ClaimStatus,
    LeadSnapshot,
    MeetingRequest,
    PendingReply,
    SentReply,
)
from whatsapp_crm.schedule import SLOT_ID_PREFIX, BusinessHours, parse_slot_id
from whatsapp_crm.send_models import AnyMessage, buttons_message, preview, readable_text, text_message
from whatsapp_crm.webhook.models import InboundMessage, MessageType

if TYPE_CHECKING:
    from whatsapp_crm.graph.client import SendResult
    from whatsapp_crm.settings import ResponderSettings

# Free-form replies are allowed for 24 hours after the lead's message (Meta's customer service window).
SERVICE_WINDOW = timedelta(hours=24)
# Longer than the function's 30-second timeout, so a live holder never loses its claim to a retry.
CLAIM_LEASE = timedelta(seconds=90)
# Meta stamps statuses with its own clock; look a little before our claim for the evidence of a send.
EVIDENCE_SLACK = timedelta(minutes=10)
# After a Graph call that got no answer, Meta's status webhook for the reply (if it accepted it) is awaited
# this long before the reply is sent again. Meta posts `sent` within seconds; its retries of a webhook we
# failed to take take longer, so the wait trades reply latency in this rare case against a double reply.
EVIDENCE_WAIT = timedelta(minutes=5)
# What the outbound record and the lead's cool-down stamp call our "shall we remove you?" question.
OPT_OUT_QUESTION = "opt_out_question"

_CLASSIFIED_TYPES = frozenset({MessageType.TEXT, MessageType.INTERACTIVE, MessageType.BUTTON})
# These refusals are about our account or configuration, not this message: retry (and reach the DLQ)
# so the messages can be redriven once someone fixes it, instead of being marked failed for good.
_CONFIGURATION_ERRORS = (GraphPermissionError, AccountRestrictedError, PhoneNumberNotRegisteredError, PaymentError)


class ReplyOutcome(StrEnum):
    SENT = "sent"
    NO_INTENT = "no_intent"  # media, location, contacts, reactions, orders, unsupported
    OWN_MESSAGE = "own_message"
    SYSTEM_MESSAGE = "system_message"
    OUTSIDE_WINDOW = "outside_window"
    ALREADY_HANDLED = "already_handled"
    OPTED_OUT = "opted_out"
    HUMAN_TAKEOVER = "human_takeover"
    COOLDOWN = "cooldown"
    SUPERSEDED = "superseded"  # a newer opt-in/opt-out was already recorded for the lead
    FAILED = "failed"  # Meta refused the reply for good; recorded on the message
    NOT_A_PHONE_NUMBER = "not_a_phone_number"  # the sender id cannot be a number to reply to (stored only)
    FOREIGN_NUMBER = "foreign_number"  # addressed to a phone_number_id this deployment does not own


class ReplyStore(Protocol):
    def annotate_inbound(self, wamid: str, fields: Mapping[str, Any]) -> bool: ...
    def claim_reply(
        self,
        wamid: str,
        wa_id: str,
        *,
        owner: str,
        now: datetime,
        lease: timedelta,
        annotation: Mapping[str, Any] | None = None,
    ) -> Claim: ...
    def mark_reply_sending(self, claim: Claim, pending: PendingReply, now: datetime) -> bool: ...
    def release_reply(self, claim: Claim, reason: str, now: datetime, error: MessageError | None = None) -> None: ...
    def finish_reply_sent(self, claim: Claim, record: OutboundRecord) -> bool: ...
    def finish_reply_skipped(self, claim: Claim, outcome: str, now: datetime) -> None: ...
    def finish_reply_failed(self, claim: Claim, error: MessageError, now: datetime) -> None: ...
    def find_sent_reply(self, wa_id: str, phone_number_id: str, inbound_wamid: str, since: str) -> SentReply | None: ...
    def record_refusal(self, at: str, discriminator: str) -> None: ...
    def get_lead_snapshot(self, wa_id: str, phone_number_id: str) -> LeadSnapshot: ...
    def record_preference(self, change: PreferenceChange) -> bool: ...
    def record_meeting_request(self, wa_id: str, phone_number_id: str, request: MeetingRequest) -> bool: ...


class ReplySender(Protocol):
    """The Graph client's transport (whatsapp_crm.graph.GraphClient): replies are the one outbound model."""

    def send_message(self, phone_number_id: str, message: AnyMessage) -> SendResult: ...

    def mark_as_read(self, phone_number_id: str, message_id: str, *, typing_indicator: bool = False) -> None: ...


class ReplyRetryableError(Exception):
    """No reply went out and none was recorded as final: the queue record must be retried.

    `retry_after_seconds` asks the caller to hide the record that long (rate limits) instead of the
    queue's default visibility timeout.
    """

    def __init__(self, reason: str, *, retry_after_seconds: int | None = None, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds
        self.code = code


class CredentialsRejectedError(ReplyRetryableError):
    """Meta refused the access token (190 / 0): every reply fails until someone rotates it."""


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    hours: BusinessHours
    cooldown: timedelta = timedelta(minutes=30)
    human_takeover: timedelta = timedelta(hours=12)
    mark_as_read: bool = True
    booking_url: str | None = None
    window: timedelta = SERVICE_WINDOW
    lease: timedelta = CLAIM_LEASE
    evidence_wait: timedelta = EVIDENCE_WAIT
    # Worst-case seconds of one Graph call with the client's retries; with less time left, don't start.
    send_budget_seconds: float = 0.0
    # The numbers this deployment owns: a message to any other is never answered (whatsapp_crm.numbers).
    own_phone_number_ids: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: ResponderSettings) -> ReplyPolicy:
        attempts = settings.graph_max_attempts
        per_call = (settings.graph_connect_timeout_seconds + settings.graph_read_timeout_seconds) * attempts
        return cls(
            hours=BusinessHours.parse(settings.business_hours, settings.business_timezone),
            cooldown=timedelta(minutes=settings.auto_reply_cooldown_minutes),
            human_takeover=timedelta(hours=settings.human_takeover_hours),
            mark_as_read=settings.mark_as_read,
            booking_url=settings.meeting_booking_url or None,
            evidence_wait=timedelta(seconds=settings.reply_evidence_wait_seconds),
            send_budget_seconds=per_call + settings.graph_max_retry_seconds,
            own_phone_number_ids=parse_phone_number_ids(settings.whatsapp_phone_number_ids),
        )


@dataclass(frozen=True, slots=True)
class Inquiry:
    """What the lead's message asks for."""

    intent: Intent
    language: Language
    cue: str | None
    slot_id: str | None = None  # a tapped meeting-slot button (current, stale or unknown)
    # The engine could not tell whether this is an opt-out: ask the lead (`intent` is the best other reading).
    confirm_opt_out: bool = False
    kept_subscription: bool = False  # the lead tapped "keep me" under our opt-out question


@dataclass(frozen=True, slots=True)
class ReplyReport:
    outcome: ReplyOutcome
    wamid: str
    inquiry: Inquiry | None = None
    reply_wamid: str | None = None
    error_code: int | None = None
    resumed: bool = False  # an earlier attempt was interrupted; see docs/responder.md
    adopted: bool = False  # that attempt's reply had reached Meta, so it was recorded, not resent

    def log_fields(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "wamid": self.wamid,
            "intent": self.inquiry.intent.value if self.inquiry else None,
            "language": self.inquiry.language.value if self.inquiry else None,
            "cue": self.inquiry.cue if self.inquiry else None,
            "reply_wamid": self.reply_wamid,
            "graph_error_code": self.error_code,
            "resumed": self.resumed,
            "adopted": self.adopted,
        }


TimeLeft = Callable[[], float]


# --- classification --------------------------------------------------------------------------------


def is_slot_tap(reply_id: str) -> bool:
    """A tap on one of our meeting-slot buttons, current or not: anything in our id format gets a slot answer."""
    return reply_id.startswith(SLOT_ID_PREFIX)


def classify(message: InboundMessage) -> Inquiry | None:
    """The lead's intent, for the message types a person types or taps; None for everything else."""
    if message.type not in _CLASSIFIED_TYPES:
        return None
    if message.type is MessageType.INTERACTIVE:
        choice = message.interactive.choice if message.interactive else None
        if choice is None:
            return None
        detected = detect_intent(choice.title)
        if choice.id and is_slot_tap(choice.id):
            return Inquiry(Intent.MEETING, detected.language, choice.id, slot_id=choice.id)
        if choice.id and choice.id.startswith(OPT_OUT_ANSWER_PREFIX):
            return _opt_out_answer(choice.id, detected.language)
        return _inquiry(detected)
    text = message.text_content
    if not text and message.button is not None:
        text = message.button.payload
    if not text:
        return None
    return _inquiry(detect_intent(text))


def _inquiry(detected: IntentResult) -> Inquiry:
    return Inquiry(detected.intent, detected.language, detected.cue, confirm_opt_out=detected.confirm_opt_out)


def _opt_out_answer(reply_id: str, language: Language) -> Inquiry:
    """A tap on our "shall we remove you?" buttons decides: "remove me" is an opt-out, "keep me" is not."""
    if reply_id == REMOVE_ME_ID:
        return Inquiry(Intent.OPT_OUT, language, reply_id)
    return Inquiry(Intent.DEFAULT, language, reply_id, kept_subscription=reply_id == KEEP_ME_ID)


def _unanswerable(
    queued: QueuedInbound, message: InboundMessage, now: datetime, window: timedelta, own: tuple[str, ...] = ()
) -> ReplyOutcome | None:
    if not is_ours(queued.phone_number_id, own):
        # Answering would send from another deployment's number with our token (the webhook drops these;
        # this holds for records queued before it did).
        logger.warning(
            "message to a number this deployment does not own", extra={"phone_number_id": queued.phone_number_id}
        )
        return ReplyOutcome.FOREIGN_NUMBER
    if message.type is MessageType.SYSTEM:
        return ReplyOutcome.SYSTEM_MESSAGE
    business_numbers = {queued.display_phone_number, queued.phone_number_id}
    if queued.wa_id in business_numbers:
        return ReplyOutcome.OWN_MESSAGE
    if not _is_phone_number(queued.wa_id):
        return ReplyOutcome.NOT_A_PHONE_NUMBER
    if now - datetime.fromtimestamp(queued.sent_unix, UTC) > window:
        return ReplyOutcome.OUTSIDE_WINDOW
    return None


def _is_phone_number(wa_id: str) -> bool:
    """Checked before any claim: a reply to an id that is no number (an emoji, 200 digits, Arabic-Indic
    digits) fails while building the request, after the claim was taken, and used to leave it in progress."""
    try:
        normalize_phone(wa_id)
    except InvalidPhoneNumberError as error:
        logger.warning(
            "sender id is not a phone number; stored, never answered",
            extra={"error_type": type(error).__name__, "reason": error.reason, "sender_id_length": len(wa_id)},
        )
        return False
    return True


def _inquiry_fields(inquiry: Inquiry) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "intent": inquiry.intent.value,
        "language": inquiry.language.value,
        "intent_cue": inquiry.cue,
    }
    if inquiry.confirm_opt_out:
        fields["opt_out_unclear"] = True
    return fields


# --- deciding ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    queued: QueuedInbound
    inquiry: Inquiry
    store: ReplyStore
    policy: ReplyPolicy
    now: datetime

    @property
    def message_time(self) -> str:
        return iso_from_unix(self.queued.sent_unix)


def _within(moment: str | None, period: timedelta, now: datetime) -> bool:
    return moment is not None and period > timedelta(0) and now - parse_iso(moment) < period


def _said(ctx: _Context, opted_out: bool) -> PreferenceChange:
    """The lead's own words (or tap) as an opt change: the business's, made through the receiving number."""
    cue = ctx.inquiry.cue or ("opt_out" if opted_out else "opt_in")
    return PreferenceChange(
        ctx.queued.wa_id,
        opted_out,
        ctx.message_time,
        detail=cue,
        source=f"text:{cue}",
        phone_number_id=ctx.queued.phone_number_id,
    )


def _opt_out(ctx: _Context, lead: LeadSnapshot) -> ReplyPlan | ReplyOutcome:
    change = _said(ctx, opted_out=True)
    # Opted out by something else before this message: the one confirmation went out back then.
    by_this_message = lead.opt_state_at == change.timestamp and lead.opt_state_source == change.source
    already = lead.opted_out and not by_this_message
    if not ctx.store.record_preference(change):
        return ReplyOutcome.SUPERSEDED
    if already:
        return ReplyOutcome.OPTED_OUT
    return plan_reply(Intent.OPT_OUT, ctx.inquiry.language, ctx.now, ctx.policy.hours, ctx.policy.booking_url)


def _opt_in(ctx: _Context, lead: LeadSnapshot) -> LeadSnapshot | ReplyOutcome:
    change = _said(ctx, opted_out=False)
    if not ctx.store.record_preference(change):
        # A newer stop (Meta's button or a later message) wins over this start.
        return ReplyOutcome.SUPERSEDED if lead.opted_out else lead
    return replace(lead, opted_out=False, opt_state_at=change.timestamp, opt_state_source=change.source)


def _slot_reply(ctx: _Context, slot_id: str) -> ReplyPlan:
    language, policy = ctx.inquiry.language, ctx.policy
    confirmation = plan_slot_confirmation(slot_id, language, ctx.now, policy.hours)
    slot_start = parse_slot_id(slot_id)
    if confirmation is None or slot_start is None:
        return plan_slot_reoffer(language, ctx.now, policy.hours, policy.booking_url)
    request = MeetingRequest(
        slot_id=slot_id, slot_start=iso(slot_start), requested_at=ctx.message_time, source_wamid=ctx.queued.wamid
    )
    ctx.store.record_meeting_request(ctx.queued.wa_id, ctx.queued.phone_number_id, request)
    return confirmation


def _decide(ctx: _Context) -> ReplyPlan | ReplyOutcome:
    """The reply to send, or why there is none. Records opt-out/opt-in and meeting requests on the lead."""
    inquiry, policy, now = ctx.inquiry, ctx.policy, ctx.now
    # The opt-out is the lead's (every number); takeover and cool-downs are this number's conversation's.
    lead = ctx.store.get_lead_snapshot(ctx.queued.wa_id, ctx.queued.phone_number_id)
    if inquiry.intent is Intent.OPT_OUT:
        # A confirmation is owed even during a human takeover: the lead asked us to stop, we say we did.
        return _opt_out(ctx, lead)
    if inquiry.intent is Intent.OPT_IN:
        resumed = _opt_in(ctx, lead)
        if isinstance(resumed, ReplyOutcome):
            return resumed
        lead = resumed
    if lead.opted_out:
        return ReplyOutcome.OPTED_OUT
    if inquiry.kept_subscription:
        return plan_opt_out_kept(inquiry.language)
    if inquiry.confirm_opt_out and not _within(lead.auto_reply_at.get(OPT_OUT_QUESTION), policy.cooldown, now):
        # Asked once (within the cool-down): a lead who may have asked us to stop is asked, even while a
        # human handles the conversation, rather than silenced or ignored on a guess.
        return plan_opt_out_question(inquiry.language)
    if _within(lead.last_human_outbound_at, policy.human_takeover, now):
        return ReplyOutcome.HUMAN_TAKEOVER
    if inquiry.slot_id is not None:
        # Confirmations and re-offers answer a tap on our own buttons: the cool-down never holds them.
        return _slot_reply(ctx, inquiry.slot_id)
    if _within(lead.auto_reply_at.get(inquiry.intent.value), policy.cooldown, now):
        return ReplyOutcome.COOLDOWN
    return plan_reply(inquiry.intent, inquiry.language, now, policy.hours, policy.booking_url)


# --- sending -----------------------------------------------------------------------------------------


def _buttons(plan: ReplyPlan) -> tuple[tuple[str, str], ...]:
    return tuple((button.id, button.title) for button in plan.buttons)


def _buttons_json(pending: PendingReply) -> str | None:
    """The offered buttons, compact ([[id, title], ...]): all the conversations API needs of the message as
    posted beyond its text. The full request echo repeated the body and pushed meeting replies over 1 KB,
    doubling each of their status writes (docs/table-design.md)."""
    if pending.kind != "buttons" or not pending.buttons:
        return None
    return json.dumps([list(button) for button in pending.buttons], ensure_ascii=False, separators=(",", ":"))


def _pending(plan: ReplyPlan, inquiry: Inquiry) -> PendingReply:
    asks = any(button.id == REMOVE_ME_ID for button in plan.buttons)
    return PendingReply(
        kind=plan.kind,
        body=plan.body,
        # The question's own cool-down stamp (last_auto_reply_at_opt_out_question) keeps it to one ask.
        intent=OPT_OUT_QUESTION if asks else inquiry.intent.value,
        language=inquiry.language.value,
        buttons=_buttons(plan),
    )


def _reply_message(queued: QueuedInbound, pending: PendingReply, booking_url: str | None) -> AnyMessage:
    """The reply as the one outbound model (pydantic's ValidationError if Meta would refuse it), quoting the
    lead's message, with the callback data that ties Meta's status webhooks to it."""
    to = normalize_phone(queued.wa_id).e164
    callback = f"{CALLBACK_PREFIX}{queued.wamid}"
    if pending.kind == "buttons" and pending.buttons:
        return buttons_message(to, pending.body, pending.buttons, reply_to=queued.wamid, callback=callback)
    preview_url = booking_url is not None and booking_url in pending.body
    return text_message(to, pending.body, preview_url=preview_url, reply_to=queued.wamid, callback=callback)


def _outbound(
    queued: QueuedInbound, pending: PendingReply, message: AnyMessage, reply_wamid: str, at: datetime
) -> OutboundRecord:
    return OutboundRecord(
        wamid=reply_wamid,
        wa_id=queued.wa_id,
        phone_number_id=queued.phone_number_id,
        message_type=message.type,
        timestamp=iso(at),
        sent_by=SentBy.AUTO_REPLY,
        text=readable_text(message),
        preview=preview(message),
        intent=pending.intent,
        reply_to=queued.wamid,
        # As sent to Meta, who echoes it in the statuses: the evidence of this reply, recorded or not.
        callback=f"{CALLBACK_PREFIX}{queued.wamid}",
        buttons_json=_buttons_json(pending),
        # Only the catch-all reply leaves the question open for a human; every other intent was answered.
        awaits_response=pending.intent == Intent.DEFAULT.value,
    )


def _refusal_title(error: InvalidMessageError | ValidationError) -> str:
    """What the message record says about a reply that never left: the broken rule, not the reply's text."""
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        place = ".".join(str(part) for part in first["loc"])
        return f"the reply breaks a rule of Meta's: {place}: {first['msg']}"
    return str(error)


def _mark_read(sender: ReplySender, queued: QueuedInbound) -> None:
    """Blue ticks and "typing…": a courtesy, so only a refused token stops the reply."""
    try:
        sender.mark_as_read(queued.phone_number_id, queued.wamid, typing_indicator=True)
    except AuthError:
        raise
    except (GraphAPIError, InvalidMessageError) as error:
        logger.warning(
            "mark-as-read failed; replying anyway",
            extra={"wamid": queued.wamid, "graph_error_code": getattr(error, "code", None)},
        )


def _ambiguous(error: GraphAPIError) -> bool:
    """No answer from Meta (timeout, dropped connection, 2xx without an id): it may have accepted the send."""
    return error.code is None and (error.http_status is None or 200 <= error.http_status < 300)


def _retry_after(error: RateLimitError, attempt: int) -> int:
    hinted = error.retry_after_seconds or 0
    if isinstance(error, PairRateLimitError):
        # Meta asks for 4^n seconds between retries to the same user.
        return max(hinted, PairRateLimitError.delay_for_attempt(attempt))
    return max(hinted, 1)


def _message_error(error: GraphAPIError) -> MessageError:
    return MessageError(code=error.code, title=error.title, details=error.details)


@dataclass(frozen=True, slots=True)
class _Sending:
    queued: QueuedInbound
    inquiry: Inquiry
    claim: Claim
    store: ReplyStore
    sender: ReplySender
    policy: ReplyPolicy
    clock: Clock
    attempt: int


def _graph_failure(job: _Sending, error: GraphAPIError) -> ReplyReport:
    """Permanent refusals are recorded and returned; anything worth retrying is raised."""
    store, claim, now = job.store, job.claim, job.clock()
    if counts_as_refused(error):
        store.record_refusal(iso(now), job.queued.wamid)
    retry_class: type[ReplyRetryableError] = ReplyRetryableError
    retry_after: int | None = None
    if isinstance(error, AuthError):
        retry_class = CredentialsRejectedError
    elif isinstance(error, RateLimitError):
        retry_after = _retry_after(error, job.attempt)
    elif _ambiguous(error):
        # Keep the claim and come back once Meta's status webhook had time to arrive: the retry resumes the
        # expired claim and looks for evidence of this send before resending.
        raise ReplyRetryableError(
            "no answer from the Graph API; the reply may have been accepted",
            retry_after_seconds=_seconds_until_evidence_check(job.policy, job.policy.evidence_wait),
        ) from error
    elif not (error.retryable or isinstance(error, _CONFIGURATION_ERRORS)):
        store.finish_reply_failed(claim, _message_error(error), now)
        if isinstance(error, MarketingOptOutError):
            stop = PreferenceChange.stopped_marketing(
                job.queued.wa_id, iso(now), error.code, job.queued.phone_number_id
            )
            store.record_preference(stop)
        return ReplyReport(ReplyOutcome.FAILED, job.queued.wamid, job.inquiry, error_code=error.code)
    store.release_reply(claim, type(error).__name__, now, _message_error(error))
    raise retry_class(
        f"Graph API refused the reply: {type(error).__name__}", retry_after_seconds=retry_after, code=error.code
    ) from error


def _seconds_until_evidence_check(policy: ReplyPolicy, wait: timedelta) -> int:
    # Not before the lease we hold runs out either: a retry inside it would only find the claim held.
    return int(max(wait, policy.lease).total_seconds()) + 1


class _AwaitingEvidenceError(ReplyRetryableError):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            "an earlier attempt's reply may have reached Meta; waiting for its status webhook before resending",
            retry_after_seconds=retry_after_seconds,
        )


class _DeadlineError(ReplyRetryableError):
    def __init__(self) -> None:
        # Back in a second, in the next invocation, rather than after the queue's 180-second timeout.
        super().__init__("too little time left in this invocation to send safely", retry_after_seconds=1)


def _out_of_time(time_left: TimeLeft | None, policy: ReplyPolicy) -> bool:
    """Less time left than one Graph call may take: starting now could be cut off mid-send."""
    return time_left is not None and time_left() < policy.send_budget_seconds


class _ReadReceipt:
    """Mark-as-read on a thread of its own, overlapping the send: the two Graph waits were the responder's
    longest wait, one after the other (docs/cost.md). Started first, so Meta usually sees it first."""

    def __init__(self, sender: ReplySender, queued: QueuedInbound) -> None:
        self._error: AuthError | None = None
        self._thread = threading.Thread(target=self._run, args=(sender, queued), name="mark-as-read", daemon=True)
        self._thread.start()

    def _run(self, sender: ReplySender, queued: QueuedInbound) -> None:
        try:
            _mark_read(sender, queued)
        except AuthError as error:
            self._error = error
        except Exception as error:  # a courtesy: nothing it raises may cost the lead the reply
            logger.warning("mark-as-read failed; replying anyway", extra={"error_type": type(error).__name__})

    def refused_token(self) -> AuthError | None:
        """Waits for the call; the AuthError if Meta refused the token."""
        self._thread.join()
        return self._error


def _send(job: _Sending, pending: PendingReply, time_left: TimeLeft | None) -> ReplyReport:
    queued, store, claim = job.queued, job.store, job.claim
    if _out_of_time(time_left, job.policy):
        store.release_reply(claim, "deadline", job.clock())
        raise _DeadlineError()
    receipt = _ReadReceipt(job.sender, queued) if job.policy.mark_as_read else None
    try:
        if not store.mark_reply_sending(claim, pending, job.clock()):
            raise ReplyRetryableError("the reply claim was taken over before sending")
        message = _reply_message(queued, pending, job.policy.booking_url)
        result = job.sender.send_message(queued.phone_number_id, message)
    except (InvalidMessageError, ValidationError) as error:
        store.finish_reply_failed(claim, MessageError(code=None, title=_refusal_title(error)), job.clock())
        return ReplyReport(ReplyOutcome.FAILED, queued.wamid, job.inquiry)
    except GraphAPIError as error:
        return _graph_failure(job, error)
    finally:
        refused = receipt.refused_token() if receipt is not None else None
    if refused is not None:
        logger.warning("mark-as-read refused the access token; the reply itself was accepted")
    record = _outbound(queued, pending, message, result.message_id, job.clock())
    if not store.finish_reply_sent(claim, record):
        logger.error(
            "reply claim lost while sending; another attempt may also have replied", extra={"wamid": queued.wamid}
        )
    return ReplyReport(
        ReplyOutcome.SENT,
        queued.wamid,
        job.inquiry,
        reply_wamid=result.message_id,
        resumed=claim.status is ClaimStatus.RESUMED,
    )


def _adopt_earlier_send(job: _Sending) -> ReplyReport | None:
    """An earlier holder called Graph without learning the outcome: if Meta accepted that reply, record it
    instead of resending; if it may still be on its way, wait for it (keeping the claim)."""
    claim, queued = job.claim, job.queued
    if claim.pending is None:
        return None  # it never reached the Graph call
    since = iso(parse_iso(claim.first_claimed_at) - EVIDENCE_SLACK)
    evidence = job.store.find_sent_reply(queued.wa_id, queued.phone_number_id, queued.wamid, since)
    if evidence is None:
        if claim.sending_at is not None:
            waited = job.clock() - parse_iso(claim.sending_at)
            if waited < job.policy.evidence_wait:
                raise _AwaitingEvidenceError(
                    _seconds_until_evidence_check(job.policy, job.policy.evidence_wait - waited)
                )
        logger.warning("resending a reply whose earlier attempt was interrupted", extra={"wamid": queued.wamid})
        return None
    message = _reply_message(queued, claim.pending, job.policy.booking_url)
    job.store.finish_reply_sent(claim, _outbound(queued, claim.pending, message, evidence.wamid, job.clock()))
    return ReplyReport(
        ReplyOutcome.SENT, queued.wamid, job.inquiry, reply_wamid=evidence.wamid, resumed=True, adopted=True
    )


def _release_quietly(store: ReplyStore, claim: Claim, now: datetime) -> None:
    try:
        store.release_reply(claim, "interrupted", now)
    except Exception:  # the original failure matters more, and the lease runs out anyway
        logger.warning("could not release the reply claim", extra={"wamid": claim.wamid})


def _claimed(
    queued: QueuedInbound, inquiry: Inquiry, store: ReplyStore, policy: ReplyPolicy, clock: Clock
) -> Claim | ReplyReport:
    # The intent goes with the claim (one write); a claim held by another attempt already carries it.
    claim = store.claim_reply(
        queued.wamid,
        queued.wa_id,
        owner=uuid.uuid4().hex,
        now=clock(),
        lease=policy.lease,
        # The number and the message's time let the reply record stand on its own (meeting.requested).
        annotation={
            **_inquiry_fields(inquiry),
            "phone_number_id": queued.phone_number_id,
            "message_at": iso_from_unix(queued.sent_unix),
        },
    )
    if claim.status is ClaimStatus.HANDLED:
        return ReplyReport(ReplyOutcome.ALREADY_HANDLED, queued.wamid, inquiry)
    if claim.status is ClaimStatus.HELD:
        wait = max(1, (claim.lease_expires_at or 0) - int(clock().timestamp()))
        raise ReplyRetryableError("another consumer is replying to this message", retry_after_seconds=wait)
    return claim


def respond(
    queued: QueuedInbound,
    *,
    store: ReplyStore,
    sender: ReplySender,
    policy: ReplyPolicy,
    clock: Clock = utc_now,
    attempt: int = 1,
    time_left: TimeLeft | None = None,
) -> ReplyReport:
    """Answer one queued inbound message at most once. Raises ReplyRetryableError when SQS should retry."""
    message = queued.message
    now = clock()
    unanswerable = _unanswerable(queued, message, now, policy.window, policy.own_phone_number_ids)
    inquiry = classify(message) if unanswerable is not ReplyOutcome.SYSTEM_MESSAGE else None
    if unanswerable is not None or inquiry is None:
        outcome = unanswerable or ReplyOutcome.NO_INTENT
        fields = {**(_inquiry_fields(inquiry) if inquiry else {}), "reply_status": outcome.value}
        store.annotate_inbound(queued.wamid, fields)
        return ReplyReport(outcome, queued.wamid, inquiry)
    if _out_of_time(time_left, policy):
        raise _DeadlineError()
    claimed = _claimed(queued, inquiry, store, policy, clock)
    if isinstance(claimed, ReplyReport):
        return claimed
    job = _Sending(queued, inquiry, claimed, store, sender, policy, clock, attempt)
    try:
        adopted = _adopt_earlier_send(job) if claimed.status is ClaimStatus.RESUMED else None
        if adopted is not None:
            return adopted
        decision = _decide(_Context(queued, inquiry, store, policy, clock()))
        if isinstance(decision, ReplyOutcome):
            store.finish_reply_skipped(claimed, decision.value, clock())
            return ReplyReport(decision, queued.wamid, inquiry, resumed=claimed.status is ClaimStatus.RESUMED)
    except BaseException:
        # A claim carrying an earlier holder's unconfirmed send is kept, never released: released, it would
        # be acquired afresh and the reply sent without looking for evidence of that send.
        if claimed.pending is None:
            _release_quietly(store, claimed, clock())
        raise
    logger.debug("auto-reply planned", extra={"wamid": queued.wamid, "lead": mask_phone(queued.wa_id)})
    return _send(job, _pending(decision, inquiry), time_left)
