"""Templates known before sending: what each template takes, the pre-send check, the sync and status events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.template_catalogue import TemplateRefusal, check_send, default_catalogue
from whatsapp_crm.errors import StoreUnavailableError
from whatsapp_crm.graph.errors import GraphUnavailableError
from whatsapp_crm.ratelimit import RateLimitedError, WindowSlot
from whatsapp_crm.send_models import TemplateContent
from whatsapp_crm.templates import (
    CachedTemplate,
    RefreshThrottledError,
    SyncPolicy,
    SyncState,
    TemplateMismatchError,
    cached_from_graph,
    check_template,
    status_update_from_event,
    sync_templates,
    template_parameters,
)

NOW = datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC)
SYNCED = "2026-12-06T09:00:00Z"


def _catalogue_entry(name: str, language: str = "he") -> dict[str, Any]:
    return next(t for t in default_catalogue() if t["name"] == name and t["language"] == language)


def _cached(name: str, language: str = "he") -> CachedTemplate:
    cached = cached_from_graph(_catalogue_entry(name, language), SYNCED)
    assert cached is not None
    return cached


class MemoryCatalogue:
    """The cache as the send path reads it."""

    def __init__(self, templates: Sequence[CachedTemplate] = (), *, synced: bool = True) -> None:
        self.templates = list(templates)
        self.synced = synced

    def templates_named(self, name: str) -> list[CachedTemplate]:
        return [t for t in self.templates if t.name == name]

    def sync_state(self) -> SyncState | None:
        return SyncState(synced_at=SYNCED) if self.synced else None


def _whole_catalogue() -> MemoryCatalogue:
    return MemoryCatalogue([c for t in default_catalogue() if (c := cached_from_graph(t, SYNCED)) is not None])


def _template(document: dict[str, Any]) -> TemplateContent:
    return TemplateContent.model_validate(document)


def _refusal(document: dict[str, Any]) -> TemplateMismatchError:
    with pytest.raises(TemplateMismatchError) as caught:
        check_template(_template(document), _whole_catalogue())
    return caught.value


def _body(*texts: str) -> dict[str, Any]:
    return {"type": "body", "parameters": [{"type": "text", "text": text} for text in texts]}


def _named_body(**values: str) -> dict[str, Any]:
    return {
        "type": "body",
        "parameters": [{"type": "text", "text": text, "parameter_name": name} for name, text in values.items()],
    }


class TestWhatATemplateTakes:
    def test_a_positional_body_counts_its_placeholders_and_buttons_say_which_need_one(self) -> None:
        spec = template_parameters(_catalogue_entry("brochure_followup"))
        assert spec.as_json() == {
            "header": 1,
            "header_format": "DOCUMENT",
            "body": 2,
            "buttons": [
                {"index": "0", "sub_type": "url", "parameters": 1},
                {"index": "1", "sub_type": "quick_reply", "parameters": 0},
            ],
        }

    def test_a_named_template_lists_its_parameter_names(self) -> None:
        spec = template_parameters(_catalogue_entry("mortgage_documents"))
        assert spec.header == ["project_name"]
        assert spec.header_format == "TEXT"
        assert spec.body == ["first_name", "document_list", "due_date"]

    def test_a_template_without_placeholders_or_header_takes_nothing(self) -> None:
        spec = template_parameters(_catalogue_entry("viewing_reminder"))
        assert (spec.header, spec.body, spec.buttons) == (None, 0, ())

    def test_an_entry_without_name_or_language_is_not_cached(self) -> None:
        assert cached_from_graph({"id": "1", "status": "APPROVED"}, SYNCED) is None
        assert cached_from_graph({"name": "x", "language": 3}, SYNCED) is None


VALID_SENDS = {
    "no parameters": {"name": "viewing_reminder", "language": {"code": "en"}},
    "positional body and quick reply payload": {
        "name": "property_update",
        "language": {"code": "he"},
        "components": [
            _body("דנה", "הרצל 10"),
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "0",
                "parameters": [{"type": "payload", "payload": "Y"}],
            },
        ],
    },
    "document header, body and url button": {
        "name": "brochure_followup",
        "language": {"code": "he"},
        "components": [
            {"type": "header", "parameters": [{"type": "document", "document": {"id": "1013859600285441"}}]},
            _body("דנה", "פרויקט הגפן"),
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "t-1"}]},
        ],
    },
    "named header and body in any order": {
        "name": "mortgage_documents",
        "language": {"code": "he"},
        "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "הגפן", "parameter_name": "project_name"}]},
            _named_body(due_date="חמישי", first_name="דנה", document_list="תלושים"),
        ],
    },
}


class TestThePreSendCheck:
    @pytest.mark.parametrize("case", list(VALID_SENDS))
    def test_a_send_that_matches_the_cache_passes_and_meta_accepts_it_too(self, case: str) -> None:
        check_template(_template(VALID_SENDS[case]), _whole_catalogue())
        check_send(default_catalogue(), VALID_SENDS[case])  # the simulator's independent reading agrees

    def test_an_unknown_name_is_named(self) -> None:
        refusal = _refusal({"name": "viewing_remindr", "language": {"code": "he"}})
        assert [d.field for d in refusal.differences] == ["template.name"]
        assert "viewing_remindr" in str(refusal)

    def test_a_missing_translation_names_the_languages_there_are(self) -> None:
        refusal = _refusal({"name": "property_update", "language": {"code": "en"}})
        (difference,) = refusal.differences
        assert difference.field == "template.language.code"
        assert difference.expected == ["he"] and difference.given == "en"

    @pytest.mark.parametrize(("name", "status"), [("new_project_launch", "PENDING"), ("price_drop_alert", "PAUSED")])
    def test_a_template_that_is_not_approved_is_refused_with_its_status(self, name: str, status: str) -> None:
        refusal = _refusal({"name": name, "language": {"code": "he"}, "components": [_body("x")]})
        assert refusal.status == status
        assert [d.field for d in refusal.differences] == ["template.status"]
        with pytest.raises(TemplateRefusal):  # Meta would refuse it too
            check_send(default_catalogue(), {"name": name, "language": {"code": "he"}, "components": [_body("x")]})

    def test_a_wrong_body_count_says_how_many_it_takes(self) -> None:
        document = {"name": "property_update", "language": {"code": "he"}, "components": [_body("דנה")]}
        refusal = _refusal(document)
        (difference,) = refusal.differences
        assert (difference.field, difference.expected, difference.given) == ("template.components.body", 2, 1)
        assert "takes 2 parameter(s), 1 given" in difference.message
        with pytest.raises(TemplateRefusal) as meta:
            check_send(default_catalogue(), document)
        assert meta.value.code == 132000

    def test_named_parameters_report_the_missing_and_the_unknown(self) -> None:
        refusal = _refusal(
            {
                "name": "mortgage_documents",
                "language": {"code": "he"},
                "components": [
                    {"type": "header", "parameters": [{"type": "text", "text": "x", "parameter_name": "project_name"}]},
                    _named_body(first_name="דנה", documents="תלושים", due_date="חמישי"),
                ],
            }
        )
        (difference,) = refusal.differences
        assert difference.field == "template.components.body"
        assert "missing document_list" in difference.message and "unknown documents" in difference.message

    def test_positional_values_for_a_named_template_are_refused(self) -> None:
        refusal = _refusal(
            {"name": "mortgage_documents", "language": {"code": "he"}, "components": [_body("a", "b", "c")]}
        )
        assert {d.field for d in refusal.differences} == {"template.components.header", "template.components.body"}

    def test_a_media_header_needs_its_own_kind_and_url_buttons_their_parameter(self) -> None:
        refusal = _refusal(
            {
                "name": "brochure_followup",
                "language": {"code": "he"},
                "components": [
                    {"type": "header", "parameters": [{"type": "image", "image": {"id": "1"}}]},
                    _body("דנה", "הגפן"),
                ],
            }
        )
        assert [(d.field, d.expected, d.given) for d in refusal.differences] == [
            ("template.components.header", ["document"], ["image"]),
            ("template.components.button[0]", 1, 0),
        ]

    def test_a_header_or_button_the_template_does_not_have_is_refused(self) -> None:
        refusal = _refusal(
            {
                "name": "viewing_reminder",
                "language": {"code": "he"},
                "components": [
                    {"type": "header", "parameters": [{"type": "text", "text": "x"}]},
                    {"type": "button", "sub_type": "quick_reply", "index": "2", "parameters": []},
                ],
            }
        )
        assert [d.field for d in refusal.differences] == [
            "template.components.header",
            "template.components.button[2]",
        ]

    def test_a_cache_never_synced_lets_every_template_through(self) -> None:
        check_template(_template({"name": "anything", "language": {"code": "he"}}), MemoryCatalogue(synced=False))

    def test_an_unreadable_cache_lets_the_send_through(self) -> None:
        class Broken(MemoryCatalogue):
            def templates_named(self, name: str) -> list[CachedTemplate]:
                raise StoreUnavailableError("down")

        check_template(_template({"name": "anything", "language": {"code": "he"}}), Broken())


# --- sync --------------------------------------------------------------------------------------------


@dataclass
class Page:
    templates: list[dict[str, Any]]
    after: str | None


class PagedGraph:
    """Graph's listing in pages of `size`; `fail_on_page` raises there."""

    def __init__(self, templates: list[dict[str, Any]], size: int = 3, fail_on_page: int | None = None) -> None:
        self.pages = [templates[i : i + size] for i in range(0, len(templates), size)] or [[]]
        self.fail_on_page = fail_on_page
        self.calls: list[str | None] = []

    def list_templates(self, waba_id: str, *, after: str | None = None, limit: int = 100) -> Page:
        self.calls.append(after)
        index = int(after) if after else 0
        if index == self.fail_on_page:
            raise GraphUnavailableError(title="down", code=1)
        more = index + 1 < len(self.pages)
        return Page(self.pages[index], str(index + 1) if more else None)


@dataclass
class MemoryTemplateStore(MemoryCatalogue):
    claimed_at: str | None = None
    state: SyncState | None = None
    failures: list[str] = field(default_factory=list)
    replaced: int = 0

    def __post_init__(self) -> None:
        super().__init__()

    def sync_state(self) -> SyncState | None:
        return self.state

    def all_templates(self) -> list[CachedTemplate]:
        return list(self.templates)

    def replace_templates(self, templates: Sequence[CachedTemplate], started_at: str) -> tuple[int, int]:
        removed = len({(t.name, t.language) for t in self.templates} - {(t.name, t.language) for t in templates})
        self.templates = list(templates)
        self.replaced += 1
        return len(templates), removed

    def record_sync(self, state: SyncState) -> None:
        self.state = state

    def record_sync_failure(self, at: str, reason: str) -> None:
        self.failures.append(reason)

    def claim_refresh(self, now: str, not_before: str) -> str | None:
        if self.claimed_at is not None and self.claimed_at > not_before:
            return self.claimed_at
        self.claimed_at = now
        return None


class MemoryCounter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def take(self, slot: WindowSlot) -> bool:
        if self.counts.get(slot.key, 0) >= slot.rate.limit:
            return False
        self.counts[slot.key] = self.counts.get(slot.key, 0) + 1
        return True

    def give_back(self, slot: WindowSlot) -> None:
        self.counts[slot.key] -= 1


POLICY = SyncPolicy(waba_id="102290129340398", calls_per_hour=60, min_interval_seconds=60)


class TestSync:
    def test_every_page_is_read_then_the_cache_is_replaced_once(self) -> None:
        graph = PagedGraph(default_catalogue(), size=3)
        store = MemoryTemplateStore()
        report = sync_templates(graph, store, policy=POLICY, limiter=MemoryCounter(), clock=lambda: NOW)
        pages = -(-len(default_catalogue()) // 3)
        assert graph.calls == [None, *(str(page) for page in range(1, pages))]
        assert report.listed == len(default_catalogue()) and report.pages == pages
        assert store.replaced == 1
        assert store.state is not None and store.state.synced_at == "2026-12-06T10:00:00Z"

    def test_a_graph_failure_halfway_keeps_the_cache_and_records_why(self) -> None:
        store = MemoryTemplateStore()
        store.templates = [_cached("viewing_reminder")]
        with pytest.raises(GraphUnavailableError):
            sync_templates(
                PagedGraph(default_catalogue(), fail_on_page=1), store, policy=POLICY, limiter=MemoryCounter(),
                clock=lambda: NOW,
            )  # fmt: skip
        assert store.replaced == 0 and [t.name for t in store.templates] == ["viewing_reminder"]
        assert store.failures == ["GraphUnavailableError (1)"]

    def test_a_second_sync_within_the_interval_is_refused_with_the_wait(self) -> None:
        store = MemoryTemplateStore()
        graph = PagedGraph(default_catalogue())
        sync_templates(graph, store, policy=POLICY, limiter=MemoryCounter(), clock=lambda: NOW)
        later = NOW + timedelta(seconds=20)
        with pytest.raises(RefreshThrottledError) as caught:
            sync_templates(graph, store, policy=POLICY, limiter=MemoryCounter(), clock=lambda: later)
        assert 40 <= caught.value.retry_after_seconds <= 41

    def test_the_hourly_graph_budget_stops_a_sync_before_the_call(self) -> None:
        graph = PagedGraph(default_catalogue(), size=3)
        store = MemoryTemplateStore()
        tight = SyncPolicy(waba_id=POLICY.waba_id, calls_per_hour=2, min_interval_seconds=0)
        with pytest.raises(RateLimitedError):
            sync_templates(graph, store, policy=tight, limiter=MemoryCounter(), clock=lambda: NOW)
        assert len(graph.calls) == 2 and store.replaced == 0


class TestStatusEvents:
    def test_an_event_names_the_template_and_its_new_status_at_metas_time(self) -> None:
        value = {
            "event": "PAUSED",
            "message_template_id": 1003,
            "message_template_name": "property_update",
            "message_template_language": "he",
            "reason": "NONE",
        }
        update = status_update_from_event("102290129340398", value, 1_765_000_000, "2026-12-06T10:00:00Z")
        assert update is not None
        assert (update.template_id, update.status, update.at, update.reason) == (
            "1003",
            "PAUSED",
            "2025-12-06T05:46:40Z",
            None,
        )

    @pytest.mark.parametrize(("event", "status"), [("REINSTATED", "APPROVED"), ("FLAGGED", None), ("NEW_THING", None)])
    def test_events_that_are_not_a_status_leave_it_alone(self, event: str, status: str | None) -> None:
        value = {
            "event": event,
            "message_template_id": "1",
            "message_template_name": "x",
            "message_template_language": "he",
        }
        update = status_update_from_event(None, value, None, "2026-12-06T10:00:00Z")
        assert update is not None and update.status == status and update.at == "2026-12-06T10:00:00Z"

    @pytest.mark.parametrize(
        "missing", ["message_template_id", "message_template_name", "message_template_language", "event"]
    )
    def test_an_event_without_what_identifies_the_template_is_unusable(self, missing: str) -> None:
        value = {
            "event": "APPROVED",
            "message_template_id": "1",
            "message_template_name": "x",
            "message_template_language": "he",
        }
        del value[missing]
        assert status_update_from_event(None, value, 1, "2026-12-06T10:00:00Z") is None
