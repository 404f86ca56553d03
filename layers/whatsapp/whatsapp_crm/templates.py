"""Message templates known before sending: the cache synced from Graph, and the pre-send check against it.

Templates are the only messages allowed outside the 24-hour window, and Meta refuses a misspelt name, a
template still in review or paused, or a wrong parameter count only after the send (132001, 132015/132016,
132000) and after our rate budget is spent. So the account's templates are listed from Graph (on a schedule
and on demand, within Meta's management rate limit of about 200 calls per hour per WABA) and cached in the
table; `message_template_status_update` webhooks move a cached template's status at once.

`POST /messages` with a template compares it with the cache and refuses what differs (422 template_mismatch),
naming each difference. A cache that was never synced, or a table that cannot be read, never blocks a send:
Meta judges then, and its refusal is mapped as before. The simulator's own check (local/template_catalogue.py)
is written independently of this one, so each tests the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from whatsapp_crm.clock import Clock, iso, iso_from_unix, parse_iso
from whatsapp_crm.errors import StoreUnavailableError
from whatsapp_crm.observability import logger
from whatsapp_crm.ratelimit import RateCounter, RateLimit, acquire

if TYPE_CHECKING:
    # The send models are read only by the pre-send check (template_differences imports them there):
    # the webhook (status updates) and the sync never pay for building them (issue 11, cold start).
    from whatsapp_crm.send_models import ButtonComponent, HeaderComponent, TemplateContent

APPROVED = "APPROVED"
# Graph's template statuses; anything else Meta adds later is kept as Meta spells it.
STATUSES = frozenset(
    {"APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL", "PENDING_DELETION", "DELETED", "ARCHIVED"}
)
# What a `message_template_status_update` event says the status is now. FLAGGED keeps the template approved
# (a disable date follows); REINSTATED is approved again. Events not listed here leave the status alone.
EVENT_STATUS = {
    "APPROVED": "APPROVED",
    "REINSTATED": "APPROVED",
    "REJECTED": "REJECTED",
    "PENDING": "PENDING",
    "PAUSED": "PAUSED",
    "DISABLED": "DISABLED",
    "IN_APPEAL": "IN_APPEAL",
    "PENDING_DELETION": "PENDING_DELETION",
    "DELETED": "DELETED",
    "ARCHIVED": "ARCHIVED",
}
MEDIA_HEADER_FORMATS = frozenset({"IMAGE", "VIDEO", "DOCUMENT", "LOCATION"})
# Button kinds whose only parameter is optional (a quick reply's payload, a flow's action).
_OPTIONAL_BUTTON_PARAMETER = frozenset({"quick_reply", "flow"})
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
# Graph pages with limit=100; a sync of an account with a few hundred templates costs a few calls.
SYNC_PAGE_SIZE = 100
# The most pages one sync reads (10,000 templates; Meta allows 6,000 per WABA): a paging loop cannot run away.
MAX_SYNC_PAGES = 100

ParameterSpec = int | list[str]


# --- what a template takes ---------------------------------------------------------------------------


def _placeholders(text: Any) -> list[str]:
    names: list[str] = []
    for name in _PLACEHOLDER.findall(text if isinstance(text, str) else ""):
        if name not in names:
            names.append(name)
    return names


def _spec(text: Any, named: bool) -> ParameterSpec:
    names = _placeholders(text)
    return names if named else len(names)


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    index: str
    sub_type: str  # the send's sub_type: url, quick_reply, copy_code, flow, catalog, voice_call, phone_number...
    parameters: int  # parameters a send must give this button (0 or 1)

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "sub_type": self.sub_type, "parameters": self.parameters}


@dataclass(frozen=True, slots=True)
class TemplateParameters:
    """Each component's parameter count, or its parameter names for a NAMED template."""

    header: ParameterSpec | None  # None: no header; a media header takes 1 parameter of `header_format`
    header_format: str | None
    body: ParameterSpec
    buttons: tuple[ButtonSpec, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "header": self.header,
            "header_format": self.header_format,
            "body": self.body,
            "buttons": [button.as_json() for button in self.buttons],
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TemplateParameters:
        buttons = tuple(
            ButtonSpec(str(b.get("index")), str(b.get("sub_type")), int(b.get("parameters") or 0))
            for b in document.get("buttons") or []
            if isinstance(b, Mapping)
        )
        return cls(
            header=_spec_from_json(document.get("header")),
            header_format=document.get("header_format") or None,
            body=_spec_from_json(document.get("body")) or 0,
            buttons=buttons,
        )


def _spec_from_json(value: Any) -> ParameterSpec | None:
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _button_spec(index: int, button: Mapping[str, Any]) -> ButtonSpec:
    kind = str(button.get("type", "")).lower()
    if kind == "url":
        wanted = 1 if _placeholders(button.get("url")) else 0
    elif kind in ("copy_code", "otp"):
        wanted = 1
    else:
        wanted = 0
    return ButtonSpec(index=str(index), sub_type=kind, parameters=wanted)


def template_parameters(template: Mapping[str, Any]) -> TemplateParameters:
    """What a send of this Graph template (Meta's listing shape) must give, component by component."""
    named = str(template.get("parameter_format", "")).upper() == "NAMED"
    header: ParameterSpec | None = None
    header_format: str | None = None
    body: ParameterSpec = [] if named else 0
    buttons: list[ButtonSpec] = []
    components = template.get("components")
    for component in components if isinstance(components, list) else []:
        if not isinstance(component, Mapping):
            continue
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            header_format = str(component.get("format") or "TEXT").upper()
            header = 1 if header_format in MEDIA_HEADER_FORMATS else _spec(component.get("text"), named)
        elif kind == "BODY":
            body = _spec(component.get("text"), named)
        elif kind == "BUTTONS":
            listed = component.get("buttons")
            for button in listed if isinstance(listed, list) else []:
                if isinstance(button, Mapping):
                    buttons.append(_button_spec(len(buttons), button))
    return TemplateParameters(header=header, header_format=header_format, body=body, buttons=tuple(buttons))


@dataclass(frozen=True, slots=True)
class CachedTemplate:
    name: str
    language: str
    status: str
    category: str | None
    parameter_format: str
    parameters: TemplateParameters
    template_id: str | None
    status_at: str  # when this status was true: the sync's start, or a status webhook's trigger time

    def as_json(self) -> dict[str, Any]:
        """The GET /templates entry."""
        return {
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "parameter_format": self.parameter_format,
            "parameters": self.parameters.as_json(),
            "id": self.template_id,
            "status_at": self.status_at,
        }

    def same_content(self, other: CachedTemplate) -> bool:
        """Everything but the time: a sync that finds nothing new writes nothing."""
        return (self.status, self.category, self.parameter_format, self.parameters, self.template_id) == (
            other.status,
            other.category,
            other.parameter_format,
            other.parameters,
            other.template_id,
        )


def cached_from_graph(template: Mapping[str, Any], status_at: str) -> CachedTemplate | None:
    """A Graph listing entry as the cache keeps it; None for an entry without a usable name or language."""
    name = template.get("name")
    language = template.get("language")
    if not isinstance(name, str) or not name or not isinstance(language, str) or not language:
        return None
    status = str(template.get("status") or "UNKNOWN").upper()
    identifier = template.get("id")
    return CachedTemplate(
        name=name,
        language=language,
        status=status,
        category=str(template["category"]).upper() if template.get("category") else None,
        parameter_format=str(template.get("parameter_format") or "POSITIONAL").upper(),
        parameters=template_parameters(template),
        template_id=str(identifier) if identifier is not None else None,
        status_at=status_at,
    )


# --- the pre-send check ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    field: str
    message: str
    expected: Any = None
    given: Any = None

    def as_json(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message, "expected": self.expected, "given": self.given}


class TemplateMismatchError(Exception):
    """The template, as the cache knows it, would be refused by Meta: nothing was sent."""

    def __init__(self, name: str, language: str, status: str | None, differences: Sequence[Difference]) -> None:
        summary = "; ".join(difference.message for difference in differences)
        super().__init__(f"template {name!r} ({language}) does not match: {summary}")
        self.name = name
        self.language = language
        self.status = status
        self.differences = list(differences)


def _given_names(parameters: Sequence[Any]) -> list[str]:
    return [str(getattr(parameter, "parameter_name", None) or "") for parameter in parameters]


def _compare(where: str, what: str, expected: ParameterSpec, parameters: Sequence[Any]) -> Difference | None:
    if isinstance(expected, list):
        given = _given_names(parameters)
        if "" in given:
            return Difference(
                where, f"{what} takes named parameters: give each a parameter_name", expected=expected, given=given
            )
        if sorted(given) != sorted(expected) or len(set(given)) != len(given):
            missing = [name for name in expected if name not in given]
            unexpected = [name for name in given if name not in expected]
            detail = ", ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(unexpected)}" if unexpected else "",
                )
                if part
            )
            return Difference(
                where,
                f"{what} takes parameters {', '.join(expected) or 'none'} ({detail or 'repeated'})",
                expected=expected,
                given=given,
            )
        return None
    if len(parameters) != expected:
        return Difference(
            where,
            f"{what} takes {expected} parameter(s), {len(parameters)} given",
            expected=expected,
            given=len(parameters),
        )
    return None


def _header_difference(spec: TemplateParameters, header: HeaderComponent | None) -> Difference | None:
    where = "template.components.header"
    given = list(header.parameters) if header else []
    if spec.header is None:
        return Difference(where, "the template has no header", expected=None, given=len(given)) if given else None
    if spec.header_format in MEDIA_HEADER_FORMATS:
        wanted = str(spec.header_format).lower()
        kinds = [parameter.type for parameter in given]
        if kinds != [wanted]:
            return Difference(where, f"the header takes one {wanted} parameter", expected=[wanted], given=kinds)
        return None
    return _compare(where, "the header", spec.header, given)


def _button_differences(spec: TemplateParameters, given: Sequence[ButtonComponent]) -> list[Difference]:
    differences: list[Difference] = []
    by_index = {button.index: button for button in given}
    for button in spec.buttons:
        component = by_index.pop(button.index, None)
        where = f"template.components.button[{button.index}]"
        count = len(component.parameters or []) if component else 0
        if component is not None and component.sub_type != button.sub_type:
            differences.append(
                Difference(
                    where,
                    f"button {button.index} is a {button.sub_type} button",
                    expected=button.sub_type,
                    given=component.sub_type,
                )
            )
        elif count != button.parameters and not (button.sub_type in _OPTIONAL_BUTTON_PARAMETER and count <= 1):
            differences.append(
                Difference(
                    where,
                    f"button {button.index} takes {button.parameters} parameter(s), {count} given",
                    expected=button.parameters,
                    given=count,
                )
            )
    for index in sorted(by_index):
        differences.append(
            Difference(
                f"template.components.button[{index}]",
                f"the template has no button {index}",
                expected=None,
                given=by_index[index].sub_type,
            )
        )
    return differences


def template_differences(template: TemplateContent, cached: CachedTemplate) -> list[Difference]:
    """Everything about this send Meta would refuse, given the template as cached (same name and language)."""
    from whatsapp_crm.send_models import BodyComponent, ButtonComponent, HeaderComponent

    differences: list[Difference] = []
    if cached.status != APPROVED:
        differences.append(
            Difference(
                "template.status",
                f"the template is {cached.status}, not APPROVED",
                expected=APPROVED,
                given=cached.status,
            )
        )
    components = template.components or []
    header = next((c for c in components if isinstance(c, HeaderComponent)), None)
    body = next((c for c in components if isinstance(c, BodyComponent)), None)
    buttons = [c for c in components if isinstance(c, ButtonComponent)]
    spec = cached.parameters
    for difference in (
        _header_difference(spec, header),
        _compare("template.components.body", "the body", spec.body, list(body.parameters or []) if body else []),
    ):
        if difference is not None:
            differences.append(difference)
    differences.extend(_button_differences(spec, buttons))
    return differences


class TemplateCatalogue(Protocol):
    """The cache as the send path reads it: one query per send."""

    def templates_named(self, name: str) -> list[CachedTemplate]: ...
    def sync_state(self) -> SyncState | None: ...


def check_template(template: TemplateContent, catalogue: TemplateCatalogue) -> None:
    """Raise TemplateMismatchError when the cache says Meta would refuse this template send.

    Never blocks on what it cannot know: a cache never synced, or a table that cannot be read, lets the send
    go (Meta then judges, and its error is mapped as it always was).
    """
    name = template.name
    language = template.language.code
    try:
        known = catalogue.templates_named(name)
        if not known and catalogue.sync_state() is None:
            return
    except StoreUnavailableError:
        logger.warning("template cache unreadable; sending unchecked", extra={"template": name})
        return
    match = next((cached for cached in known if cached.language == language), None)
    if match is None:
        languages = sorted(cached.language for cached in known)
        if languages:
            difference = Difference(
                "template.language.code",
                f"template {name!r} has no {language!r} translation (it has {', '.join(languages)})",
                expected=languages,
                given=language,
            )
        else:
            difference = Difference(
                "template.name",
                f"no template named {name!r} (GET /templates lists them; ?refresh=true after creating one)",
                expected=None,
                given=name,
            )
        raise TemplateMismatchError(name, language, None, [difference])
    differences = template_differences(template, match)
    if differences:
        raise TemplateMismatchError(name, language, match.status, differences)


# --- sync --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncState:
    synced_at: str | None
    template_count: int = 0
    waba_id: str | None = None
    last_attempt_at: str | None = None
    last_error: str | None = None


class TemplatePageSource(Protocol):
    """Graph's listing (whatsapp_crm.graph.GraphClient.list_templates)."""

    def list_templates(self, waba_id: str, *, after: str | None = None, limit: int = ...) -> Any: ...


class TemplateStore(TemplateCatalogue, Protocol):
    def all_templates(self) -> list[CachedTemplate]: ...
    def replace_templates(self, templates: Sequence[CachedTemplate], started_at: str) -> tuple[int, int]: ...
    def record_sync(self, state: SyncState) -> None: ...
    def record_sync_failure(self, at: str, reason: str) -> None: ...
    def claim_refresh(self, now: str, not_before: str) -> str | None: ...


class RefreshThrottledError(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"templates were refreshed moments ago; retry after {retry_after_seconds}s")
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    waba_id: str
    calls_per_hour: int  # our share of Meta's ~200 management calls per hour per WABA
    min_interval_seconds: int  # between two syncs, whoever asks


@dataclass(slots=True)
class SyncReport:
    synced_at: str
    listed: int = 0
    written: int = 0
    removed: int = 0
    pages: int = 0
    skipped: list[str] = field(default_factory=list)


def _list_all(
    source: TemplatePageSource, policy: SyncPolicy, limiter: RateCounter, clock: Clock
) -> tuple[list[Any], int]:
    budget = RateLimit("template_sync", policy.calls_per_hour, 3600)
    listed: list[Any] = []
    after: str | None = None
    pages = 0
    while pages < MAX_SYNC_PAGES:
        # One unit of the hourly management budget per Graph call, taken before the call is made.
        acquire(limiter, [(budget, policy.waba_id)], clock())
        page = source.list_templates(policy.waba_id, after=after, limit=SYNC_PAGE_SIZE)
        pages += 1
        listed.extend(page.templates)
        after = page.after
        if not after:
            break
    return listed, pages


def sync_templates(
    source: TemplatePageSource,
    store: TemplateStore,
    *,
    policy: SyncPolicy,
    limiter: RateCounter,
    clock: Clock,
) -> SyncReport:
    """List every template of the WABA, then replace the cache with what was listed.

    The cache changes only after the whole listing succeeded: a Graph failure halfway leaves it as it was
    (the failure is recorded on the sync state and raised). Two syncs, scheduled or asked for, never start
    within `min_interval_seconds` of each other (RefreshThrottledError says when the next may).
    """
    now = clock()
    started = iso(now)
    not_before = iso(now - timedelta(seconds=policy.min_interval_seconds))
    holder = store.claim_refresh(started, not_before)
    if holder is not None:
        waited = (now - parse_iso(holder)).total_seconds()
        raise RefreshThrottledError(max(1, int(policy.min_interval_seconds - waited) + 1))
    try:
        listed, pages = _list_all(source, policy, limiter, clock)
    except Exception as error:
        store.record_sync_failure(started, _failure_reason(error))
        raise
    report = SyncReport(synced_at=started, pages=pages)
    templates: dict[tuple[str, str], CachedTemplate] = {}
    for raw in listed:
        cached = cached_from_graph(raw, started) if isinstance(raw, Mapping) else None
        if cached is None:
            report.skipped.append(str(raw.get("id")) if isinstance(raw, Mapping) else "?")
            continue
        templates[(cached.name, cached.language)] = cached
    report.listed = len(templates)
    report.written, report.removed = store.replace_templates(list(templates.values()), started)
    store.record_sync(SyncState(synced_at=started, template_count=len(templates), waba_id=policy.waba_id))
    return report


def _failure_reason(error: Exception) -> str:
    code = getattr(error, "code", None)
    return f"{type(error).__name__}" + (f" ({code})" if code is not None else "")


# --- status webhooks ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateStatusUpdate:
    """A `message_template_status_update` event, ready for the cache."""

    template_id: str
    name: str
    language: str
    event: str
    status: str | None  # None: the event does not change the status (FLAGGED, UNARCHIVED, unknown events)
    at: str  # entry.time: when Meta says it happened
    reason: str | None


def status_update_from_event(
    waba_id: str | None, value: Mapping[str, Any], time: int | None, received_at: str
) -> TemplateStatusUpdate | None:
    """None when the event lacks what identifies a cached template (id, name, language)."""
    identifier = value.get("message_template_id")
    name = value.get("message_template_name")
    language = value.get("message_template_language")
    event = str(value.get("event") or "").upper()
    if identifier is None or isinstance(identifier, bool) or not isinstance(name, str) or not name:
        return None
    if not isinstance(language, str) or not language or not event:
        return None
    reason = value.get("reason")
    return TemplateStatusUpdate(
        template_id=str(identifier),
        name=name,
        language=language,
        event=event,
        status=EVENT_STATUS.get(event),
        at=iso_from_unix(time) if isinstance(time, int) and not isinstance(time, bool) and time > 0 else received_at,
        reason=str(reason) if reason not in (None, "", "NONE") else None,
    )


def template_keys(templates: Iterable[CachedTemplate]) -> set[tuple[str, str]]:
    return {(template.name, template.language) for template in templates}
