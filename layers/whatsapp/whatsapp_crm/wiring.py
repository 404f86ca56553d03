"""Where the functions get their adapters: the one wiring module (aws-lambda-handler-cookbook's
`@lru_cache def get_dal_handler(table_name)`).

Two halves:

- **Factories of the real adapters**, one per adapter, cached for the life of the execution environment and
  keyed by the setting they are built from (a table name, a queue URL, a bucket, the access token, a settings
  model). Each imports its adapter module on first call, so a function pays only for the adapters it uses.
- **One `...Ports` class per function**, which the handler asks for the adapters of an invocation. Each port
  is the test double handed in for it, when there is one, else the real adapter from the factories. Doubles
  are handed in one way for every function: `handle(event, context, **doubles)` in the function's app.py runs
  the invocation inside `handed_in(doubles)`; the keyword names are the `...Doubles` TypedDicts below.

The domain never reads this module: its functions take their ports as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

from whatsapp_crm.clock import Clock, utc_now
from whatsapp_crm.errors import ConfigurationError
from whatsapp_crm.settings import (
    ConversationsSettings,
    EventsSettings,
    MediaSettings,
    ResponderSettings,
    SecretSettings,
    SendSettings,
    TemplatesSettings,
    WebhookSettings,
)

if TYPE_CHECKING:
    from whatsapp_crm.domain_events import EventOptions
    from whatsapp_crm.graph.client import GraphClient, GraphClientSettings
    from whatsapp_crm.health import HealthStore, RefusalCounter
    from whatsapp_crm.idempotency import IdempotencyStore
    from whatsapp_crm.ingest import ConversationWriter, DeadLetterSink, InboundSink
    from whatsapp_crm.media_archive import (
        ArchiveRequests,
        DownloadLinks,
        MediaLedger,
        MediaObjects,
        MediaSource,
    )
    from whatsapp_crm.media_upload import MediaUploader
    from whatsapp_crm.outbound import MessageSender, OutboundStore, SendPolicy
    from whatsapp_crm.outbox import EventDeadLetters, EventPublisher
    from whatsapp_crm.ratelimit import RateCounter
    from whatsapp_crm.read_api import ConversationReader, CursorSigner, ReadReceiptSender
    from whatsapp_crm.respond import ReplyPolicy, ReplySender, ReplyStore
    from whatsapp_crm.store.dynamodb import DynamoConversationStore
    from whatsapp_crm.store.idempotency import DynamoIdempotencyStore
    from whatsapp_crm.store.media import DynamoMediaLedger
    from whatsapp_crm.store.media_objects import S3MediaObjects
    from whatsapp_crm.store.rate_counters import DynamoRateCounter
    from whatsapp_crm.store.read_api import DynamoApiStore
    from whatsapp_crm.store.refusals import DynamoRefusalCounter
    from whatsapp_crm.store.responder import DynamoReplyStore
    from whatsapp_crm.store.templates import DynamoTemplateStore
    from whatsapp_crm.templates import SyncPolicy, TemplateCatalogue, TemplatePageSource, TemplateStore


# --- ports the responder's handler uses itself (the domain never sees them) ----------------------------


class Redelivery(Protocol):
    """Makes failed records of a rate-limited group come back later than the queue's visibility timeout."""

    def delay(self, receipt_handles: Sequence[str], seconds: int) -> None: ...


class DeadLetterForward(Protocol):
    """Moves a record that will never parse to the dead-letter queue now, alone."""

    def forward(self, body: str, group_id: str, deduplication_id: str, reason: str) -> None: ...


if TYPE_CHECKING:

    class ConversationsStore(ConversationReader, HealthStore, Protocol):
        """The read API's table: threads and leads, and the hourly counters /health reads."""

    class FileObjects(MediaObjects, DownloadLinks, Protocol):
        """The media bucket: files kept, and the links they are downloaded by."""

    class MediaGraph(MediaSource, MediaUploader, Protocol):
        """Graph's media endpoints: download what leads sent, upload what agents send."""


# --- factories of the real adapters (one instance per key per execution environment) ------------------


@cache
def conversation_store(table_name: str) -> DynamoConversationStore:
    from whatsapp_crm.store.dynamodb import DynamoConversationStore

    return DynamoConversationStore(table_name)


@cache
def reply_store(table_name: str) -> DynamoReplyStore:
    from whatsapp_crm.store.responder import DynamoReplyStore

    return DynamoReplyStore(table_name)


@cache
def read_store(table_name: str) -> DynamoApiStore:
    from whatsapp_crm.store.read_api import DynamoApiStore

    return DynamoApiStore(table_name)


@cache
def rate_counter(table_name: str) -> DynamoRateCounter:
    from whatsapp_crm.store.rate_counters import DynamoRateCounter

    return DynamoRateCounter(table_name)


@cache
def refusal_counter(table_name: str) -> DynamoRefusalCounter:
    from whatsapp_crm.store.refusals import DynamoRefusalCounter

    return DynamoRefusalCounter(table_name)


@cache
def template_store(table_name: str) -> DynamoTemplateStore:
    from whatsapp_crm.store.templates import DynamoTemplateStore

    return DynamoTemplateStore(table_name)


@cache
def idempotency_store(table_name: str) -> DynamoIdempotencyStore:
    from whatsapp_crm.store.idempotency import DynamoIdempotencyStore

    return DynamoIdempotencyStore(table_name)


@cache
def media_ledger(table_name: str) -> DynamoMediaLedger:
    from whatsapp_crm.store.media import DynamoMediaLedger

    return DynamoMediaLedger(table_name)


@cache
def media_objects(bucket: str) -> S3MediaObjects:
    from whatsapp_crm.store.media_objects import S3MediaObjects

    return S3MediaObjects(bucket)


@cache
def inbound_queue(queue_url: str) -> InboundSink:
    from whatsapp_crm.sqs.inbound_queue import SqsInboundQueue

    return SqsInboundQueue(queue_url)


@cache
def webhook_dead_letters(queue_url: str) -> DeadLetterSink:
    from whatsapp_crm.sqs.dead_letters import SqsDeadLetters

    return SqsDeadLetters(queue_url)


@cache
def inbound_dead_letter_forward(queue_url: str) -> DeadLetterForward:
    from whatsapp_crm.sqs.redelivery import SqsDeadLetterForward

    if not queue_url:
        raise ConfigurationError("INBOUND_DEAD_LETTER_QUEUE_URL is not set")
    return SqsDeadLetterForward(queue_url)


@cache
def inbound_redelivery(queue_url: str) -> Redelivery:
    from whatsapp_crm.sqs.redelivery import SqsRedelivery

    return SqsRedelivery(queue_url)


@cache
def media_queue(queue_url: str) -> ArchiveRequests:
    from whatsapp_crm.sqs.media_queue import SqsMediaQueue

    return SqsMediaQueue(queue_url)


def access_token(settings: SecretSettings) -> str:
    """The Graph access token, read through the credentials' secret cache (it may rotate)."""
    from whatsapp_crm.credentials import load_credentials

    return load_credentials(settings).access_token.get_secret_value()


@cache
def graph_client(token: str, settings: GraphClientSettings) -> GraphClient:
    # Keyed by the token too: a rotated secret (read through a 5-minute cache) gets a fresh client.
    from whatsapp_crm.graph.client import GraphClient

    return GraphClient.from_settings(token, settings)


@cache
def send_policy(settings: SendSettings) -> SendPolicy:
    from whatsapp_crm.numbers import parse_phone_number_ids, sending_number
    from whatsapp_crm.outbound import SendPolicy

    own = parse_phone_number_ids(settings.whatsapp_phone_number_ids)
    return SendPolicy(
        default_phone_number_id=sending_number(None, own),
        own_phone_number_ids=own,
        default_region=settings.default_phone_region,
        per_recipient_per_minute=settings.rate_limit_per_recipient_per_minute,
        per_number_per_second=settings.rate_limit_per_number_per_second,
    )


@cache
def reply_policy(settings: ResponderSettings) -> ReplyPolicy:
    from whatsapp_crm.respond import ReplyPolicy

    return ReplyPolicy.from_settings(settings)


@cache
def sync_policy(settings: TemplatesSettings) -> SyncPolicy:
    from whatsapp_crm.templates import SyncPolicy

    if not settings.whatsapp_business_account_id:
        raise ConfigurationError("no WHATSAPP_BUSINESS_ACCOUNT_ID to list templates of")
    return SyncPolicy(
        waba_id=settings.whatsapp_business_account_id,
        calls_per_hour=settings.template_sync_calls_per_hour,
        min_interval_seconds=settings.template_refresh_min_seconds,
    )


@cache
def _signer_for(secret: str) -> CursorSigner:
    from whatsapp_crm.read_api import CursorSigner

    return CursorSigner.from_secret(secret)


def cursor_signer(settings: ConversationsSettings) -> CursorSigner:
    """Signs the read API's cursors: CURSOR_SIGNING_KEY, else a key derived from the app secret."""
    from whatsapp_crm.credentials import load_credentials

    secret = settings.cursor_signing_key or load_credentials(settings).app_secret.get_secret_value()
    if not secret:
        raise ConfigurationError("neither CURSOR_SIGNING_KEY nor an app secret to sign cursors with")
    return _signer_for(secret)


@cache
def event_bridge() -> EventPublisher:
    from whatsapp_crm.eventbridge import EventBridgePublisher

    return EventBridgePublisher()


@cache
def event_dead_letters(queue_url: str) -> EventDeadLetters:
    from whatsapp_crm.sqs.event_dead_letters import SqsEventDeadLetters

    return SqsEventDeadLetters(queue_url)


@cache
def event_options(settings: EventsSettings) -> EventOptions:
    from datetime import timedelta

    from whatsapp_crm.domain_events import EventOptions, StatusChanges

    return EventOptions(
        include_text=settings.events_include_text,
        human_takeover=timedelta(hours=settings.human_takeover_hours),
        status_changes=StatusChanges(settings.events_status_changes),
    )


# --- test doubles: handed in one way for every function -----------------------------------------------

_handed_in: ContextVar[Mapping[str, object]] = ContextVar("whatsapp_crm_doubles", default=MappingProxyType({}))


@contextmanager
def handed_in(doubles: Mapping[str, object]) -> Iterator[None]:
    """Run the invocations inside with these doubles as their ports (a None value: the real adapter)."""
    token = _handed_in.set(MappingProxyType({name: port for name, port in doubles.items() if port is not None}))
    try:
        yield
    finally:
        _handed_in.reset(token)


def invoke(
    lambda_handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    event: dict[str, Any],
    context: Any,
    doubles: Mapping[str, object],
) -> dict[str, Any]:
    """One invocation of a function's real entry point with doubles handed in (tests and benchmarks)."""
    with handed_in(doubles):
        return lambda_handler(event, context)


class _Ports[S]:
    """One invocation's adapters of a function whose settings are S: each `_Port` attribute below."""

    def __init__(self, settings: S) -> None:
        self.settings = settings
        self.doubles = _handed_in.get()


class _Port[S, P]:
    """A port: the double handed in under the attribute's name, else the real adapter `real(settings)`."""

    def __init__(self, real: Callable[[S], P]) -> None:
        self._real = real
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, ports: _Ports[S], owner: type | None = None) -> P:
        double = ports.doubles.get(self._name)
        return self._real(ports.settings) if double is None else cast(P, double)


def _now(settings: object) -> Clock:
    return utc_now


def _graph(
    settings: SendSettings | ResponderSettings | ConversationsSettings | TemplatesSettings | MediaSettings,
) -> GraphClient:
    return graph_client(access_token(settings), settings)


class WebhookDoubles(TypedDict, total=False):
    store: ConversationWriter | None
    queue: InboundSink | None
    dead_letters: DeadLetterSink | None


class WebhookPorts(_Ports[WebhookSettings]):
    """The webhook writes each event to the table and hands new messages to the responder's queue."""

    store: _Port[WebhookSettings, ConversationWriter] = _Port(lambda s: conversation_store(s.table_name))
    queue: _Port[WebhookSettings, InboundSink] = _Port(lambda s: inbound_queue(s.inbound_queue_url))
    # Where parts DynamoDB refuses for good go; None when the deployment has no such queue.
    dead_letters: _Port[WebhookSettings, DeadLetterSink | None] = _Port(
        lambda s: webhook_dead_letters(s.webhook_dead_letter_queue_url) if s.webhook_dead_letter_queue_url else None
    )


class SendDoubles(TypedDict, total=False):
    store: OutboundStore | None
    sender: MessageSender | None
    clock: Clock | None
    limiter: RateCounter | None
    refusals: RefusalCounter | None
    templates: TemplateCatalogue | None
    keys: IdempotencyStore | None


class SendPorts(_Ports[SendSettings]):
    """POST /messages: the lead's record, Graph, the rate counters, the template cache, idempotency keys."""

    store: _Port[SendSettings, OutboundStore] = _Port(lambda s: conversation_store(s.table_name))
    sender: _Port[SendSettings, MessageSender] = _Port(_graph)
    clock: _Port[SendSettings, Clock] = _Port(_now)
    limiter: _Port[SendSettings, RateCounter] = _Port(lambda s: rate_counter(s.table_name))
    refusals: _Port[SendSettings, RefusalCounter] = _Port(lambda s: refusal_counter(s.table_name))
    templates: _Port[SendSettings, TemplateCatalogue] = _Port(lambda s: template_store(s.table_name))
    keys: _Port[SendSettings, IdempotencyStore] = _Port(lambda s: idempotency_store(s.table_name))

    @property
    def policy(self) -> SendPolicy:
        return send_policy(self.settings)


class ResponderDoubles(TypedDict, total=False):
    store: ReplyStore | None
    sender: ReplySender | None
    clock: Clock | None
    redelivery: Redelivery | None
    dead_letters: DeadLetterForward | None
    media_requests: ArchiveRequests | None


class ResponderPorts(_Ports[ResponderSettings]):
    """The auto-reply: the reply records, Graph, and the queues records are delayed, set aside or archived by."""

    store: _Port[ResponderSettings, ReplyStore] = _Port(lambda s: reply_store(s.table_name))
    sender: _Port[ResponderSettings, ReplySender] = _Port(_graph)
    clock: _Port[ResponderSettings, Clock] = _Port(_now)
    redelivery: _Port[ResponderSettings, Redelivery] = _Port(lambda s: inbound_redelivery(s.inbound_queue_url))
    dead_letters: _Port[ResponderSettings, DeadLetterForward] = _Port(
        lambda s: inbound_dead_letter_forward(s.inbound_dead_letter_queue_url)
    )
    # Where media messages are handed to the archiver; None when the deployment archives nothing.
    media_requests: _Port[ResponderSettings, ArchiveRequests | None] = _Port(
        lambda s: media_queue(s.media_queue_url) if s.media_queue_url else None
    )

    @property
    def policy(self) -> ReplyPolicy:
        return reply_policy(self.settings)


class ConversationsDoubles(TypedDict, total=False):
    store: ConversationsStore | None
    sender: ReadReceiptSender | None
    clock: Clock | None


class ConversationsPorts(_Ports[ConversationsSettings]):
    """The read API and /health: the table (read, plus the unread reset), Graph's read receipts, the cursors."""

    store: _Port[ConversationsSettings, ConversationsStore] = _Port(lambda s: read_store(s.table_name))
    sender: _Port[ConversationsSettings, ReadReceiptSender] = _Port(_graph)
    clock: _Port[ConversationsSettings, Clock] = _Port(_now)

    @property
    def signer(self) -> CursorSigner:
        return cursor_signer(self.settings)


class TemplatesDoubles(TypedDict, total=False):
    store: TemplateStore | None
    source: TemplatePageSource | None
    limiter: RateCounter | None
    clock: Clock | None


class TemplatesPorts(_Ports[TemplatesSettings]):
    """GET /templates and the scheduled sync: the template cache, Graph's listing, the hourly call budget."""

    store: _Port[TemplatesSettings, TemplateStore] = _Port(lambda s: template_store(s.table_name))
    source: _Port[TemplatesSettings, TemplatePageSource] = _Port(_graph)
    limiter: _Port[TemplatesSettings, RateCounter] = _Port(lambda s: rate_counter(s.table_name))
    clock: _Port[TemplatesSettings, Clock] = _Port(_now)

    @property
    def policy(self) -> SyncPolicy:
        return sync_policy(self.settings)


class MediaDoubles(TypedDict, total=False):
    ledger: MediaLedger | None
    objects: FileObjects | None
    source: MediaGraph | None
    clock: Clock | None


class MediaPorts(_Ports[MediaSettings]):
    """The media archive, the file route and uploads: the ledger, the bucket, Graph's media endpoints."""

    ledger: _Port[MediaSettings, MediaLedger] = _Port(lambda s: media_ledger(s.table_name))
    objects: _Port[MediaSettings, FileObjects] = _Port(lambda s: media_objects(s.media_bucket))
    source: _Port[MediaSettings, MediaGraph] = _Port(_graph)
    clock: _Port[MediaSettings, Clock] = _Port(_now)


class EventsDoubles(TypedDict, total=False):
    publisher: EventPublisher | None
    dead_letters: EventDeadLetters | None
    sleep: Callable[[float], None] | None


def _sleep(settings: object) -> Callable[[float], None]:
    import time

    return time.sleep


class EventsPorts(_Ports[EventsSettings]):
    """The table's stream to the CRM bus: EventBridge, the events' dead-letter queue, the retry backoff."""

    publisher: _Port[EventsSettings, EventPublisher] = _Port(lambda s: event_bridge())
    dead_letters: _Port[EventsSettings, EventDeadLetters] = _Port(
        lambda s: event_dead_letters(s.events_dead_letter_queue_url)
    )
    sleep: _Port[EventsSettings, Callable[[float], None]] = _Port(_sleep)

    @property
    def options(self) -> EventOptions:
        return event_options(self.settings)
