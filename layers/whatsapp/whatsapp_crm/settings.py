"""Per-function settings, parsed from the environment on first use (never at import time).

Each function gets one model built from the mixins it needs. `load(Model)` caches one instance per
model; whoever changes the environment calls `reset_settings()`.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from whatsapp_crm.errors import ConfigurationError
from whatsapp_crm.send_limits import MAX_BOOKING_URL

NonEmpty = Annotated[str, Field(min_length=1)]


class _EnvModel(BaseModel):
    """Fields are named after their environment variable, lower-cased."""

    # defer_build: every function imports this module but parses one model; the others' validators are never built.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class TableSettings(_EnvModel):
    table_name: NonEmpty


class GraphSettings(_EnvModel):
    graph_api_base_url: NonEmpty = "https://graph.facebook.com"
    graph_api_version: NonEmpty = "v22.0"
    # The numbers this deployment owns, comma-separated (WhatsAppPhoneNumberIds); the first is the default sender.
    whatsapp_phone_number_ids: str = ""
    # The WhatsApp Business Account (WABA) id: templates are listed per account, not per number.
    whatsapp_business_account_id: str = ""
    default_phone_region: Annotated[str, Field(min_length=2, max_length=2)] = "IL"


class SecretSettings(_EnvModel):
    """Where the WhatsApp credentials live. Env overrides exist for local runs and tests only."""

    whatsapp_secret_id: str = ""
    # The access token's own secret (the functions that call Graph only; the webhook has none).
    whatsapp_access_token_secret_id: str = ""
    whatsapp_access_token: str = ""
    whatsapp_app_secret: str = ""
    whatsapp_verify_token: str = ""
    secret_max_age_seconds: Annotated[int, Field(ge=0, le=3600)] = 300


class WebhookSettings(TableSettings, SecretSettings):
    inbound_queue_url: NonEmpty
    # Messages and statuses of other numbers are counted and dropped (whatsapp_crm.numbers).
    whatsapp_phone_number_ids: str = ""
    # Parts DynamoDB refuses for good go here whole (a standard queue); needed only when that happens.
    webhook_dead_letter_queue_url: str = ""
    max_body_bytes: Annotated[int, Field(gt=0)] = 4 * 1024 * 1024


class ResponderSettings(TableSettings, SecretSettings, GraphSettings):
    """The auto-reply Lambda. Graph timeouts are tight because SQS, not the client, is the patient retrier."""

    inbound_queue_url: NonEmpty
    # Where a record that cannot be parsed goes at once, alone (its group carries on).
    inbound_dead_letter_queue_url: str = ""
    mark_as_read: bool = True
    auto_reply_cooldown_minutes: Annotated[int, Field(ge=0, le=24 * 60)] = 30
    human_takeover_hours: Annotated[int, Field(ge=0, le=24 * 30)] = 12
    business_hours: NonEmpty = "sun-thu 09:00-18:00"
    business_timezone: NonEmpty = "Asia/Jerusalem"
    # Empty, or an http(s) link short enough for the meeting reply's body (template: MeetingBookingUrl).
    meeting_booking_url: Annotated[str, Field(max_length=MAX_BOOKING_URL, pattern=r"^(https?://\S+)?$")] = ""
    graph_connect_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 3.0
    graph_read_timeout_seconds: Annotated[float, Field(gt=0, le=20)] = 6.0
    graph_max_attempts: Annotated[int, Field(ge=1, le=3)] = 2
    graph_max_retry_seconds: Annotated[float, Field(ge=0, le=10)] = 2.0
    # Where media messages are handed to the archiver (MediaFunction); empty: nothing is archived.
    media_queue_url: str = ""
    # How long after an unanswered Graph call a retry waits for Meta's status webhook before resending.
    reply_evidence_wait_seconds: Annotated[int, Field(ge=0, le=3600)] = 300


class SendSettings(TableSettings, SecretSettings, GraphSettings):
    """POST /messages. A person waits on the answer, so Graph retries stay inside API Gateway's 30 s."""

    rate_limit_per_recipient_per_minute: Annotated[int, Field(ge=1, le=1000)] = 10
    rate_limit_per_number_per_second: Annotated[int, Field(ge=1, le=1000)] = 80
    graph_connect_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 3.0
    graph_read_timeout_seconds: Annotated[float, Field(gt=0, le=20)] = 8.0
    graph_max_attempts: Annotated[int, Field(ge=1, le=3)] = 2
    graph_max_retry_seconds: Annotated[float, Field(ge=0, le=10)] = 2.0


class ConversationsSettings(TableSettings, SecretSettings, GraphSettings):
    """The read API and /health. The cursor key defaults to one derived from the app secret."""

    cursor_signing_key: str = ""
    health_error_rate_threshold: Annotated[float, Field(ge=0, le=1)] = 0.2
    # Below this many sends in the last hour the error rate is too noisy to call the service degraded.
    health_min_sends: Annotated[int, Field(ge=1)] = 5
    graph_connect_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 3.0
    graph_read_timeout_seconds: Annotated[float, Field(gt=0, le=20)] = 6.0
    graph_max_attempts: Annotated[int, Field(ge=1, le=3)] = 2
    graph_max_retry_seconds: Annotated[float, Field(ge=0, le=10)] = 2.0
    # The responder's takeover period, so the read API can say until when the bot stays silent.
    human_takeover_hours: Annotated[int, Field(ge=0, le=24 * 30)] = 12


class TemplatesSettings(TableSettings, SecretSettings, GraphSettings):
    """GET /templates and the scheduled template sync. Graph's management calls are budgeted per hour."""

    template_sync_minutes: Annotated[int, Field(ge=5, le=1440)] = 15
    # No two syncs (scheduled or ?refresh=true) start closer together than this.
    template_refresh_min_seconds: Annotated[int, Field(ge=0, le=3600)] = 60
    # Our share of Meta's ~200 management calls per hour per WABA; WhatsApp Manager and other tools use the rest.
    template_sync_calls_per_hour: Annotated[int, Field(ge=1, le=200)] = 60
    graph_connect_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 3.0
    graph_read_timeout_seconds: Annotated[float, Field(gt=0, le=20)] = 8.0
    graph_max_attempts: Annotated[int, Field(ge=1, le=3)] = 2
    graph_max_retry_seconds: Annotated[float, Field(ge=0, le=10)] = 2.0


class MediaSettings(TableSettings, SecretSettings, GraphSettings):
    """The media archive (from the media queue), the file route and uploads."""

    media_bucket: NonEmpty
    # The largest file kept (bytes): Meta's largest media are 100 MB documents.
    media_max_bytes: Annotated[int, Field(ge=1, le=100_000_000)] = 100_000_000
    media_retention_days: Annotated[int, Field(ge=1)] = 365
    # POST /media: Lambda's 6 MB synchronous payload holds about 4.5 MB of file once base64-encoded.
    media_upload_max_bytes: Annotated[int, Field(ge=1, le=100_000_000)] = 4_500_000
    # The media queue's maxReceiveCount: the last attempt marks a file unavailable instead of retrying.
    media_archive_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    graph_connect_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 3.0
    graph_read_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 20.0
    graph_max_attempts: Annotated[int, Field(ge=1, le=3)] = 2
    graph_max_retry_seconds: Annotated[float, Field(ge=0, le=10)] = 2.0


class InboxSettings(_EnvModel):
    """The agent inbox page: how agents sign in and what the page shows. No table, no secret."""

    # The template's ApiAuth. JWT: agents sign in with the stack's Cognito user pool. IAM: the page calls
    # the API as it is (open on the local stack; in AWS the page says sign-in needs ApiAuth=JWT).
    inbox_auth: Literal["IAM", "JWT"] = "IAM"
    # SSM parameter holding the sign-in configuration (pool, client, hosted UI, agent API URL) when cognito.
    inbox_config_parameter: str = ""
    inbox_phone_numbers: Literal["masked", "full"] = "masked"
    business_timezone: NonEmpty = "Asia/Jerusalem"
    human_takeover_hours: Annotated[int, Field(ge=0, le=24 * 30)] = 12
    config_max_age_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    # The private media bucket: its presigned links' origin is allowed as an image source (thumbnails).
    media_bucket: str = ""


class EventsSettings(_EnvModel):
    """EventsFunction: the table's stream to the CRM event bus. It reads neither the table nor any secret."""

    crm_event_bus_name: NonEmpty
    # Unpublished events and unmappable records are kept here; without it nothing could be set aside.
    events_dead_letter_queue_url: NonEmpty
    # Message text is personal data: in events only when the stack's CrmEventsIncludeText says so.
    events_include_text: bool = False
    # message.status_changed of which messages: all | except_auto_replies | none (message.failed: always).
    events_status_changes: Literal["all", "except_auto_replies", "none"] = "except_auto_replies"
    # The responder's takeover period: lead.human_takeover marks the start of one.
    human_takeover_hours: Annotated[int, Field(ge=0, le=24 * 30)] = 12
    put_events_attempts: Annotated[int, Field(ge=1, le=10)] = 3


def _environment() -> dict[str, str]:
    return {key.lower(): value for key, value in os.environ.items()}


@cache
def _parsed(model: type[_EnvModel]) -> _EnvModel:
    try:
        return model.model_validate(_environment())
    except ValidationError as error:
        problems = ", ".join(
            f"{'.'.join(str(part) for part in issue['loc']).upper()}: {issue['msg']}" for issue in error.errors()
        )
        raise ConfigurationError(f"invalid configuration for {model.__name__}: {problems}") from None


def load[M: _EnvModel](model: type[M]) -> M:
    """Parse `model` from the environment once; a bad or missing value is a ConfigurationError."""
    parsed = _parsed(model)
    if not isinstance(parsed, model):  # pragma: no cover - _parsed always builds `model`
        raise TypeError(f"settings cache returned {type(parsed).__name__} for {model.__name__}")
    return parsed


def reset_settings() -> None:
    """Forget parsed settings (tests and the local stack change the environment between runs)."""
    _parsed.cache_clear()
