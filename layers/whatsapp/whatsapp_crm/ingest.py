"""Webhook domain logic: verify, parse and durably record what Meta delivered, then hand messages on.

Ports are passed in (store, queue, clock) so tests hand in fakes and the handler builds the real ones.
Nothing here answers HTTP; the handler maps the outcome and exceptions to status codes.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from whatsapp_crm.clock import Clock, iso, iso_from_unix, plausible_unix, unix_from_iso, utc_now, utc_now_iso
from whatsapp_crm.errors import ConfigurationError, UnstorableError
from whatsapp_crm.graph.errors import MarketingOptOutError, error_class_for
from whatsapp_crm.handoff import QueuedInbound
from whatsapp_crm.numbers import is_ours
from whatsapp_crm.records import (
    InboundRecord,
    MessageError,
    PreferenceChange,
    StatusOutcome,
    StatusRank,
    StatusUpdate,
)
from whatsapp_crm.signature import SignatureVerdict, verify
from whatsapp_crm.webhook.models import GraphErrorInfo, InboundMessage, MessageType, StatusKind
from whatsapp_crm.webhook.parse import (
    InboundEvent,
    Notification,
    PreferenceEvent,
    StatusEvent,
    decode_body,
    parse_notification,
)

if TYPE_CHECKING:
    from whatsapp_crm.templates import TemplateStatusUpdate

PREVIEW_LENGTH = 80
# Compact, UTF-8 as is. allow_nan=False: a number that overflowed to infinity (1e400) has no JSON form;
# ValueError instead. (A private C encoder built once saved ~2 µs of an event that costs ~1.8 ms end to end,
# bench/bench_entry.py: not worth a CPython private API; docs/performance.md.)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)


def _compact_json(value: object) -> str:
    return _ENCODER.encode(value)


class ConversationWriter(Protocol):
    def record_inbound(self, record: InboundRecord) -> bool: ...
    def record_status(self, update: StatusUpdate) -> StatusOutcome: ...
    def record_preference(self, change: PreferenceChange) -> bool: ...
    def record_template_status(self, update: TemplateStatusUpdate) -> bool: ...


class InboundSink(Protocol):
    def enqueue(self, messages: Sequence[QueuedInbound]) -> None: ...


@dataclass(frozen=True, slots=True)
class UnstorablePart:
    """A message, status or preference DynamoDB refused for good, kept whole for a person to look at."""

    kind: str  # message, status, preference
    reason: str  # DynamoDB's error code
    raw_json: str  # the part exactly as Meta sent it (its JSON, compact)
    phone_number_id: str
    received_at: str


class DeadLetterSink(Protocol):
    def set_aside(self, part: UnstorablePart) -> str:
        """Keep the part durably; returns an id to find it by (logged, never the content)."""
        ...


class SignatureRejectedError(Exception):
    def __init__(self, verdict: SignatureVerdict) -> None:
        super().__init__(f"webhook signature {verdict.value}")
        self.verdict = verdict


class PayloadTooLargeError(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"body of {size} bytes exceeds {limit}")
        self.size = size
        self.limit = limit


@dataclass(slots=True)
class IngestReport:
    new_messages: int = 0
    duplicate_messages: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    preferences: int = 0
    template_updates: int = 0
    skipped_template_updates: list[TemplateStatusUpdate] = field(default_factory=list)
    unusable_parts: int = 0
    # DynamoDB refused them for good: each is in the dead letter (`dead_letter_ids`), the rest went on.
    unstorable: list[UnstorablePart] = field(default_factory=list)
    dead_letter_ids: list[str] = field(default_factory=list)
    # Messages and statuses addressed to a phone_number_id this deployment does not own: dropped, counted.
    foreign_parts: int = 0
    foreign_phone_number_ids: set[str] = field(default_factory=set)
    ignored_fields: list[str] = field(default_factory=list)
    value_errors: list[GraphErrorInfo] = field(default_factory=list)

    def count_status(self, outcome: str) -> None:
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1


def verify_subscription(params: Mapping[str, str] | None, verify_token: str) -> str | None:
    """The GET handshake: the challenge to echo when mode and token match, else None."""
    params = params or {}
    if params.get("hub.mode") != "subscribe" or not verify_token:
        return None
    given = params.get("hub.verify_token", "")
    if not hmac.compare_digest(given.encode("utf-8"), verify_token.encode("utf-8")):
        return None
    return params.get("hub.challenge", "")


def _first_error(errors: Sequence[GraphErrorInfo] | None) -> MessageError | None:
    if not errors:
        return None
    first = errors[0]
    return MessageError(code=first.code, title=first.title or first.message, details=first.details)


def _preview(message: InboundMessage, text: str | None) -> str:
    if text:
        return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"
    return f"[{_TYPE_NAMES[message.type]}]"


def _moment(meta_seconds: int | None, received_at: str) -> tuple[int, str]:
    """Meta's timestamp as (Unix seconds, ISO) when plausible, else the moment we received it."""
    received_unix = unix_from_iso(received_at)
    seconds = plausible_unix(meta_seconds, received_unix)
    return seconds, received_at if seconds == received_unix else iso_from_unix(seconds)


def inbound_record(event: InboundEvent, received_at: str) -> InboundRecord:
    message = event.message
    media = message.media
    text = message.text_content
    error = _first_error(message.errors)
    seconds, timestamp = _moment(message.timestamp, received_at)
    return InboundRecord(
        wamid=message.id,
        wa_id=message.from_,
        phone_number_id=event.metadata.phone_number_id,
        message_type=_TYPE_NAMES[message.type],
        timestamp=timestamp,
        meta_timestamp=None if seconds == message.timestamp else message.timestamp,
        received_at=received_at,
        raw_json=_compact_json(event.raw),
        profile_name=event.profile_name,
        text=text,
        media_id=media.id if media else None,
        mime_type=media.mime_type if media else None,
        reply_to=message.context.id if message.context else None,
        errors=(error,) if error else (),
        preview=_preview(message, text),
    )


def _handoff(event: InboundEvent, received_at: str) -> QueuedInbound:
    return QueuedInbound(
        wamid=event.message.id,
        wa_id=event.message.from_,
        phone_number_id=event.metadata.phone_number_id,
        display_phone_number=event.metadata.display_phone_number,
        profile_name=event.profile_name,
        # The responder's window runs from here: the plausible moment, never Meta's year 9999.
        timestamp=_moment(event.message.timestamp, received_at)[0],
        received_at=received_at,
        message=event.message,
    )


_RANKS = {kind: rank for kind in StatusKind if (rank := StatusRank.of(kind.value)) is not None}
# Enum.value is a Python-level property; a dict lookup per event is several times cheaper.
_STATUS_NAMES = {kind: kind.value for kind in StatusKind}
_TYPE_NAMES = {kind: kind.value for kind in MessageType}
_OUTCOME_NAMES = {outcome: outcome.value for outcome in StatusOutcome}


def status_update(event: StatusEvent, received_at: str) -> StatusUpdate | None:
    status = event.status
    kind = status.status
    rank = _RANKS.get(kind)
    if rank is None:
        return None
    return StatusUpdate(
        wamid=status.id,
        status=_STATUS_NAMES[kind],
        rank=rank,
        timestamp=_moment(status.timestamp, received_at)[1],
        received_at=received_at,
        recipient_wa_id=status.recipient_id,
        phone_number_id=event.metadata.phone_number_id,
        error=_first_error(status.errors) if kind is StatusKind.FAILED else None,
        pricing_category=status.pricing.category if status.pricing else None,
        biz_opaque_callback_data=status.biz_opaque_callback_data,
    )


def preference_change(event: PreferenceEvent, received_at: str) -> PreferenceChange | None:
    preference = event.preference
    choice = (preference.value or "").lower()
    if not preference.wa_id or choice not in ("stop", "resume"):
        return None
    return PreferenceChange(
        wa_id=preference.wa_id,
        opted_out=choice == "stop",
        # An opt change dated in the far future would outrank every later one: received_at instead.
        timestamp=_moment(preference.timestamp, received_at)[1],
        detail=preference.detail,
        source=f"user_preferences:{preference.category or 'unknown'}",
        phone_number_id=event.metadata.phone_number_id,
    )


def _marketing_stop(update: StatusUpdate) -> PreferenceChange | None:
    """A `failed` status with Meta's 131050 says the lead stopped marketing messages: an opt-out here too,
    as when the responder's or the send API's own send is refused with it."""
    error = update.error
    if error is None or update.recipient_wa_id is None or error.code is None:
        return None
    if not issubclass(error_class_for(error.code), MarketingOptOutError):
        return None
    return PreferenceChange.stopped_marketing(
        update.recipient_wa_id, update.timestamp, error.code, update.phone_number_id
    )


def _set_aside(
    report: IngestReport,
    dead_letters: DeadLetterSink | None,
    refusal: _Refusal,
    received_at: str,
) -> None:
    if dead_letters is None:
        raise ConfigurationError("no dead-letter queue for a part DynamoDB cannot store")
    part = UnstorablePart(
        refusal.kind, refusal.error.reason, _compact_json(refusal.raw), refusal.phone_number_id, received_at
    )
    report.dead_letter_ids.append(dead_letters.set_aside(part))
    report.unstorable.append(part)


def _drop_foreign(notification: Notification, own: tuple[str, ...], report: IngestReport) -> None:
    """Messages and statuses of numbers we do not own never become lead conversations or replies (the
    WABA's webhooks reach every subscribed app). Preferences stay: a lead's stop is honoured wherever."""
    if not own:
        return
    kept_messages = [event for event in notification.messages if is_ours(event.metadata.phone_number_id, own)]
    kept_statuses = [event for event in notification.statuses if is_ours(event.metadata.phone_number_id, own)]
    numbers = [event.metadata.phone_number_id for event in notification.messages]
    numbers += [event.metadata.phone_number_id for event in notification.statuses]
    dropped = [number for number in numbers if not is_ours(number, own)]
    if dropped:
        notification.messages, notification.statuses = kept_messages, kept_statuses
        report.foreign_parts += len(dropped)
        report.foreign_phone_number_ids.update(dropped)


# --- one POST's writes, several at a time -------------------------------------------------------------------
#
# Meta batches up to 1,000 updates in one POST and the webhook has 10 s; one write after another is ~7 ms of
# DynamoDB each, so a full batch would time out and be redelivered again and again. Parts are grouped by the
# item they race for (a lead's messages, one message's statuses, a lead's opt changes): a group is written
# in Meta's order on one thread, groups run side by side. Workers only write and return what happened; the
# calling thread fills the report, sets refused parts aside and enqueues, in Meta's order.

# botocore keeps 10 pooled connections per client (max_pool_connections): more threads than that would open
# and drop connections on every call instead of reusing them.
MAX_CONCURRENT_WRITES = 10


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A part DynamoDB refused for good, to set aside (UnstorablePart) once the writes are done."""

    kind: str
    error: UnstorableError
    raw: object
    phone_number_id: str


@dataclass(slots=True)
class _Written:
    """What writing one part came to. `failure`: not durably recorded (the POST answers 5xx)."""

    stored: bool | None = None  # a message: True new, False already stored
    handoff: QueuedInbound | None = None
    status: str | None = None  # a status: its StatusOutcome's name, or "unknown"
    preference_applied: bool = False
    unusable: bool = False
    refusal: _Refusal | None = None
    failure: Exception | None = None


def _write_one[Part](write: Callable[[Part], _Written], part: Part) -> _Written:
    try:
        return write(part)
    except Exception as error:  # re-raised by the caller after the other parts are written
        return _Written(failure=error)


def _write_in_groups[Part](
    parts: Sequence[Part],
    group_of: Callable[[Part], str],
    write: Callable[[Part], _Written],
    concurrency: int,
) -> list[_Written]:
    """`write` for every part, results in the parts' order. Within a group, parts are written in order and
    the first failure stops the rest of its group: a later message of a lead must not be stored and queued
    ahead of an earlier one that will only be stored on Meta's retry (FIFO order per lead)."""
    if len(parts) <= 1:  # the usual POST: one message or one status, no grouping to do
        return [_write_one(write, part) for part in parts]
    groups: dict[str, list[int]] = {}
    for index, part in enumerate(parts):
        groups.setdefault(group_of(part), []).append(index)
    results: list[_Written | None] = [None] * len(parts)

    def write_group(indexes: list[int]) -> None:
        for index in indexes:
            results[index] = written = _write_one(write, parts[index])
            if written.failure is not None:
                return

    if concurrency <= 1 or len(groups) <= 1:
        for indexes in groups.values():
            write_group(indexes)
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(groups)), thread_name_prefix="ingest") as pool:
            for future in [pool.submit(write_group, indexes) for indexes in groups.values()]:
                future.result()
    # A part left out after its group's failure is neither stored nor queued; Meta's retry brings it.
    return [written if written is not None else _Written() for written in results]


def _write_message(event: InboundEvent, store: ConversationWriter, received_at: str) -> _Written:
    try:
        record = inbound_record(event, received_at)
    except ValueError:
        # Nothing storable (a number like 1e400 that no JSON holds): skip the part, never a 5xx for it.
        return _Written(unusable=True)
    try:
        stored = store.record_inbound(record)
    except UnstorableError as error:
        return _Written(refusal=_Refusal("message", error, event.raw, record.phone_number_id))
    return _Written(stored=stored, handoff=_handoff(event, received_at))


def _write_status(event: StatusEvent, store: ConversationWriter, received_at: str) -> _Written:
    update = status_update(event, received_at)
    if update is None:
        return _Written(status="unknown")
    written = _Written()
    try:
        written.status = _OUTCOME_NAMES[store.record_status(update)]
        stop = _marketing_stop(update)
        written.preference_applied = stop is not None and store.record_preference(stop)
    except UnstorableError as error:
        raw = event.raw if event.raw is not None else event.status.model_dump(mode="json")
        written.refusal = _Refusal("status", error, raw, update.phone_number_id)
    return written


def _write_preference(event: PreferenceEvent, store: ConversationWriter, received_at: str) -> _Written:
    change = preference_change(event, received_at)
    try:
        return _Written(preference_applied=change is not None and store.record_preference(change))
    except UnstorableError as error:
        raw = event.raw or event.preference.model_dump(mode="json")
        return _Written(refusal=_Refusal("preference", error, raw, event.metadata.phone_number_id))


class _Tally:
    """Fills the report from what the writes came to, on the calling thread and in Meta's order; keeps
    the failures to raise once everything that could be written was."""

    def __init__(self, report: IngestReport, dead_letters: DeadLetterSink | None, received_at: str) -> None:
        self.report = report
        self.dead_letters = dead_letters
        self.received_at = received_at
        self.failures: list[Exception] = []

    def attempt(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as error:
            self.failures.append(error)

    def settle(self, results: list[_Written]) -> None:
        report = self.report
        for written in results:
            if written.failure is not None:
                self.failures.append(written.failure)
            if written.stored is not None:
                if written.stored:
                    report.new_messages += 1
                else:
                    report.duplicate_messages += 1
            if written.unusable:
                report.unusable_parts += 1
            if written.status is not None:
                report.count_status(written.status)
            if written.preference_applied:
                report.preferences += 1
            if written.refusal is not None:
                self._set_aside(written.refusal)

    def _set_aside(self, refusal: _Refusal) -> None:
        try:
            _set_aside(self.report, self.dead_letters, refusal, self.received_at)
        except Exception as error:  # no dead-letter queue, or it is down: raised after the other writes
            self.failures.append(error)


def _apply_template_updates(
    notification: Notification, store: ConversationWriter, report: IngestReport, received_at: str
) -> None:
    if not notification.template_updates:
        return
    # Imported here: only a template status webhook needs the template module (cold start, docs/performance.md).
    from whatsapp_crm.templates import status_update_from_event

    for template_event in notification.template_updates:
        template_update = status_update_from_event(
            template_event.waba_id, template_event.value, template_event.time, received_at
        )
        if template_update is None:
            report.unusable_parts += 1
        elif store.record_template_status(template_update):
            report.template_updates += 1
        else:
            # A template the cache never saw (the next sync lists it), or an event older than the cache.
            report.skipped_template_updates.append(template_update)


def record_notification(
    notification: Notification,
    store: ConversationWriter,
    queue: InboundSink,
    clock: Clock = utc_now,
    dead_letters: DeadLetterSink | None = None,
    own_phone_number_ids: tuple[str, ...] = (),
    concurrency: int | None = None,
) -> IngestReport:
    """Store every message once, enqueue every message (duplicates too), apply statuses and preferences.

    Raises StoreUnavailableError / QueueUnavailableError when anything was not durably handled, so the
    caller answers 5xx and Meta redelivers; every write here is idempotent, so redelivery is safe. What
    could be written is written first (and the stored messages queued), so the retry completes the rest.
    A part DynamoDB refuses for good (UnstorableError) is set aside in `dead_letters` and never queued;
    the rest of the delivery carries on, so one such part costs neither the others nor a week of retries.
    `concurrency`: how many writes run at once (MAX_CONCURRENT_WRITES unless given; 1: one after another).
    The store's client must be thread-safe.
    """
    # The real clock takes the cached path; an injected one (tests) is formatted as it is.
    received_at = utc_now_iso() if clock is utc_now else iso(clock())
    report = IngestReport(
        unusable_parts=notification.unusable_parts,
        ignored_fields=list(notification.ignored_fields),
        value_errors=list(notification.value_errors),
    )
    _drop_foreign(notification, own_phone_number_ids, report)
    tally = _Tally(report, dead_letters, received_at)
    concurrency = MAX_CONCURRENT_WRITES if concurrency is None else concurrency
    written_messages = _write_in_groups(
        notification.messages,
        lambda event: event.message.from_,
        lambda event: _write_message(event, store, received_at),
        concurrency,
    )
    tally.settle(written_messages)
    # A redelivered message is enqueued again on purpose: if an earlier attempt stored it and then
    # died before enqueueing, this is the only way its reply still happens. FIFO dedup and the
    # responder's claim keep it from being answered twice. Only stored messages are queued, each lead's in
    # Meta's order (a lead's messages after one that failed were not written).
    handoffs = [written.handoff for written in written_messages if written.handoff is not None]
    tally.attempt(lambda: queue.enqueue(handoffs))
    statuses = _write_in_groups(
        notification.statuses,
        lambda event: event.status.id,
        lambda event: _write_status(event, store, received_at),
        concurrency,
    )
    tally.settle(statuses)
    preferences = _write_in_groups(
        notification.preferences,
        lambda event: event.preference.wa_id or "",
        lambda event: _write_preference(event, store, received_at),
        concurrency,
    )
    tally.settle(preferences)
    tally.attempt(lambda: _apply_template_updates(notification, store, report, received_at))
    if tally.failures:
        raise tally.failures[0]
    return report


def authenticate(body: bytes, signature_header: str | None, app_secret: str, *, max_body_bytes: int) -> Notification:
    """Size, signature, then JSON: nothing of an unsigned body is parsed."""
    if len(body) > max_body_bytes:
        raise PayloadTooLargeError(len(body), max_body_bytes)
    verdict = verify(body, signature_header, app_secret)
    if verdict is not SignatureVerdict.VALID:
        raise SignatureRejectedError(verdict)
    return parse_notification(decode_body(body))


def receive_webhook(
    body: bytes,
    signature_header: str | None,
    app_secret: str,
    store: ConversationWriter,
    queue: InboundSink,
    *,
    max_body_bytes: int,
    clock: Clock = utc_now,
    dead_letters: DeadLetterSink | None = None,
) -> IngestReport:
    """The whole POST /webhook use case: authenticate, then record."""
    notification = authenticate(body, signature_header, app_secret, max_body_bytes=max_body_bytes)
    return record_notification(notification, store, queue, clock, dead_letters)
