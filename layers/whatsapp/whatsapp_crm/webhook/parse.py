"""Walk a verified webhook body into the events we store: messages, statuses, preference changes.

The envelope must be JSON and a `whatsapp_business_account` object, or the whole body is rejected.
Inside it every message/status is validated on its own: unusable parts are counted and skipped, so
one odd item never costs the rest of the batch (and never causes a 5xx that Meta would retry for days).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from whatsapp_crm.json_text import MalformedPayloadError as MalformedPayloadError
from whatsapp_crm.json_text import decode_json
from whatsapp_crm.webhook.models import (
    GraphErrorInfo,
    InboundMessage,
    MessageStatus,
    Metadata,
    UserPreference,
)

WHATSAPP_OBJECT = "whatsapp_business_account"


# Events are not frozen: frozen's per-field object.__setattr__ costs more than the rest of building one, for
# every part of every webhook. Nothing mutates them (and they held unhashable models and dicts anyway).
@dataclass(slots=True)
class InboundEvent:
    message: InboundMessage
    raw: dict[str, Any]
    metadata: Metadata
    profile_name: str | None


@dataclass(slots=True)
class StatusEvent:
    status: MessageStatus
    metadata: Metadata
    raw: dict[str, Any] | None = None  # as Meta sent it, for the dead letter if it can never be stored


@dataclass(frozen=True, slots=True)
class PreferenceEvent:
    preference: UserPreference
    metadata: Metadata
    raw: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TemplateStatusEvent:
    """A `message_template_status_update` change: `entry.id` is the WABA, `entry.time` when it happened."""

    waba_id: str | None
    time: int | None
    value: dict[str, Any]


@dataclass(slots=True)
class Notification:
    messages: list[InboundEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    preferences: list[PreferenceEvent] = field(default_factory=list)
    template_updates: list[TemplateStatusEvent] = field(default_factory=list)
    value_errors: list[GraphErrorInfo] = field(default_factory=list)
    ignored_fields: list[str] = field(default_factory=list)
    unusable_parts: int = 0

    @property
    def correlation_id(self) -> str | None:
        """The first wamid of the delivery, to tie log lines of one request together."""
        if self.messages:
            return self.messages[0].message.id
        if self.statuses:
            return self.statuses[0].status.id
        return None


def decode_body(body: bytes) -> dict[str, Any]:
    """Strict JSON (whatsapp_crm.json_text, the decoder the responder shares) whose top level is a
    WhatsApp object."""
    document = decode_json(body)
    if not isinstance(document, dict):
        raise MalformedPayloadError("body is not a JSON object")
    if document.get("object") != WHATSAPP_OBJECT:
        raise MalformedPayloadError(f"object is not {WHATSAPP_OBJECT!r}")
    return document


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _validated[M: BaseModel](model: type[M], value: Any) -> M | None:
    if not isinstance(value, dict):
        return None
    try:
        # The schema validator itself: model_validate only wraps it in one more Python call per part.
        validated: M = model.__pydantic_validator__.validate_python(value)
    except ValidationError:
        return None
    return validated


def _profile_names(contacts: list[Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in contacts:
        if not isinstance(contact, dict):
            continue
        wa_id = contact.get("wa_id")
        profile = contact.get("profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        if isinstance(wa_id, str) and isinstance(name, str):
            names[wa_id] = name
    return names


def _collect_messages(raws: list[Any], value: dict[str, Any], metadata: Metadata, into: Notification) -> None:
    names = _profile_names(_as_list(value.get("contacts")))
    for raw in raws:
        message = _validated(InboundMessage, raw)
        if message is None:
            into.unusable_parts += 1
            continue
        into.messages.append(InboundEvent(message, raw, metadata, names.get(message.from_)))


def _collect_statuses(raws: list[Any], metadata: Metadata, into: Notification) -> None:
    for raw in raws:
        status = _validated(MessageStatus, raw)
        if status is None:
            into.unusable_parts += 1
            continue
        into.statuses.append(StatusEvent(status, metadata, raw))


def _collect_value(value: dict[str, Any], into: Notification) -> None:
    metadata = _validated(Metadata, value.get("metadata"))
    if metadata is None:
        # Without the receiving number nothing in this change can be routed or answered.
        into.unusable_parts += 1
        return
    # Each kind is looked at only when present: a change usually holds messages or statuses, rarely more.
    if raws := _as_list(value.get("messages")):
        _collect_messages(raws, value, metadata, into)
    if raws := _as_list(value.get("statuses")):
        _collect_statuses(raws, metadata, into)
    if raws := _as_list(value.get("user_preferences")):
        for raw in raws:
            preference = _validated(UserPreference, raw)
            if preference is None:
                into.unusable_parts += 1
            else:
                into.preferences.append(PreferenceEvent(preference, metadata, raw))
    if raws := _as_list(value.get("errors")):
        for raw in raws:
            error = _validated(GraphErrorInfo, raw)
            if error is not None:
                into.value_errors.append(error)


_HANDLED_FIELDS = frozenset({"messages", "user_preferences"})
TEMPLATE_STATUS_FIELD = "message_template_status_update"


def _template_event(entry: dict[str, Any], value: dict[str, Any]) -> TemplateStatusEvent:
    waba_id = entry.get("id")
    time = entry.get("time")
    return TemplateStatusEvent(
        waba_id=str(waba_id) if isinstance(waba_id, str | int) and not isinstance(waba_id, bool) else None,
        time=time if isinstance(time, int) and not isinstance(time, bool) else None,
        value=value,
    )


def parse_notification(document: dict[str, Any]) -> Notification:
    """Every entry × every change × every message/status/preference of a decoded webhook body."""
    notification = Notification()
    entries = document.get("entry")
    if not isinstance(entries, list):
        notification.unusable_parts += 1
        return notification
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            notification.unusable_parts += 1
            continue
        for change in entry["changes"]:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                notification.unusable_parts += 1
                continue
            field_name = change.get("field")
            if field_name == TEMPLATE_STATUS_FIELD:
                notification.template_updates.append(_template_event(entry, change["value"]))
                continue
            if not isinstance(field_name, str) or field_name not in _HANDLED_FIELDS:
                notification.ignored_fields.append(str(field_name))
                continue
            _collect_value(change["value"], notification)
    return notification
