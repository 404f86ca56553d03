"""Sending a message a person wrote in the CRM: the rules before Meta, the call, and the record after.

Order matters and is cheapest-first: the number must be real, the lead must not have opted out, free-form
kinds need the 24-hour window the lead opened, then the durable rate limits take one unit each. Only then
is Meta called; only what Meta accepted is recorded (as sent by a human, which starts the responder's
takeover period and clears `awaits_response`), merged with any status webhook that got there first.

Graph errors propagate unchanged: the handler maps each class to one HTTP answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from whatsapp_crm.clock import Clock, iso
from whatsapp_crm.errors import ConfigurationError, StoreUnavailableError
from whatsapp_crm.graph.errors import GraphAPIError, MarketingOptOutError
from whatsapp_crm.health import RefusalCounter, counts_as_refused
from whatsapp_crm.numbers import is_ours, sending_number
from whatsapp_crm.observability import logger, mask_phone
from whatsapp_crm.phone import InvalidPhoneNumberError, normalize_phone
from whatsapp_crm.ratelimit import RateCounter, RateLimit, acquire
from whatsapp_crm.records import OutboundRecord, PreferenceChange, SentBy
from whatsapp_crm.send_models import (
    AnyMessage,
    TemplateMessage,
    media_id,
    preview,
    readable_text,
    reply_to,
    request_json,
    requires_open_window,
)
from whatsapp_crm.service_window import window_closes_at, window_is_open
from whatsapp_crm.templates import TemplateCatalogue, check_template


class SentMessage(Protocol):
    """What Meta answered to an accepted send (whatsapp_crm.graph.SendResult)."""

    @property
    def message_id(self) -> str: ...
    @property
    def wa_id(self) -> str | None: ...
    @property
    def message_status(self) -> str | None: ...


class MessageSender(Protocol):
    """The Graph client's one transport (whatsapp_crm.graph.GraphClient.send_message)."""

    def send_message(self, phone_number_id: str, message: AnyMessage) -> SentMessage: ...


class OutboundStore(Protocol):
    def get_lead(self, wa_id: str) -> dict[str, Any] | None: ...
    def record_outbound(self, record: OutboundRecord) -> bool: ...
    def record_preference(self, change: PreferenceChange) -> bool: ...


class InvalidRecipientError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"'to' is not a usable phone number: {reason}")
        self.reason = reason


class ForeignSenderError(ValueError):
    """`from_phone_number_id` names a number this deployment does not own (WhatsAppPhoneNumberIds)."""

    def __init__(self, phone_number_id: str) -> None:
        super().__init__(f"{phone_number_id} is not one of this deployment's WhatsApp numbers (WhatsAppPhoneNumberIds)")
        self.phone_number_id = phone_number_id


class RecipientOptedOutError(Exception):
    def __init__(self, opted_out_at: str | None) -> None:
        super().__init__("the recipient opted out of messages from this business")
        self.opted_out_at = opted_out_at


class WindowClosedError(Exception):
    """A free-form message outside the 24 hours after the lead's last message: only a template may go."""

    def __init__(self, last_inbound_at: str | None) -> None:
        super().__init__("outside the 24-hour customer service window")
        self.last_inbound_at = last_inbound_at
        self.window_closed_at = window_closes_at(last_inbound_at)


@dataclass(frozen=True, slots=True)
class SendPolicy:
    default_phone_number_id: str
    default_region: str
    per_recipient_per_minute: int
    per_number_per_second: int
    # Every number this deployment owns (the default first): a send never goes from any other.
    own_phone_number_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SendAccepted:
    message_id: str
    wa_id: str
    to: str
    message_status: str | None
    recorded: bool
    status: str = "accepted"


def _check_rules(message: AnyMessage, lead: Mapping[str, Any] | None, now: datetime, phone_number_id: str) -> None:
    # An opt-out blocks every kind, not only templates: a lead who said stop is not messaged from the CRM,
    # even inside a window their "stop" itself opened. It is the business's, so it holds for every number.
    if lead and lead.get("opted_out"):
        raise RecipientOptedOutError(lead.get("opted_out_at"))
    if requires_open_window(message):
        # The window is per business number: each conversation's (the lead with one of our numbers) is
        # opened by the lead's messages to that number only. A lead stored before numbers were recorded
        # has one conversation, under "".
        conversations = (lead or {}).get("conversations") or {}
        conversation = conversations.get(phone_number_id) or conversations.get("") or {}
        last_inbound_at = conversation.get("last_inbound_at")
        if not window_is_open(last_inbound_at, now):
            raise WindowClosedError(last_inbound_at)


def _sending_number(message: AnyMessage, lead: Mapping[str, Any] | None, policy: SendPolicy) -> str:
    """The caller's `from_phone_number_id` when it is ours (else ForeignSenderError); otherwise the number the
    lead last wrote to (the store's view of the lead names it), if ours, else the first listed."""
    asked = message.from_phone_number_id
    if asked is not None:
        if not is_ours(asked, policy.own_phone_number_ids):
            raise ForeignSenderError(asked)
        return asked
    last_number = (lead or {}).get("last_phone_number_id")
    received_on = last_number if isinstance(last_number, str) else None
    phone_number_id = sending_number(received_on, policy.own_phone_number_ids, policy.default_phone_number_id)
    if not phone_number_id:
        raise ConfigurationError("no WHATSAPP_PHONE_NUMBER_IDS to send from")
    return phone_number_id


def send_message(
    message: AnyMessage,
    *,
    policy: SendPolicy,
    store: OutboundStore,
    sender: MessageSender,
    limiter: RateCounter,
    clock: Clock,
    refusals: RefusalCounter | None = None,
    templates: TemplateCatalogue | None = None,
    callback: str | None = None,
    before_send: Callable[[str, str], None] | None = None,
) -> SendAccepted:
    """The rules, the Graph call and the record. `callback` is the `biz_opaque_callback_data` to send when the
    caller set none (an idempotent send's evidence); `before_send(wa_id, phone_number_id)` runs right before
    the Graph call."""
    try:
        recipient = normalize_phone(message.to, policy.default_region)
    except InvalidPhoneNumberError as error:
        raise InvalidRecipientError(error.reason) from None
    lead = store.get_lead(recipient.wa_id)
    now = clock()
    phone_number_id = _sending_number(message, lead, policy)
    _check_rules(message, lead, now, phone_number_id)
    # Before the rate limits: a template Meta would refuse must not spend the lead's or the number's budget.
    if templates is not None and isinstance(message, TemplateMessage):
        check_template(message.template, templates)
    acquire(
        limiter,
        [
            (RateLimit("recipient", policy.per_recipient_per_minute, 60), recipient.wa_id),
            (RateLimit("number", policy.per_number_per_second, 1), phone_number_id),
        ],
        now,
    )
    outgoing = message.addressed_to(recipient.e164, callback=callback)
    if before_send is not None:
        before_send(recipient.wa_id, phone_number_id)
    try:
        result = sender.send_message(phone_number_id, outgoing)
    except GraphAPIError as error:
        _learn_from_refusal(error, recipient.wa_id, phone_number_id, store, refusals, iso(now))
        raise
    wa_id = result.wa_id or recipient.wa_id
    record = OutboundRecord(
        wamid=result.message_id,
        wa_id=wa_id,
        phone_number_id=phone_number_id,
        message_type=message.type,
        timestamp=iso(clock()),
        sent_by=SentBy.HUMAN,
        text=readable_text(message),
        preview=preview(message),
        reply_to=reply_to(message),
        media_id=media_id(message),
        request_json=request_json(outgoing),
        message_status=result.message_status,
        lead_id=message.lead_id,
        awaits_response=False,
        callback=outgoing.biz_opaque_callback_data,
    )
    recorded = _record(store, record)
    return SendAccepted(
        message_id=result.message_id,
        wa_id=wa_id,
        to=recipient.e164,
        message_status=result.message_status,
        recorded=recorded,
    )


def _learn_from_refusal(
    error: GraphAPIError,
    wa_id: str,
    phone_number_id: str,
    store: OutboundStore,
    refusals: RefusalCounter | None,
    at: str,
) -> None:
    """What a refusal tells us beyond this request: the health counter, and Meta's word that the lead
    stopped marketing messages (131050), which opts them out here too, as the responder and webhook do."""
    if refusals is not None and counts_as_refused(error):
        refusals.record_refusal(at, wa_id)
    if isinstance(error, MarketingOptOutError):
        change = PreferenceChange.stopped_marketing(wa_id, at, error.code, phone_number_id)
        try:
            store.record_preference(change)
        except StoreUnavailableError:
            logger.warning("could not record Meta's opt-out of a lead", extra={"wa_id": mask_phone(wa_id)})


def _record(store: OutboundStore, record: OutboundRecord) -> bool:
    """Meta has the message already: a failed write must not turn into an error that invites a resend.

    The status webhooks will still create the message (type `unknown`) and move its status.
    """
    try:
        store.record_outbound(record)
        return True
    except StoreUnavailableError:
        logger.exception(
            "message sent but not recorded",
            extra={"wamid": record.wamid, "wa_id": mask_phone(record.wa_id)},
        )
        return False
