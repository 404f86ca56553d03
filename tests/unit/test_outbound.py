"""The send use case with fake ports: which rule refuses what, from which number it goes, what is recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from whatsapp_crm.clock import iso
from whatsapp_crm.errors import ConfigurationError, StoreUnavailableError
from whatsapp_crm.graph.errors import AuthError, MarketingOptOutError, PairRateLimitError
from whatsapp_crm.outbound import (
    ForeignSenderError,
    InvalidRecipientError,
    RecipientOptedOutError,
    SendPolicy,
    WindowClosedError,
    send_message,
)
from whatsapp_crm.ratelimit import RateLimitedError, WindowSlot
from whatsapp_crm.records import OutboundRecord, PreferenceChange, SentBy
from whatsapp_crm.send_models import AnyMessage, parse_send_request

NOW = datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)
LEAD = "972525551234"
DEFAULT_NUMBER = "106540352242922"
POLICY = SendPolicy(
    default_phone_number_id=DEFAULT_NUMBER, default_region="IL", per_recipient_per_minute=10, per_number_per_second=80
)
# A deployment owning two numbers (the default first).
TWO_NUMBERS = SendPolicy(
    default_phone_number_id=DEFAULT_NUMBER,
    default_region="IL",
    per_recipient_per_minute=10,
    per_number_per_second=80,
    own_phone_number_ids=(DEFAULT_NUMBER, "110022003300"),
)
TEXT = {"type": "text", "text": {"body": "שלום"}}
TEMPLATE = {"type": "template", "template": {"name": "hello", "language": {"code": "he"}}}


@dataclass(frozen=True)
class Accepted:
    message_id: str
    wa_id: str | None
    message_status: str | None = None


@dataclass
class FakeStore:
    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: list[OutboundRecord] = field(default_factory=list)
    broken: bool = False

    def get_lead(self, wa_id: str) -> dict[str, Any] | None:
        return self.leads.get(wa_id)

    def record_outbound(self, record: OutboundRecord) -> bool:
        if self.broken:
            raise StoreUnavailableError("table down")
        self.records.append(record)
        return True


@dataclass
class FakeSender:
    answer_wa_id: str | None = LEAD
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def send_message(self, phone_number_id: str, message: AnyMessage) -> Accepted:
        self.sent.append((phone_number_id, message.graph_body()))
        return Accepted(message_id=f"wamid.{len(self.sent)}", wa_id=self.answer_wa_id)


@dataclass
class FakeLimiter:
    full: set[str] = field(default_factory=set)
    taken: list[WindowSlot] = field(default_factory=list)

    def take(self, slot: WindowSlot) -> bool:
        if slot.rate.scope in self.full:
            return False
        self.taken.append(slot)
        return True

    def give_back(self, slot: WindowSlot) -> None:
        self.taken.remove(slot)


def _send(
    document: dict[str, Any],
    store: FakeStore,
    sender: FakeSender | None = None,
    limiter: FakeLimiter | None = None,
    policy: SendPolicy = POLICY,
) -> Any:
    return send_message(
        parse_send_request(document),
        policy=policy,
        store=store,
        sender=sender or FakeSender(),
        limiter=limiter or FakeLimiter(),
        clock=lambda: NOW,
    )


def _lead(
    last_inbound: datetime | None = None, *, last_phone_number_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A lead as the store's get_lead shows it: the number it last wrote to, and each conversation's fields."""
    conversation = {"last_inbound_at": iso(last_inbound)} if last_inbound is not None else {}
    return {
        "wa_id": LEAD,
        "last_phone_number_id": last_phone_number_id,
        "conversations": {last_phone_number_id or "": conversation},
        **extra,
    }


class TestWindow:
    @pytest.mark.parametrize(
        ("age", "allowed"),
        [(timedelta(hours=23, minutes=59, seconds=59), True), (timedelta(hours=24), False), (timedelta(days=3), False)],
    )
    def test_free_form_needs_a_message_from_the_lead_in_the_last_24_hours(self, age: timedelta, allowed: bool) -> None:
        store = FakeStore(leads={LEAD: _lead(NOW - age)})
        sender = FakeSender()
        if allowed:
            _send({"to": LEAD, **TEXT}, store, sender)
            assert len(sender.sent) == 1
        else:
            with pytest.raises(WindowClosedError) as closed:
                _send({"to": LEAD, **TEXT}, store, sender)
            assert closed.value.window_closed_at == iso(NOW - age + timedelta(hours=24))
            assert sender.sent == []

    def test_a_lead_that_never_wrote_gets_templates_only(self) -> None:
        with pytest.raises(WindowClosedError):
            _send({"to": LEAD, **TEXT}, FakeStore())
        assert _send({"to": LEAD, **TEMPLATE}, FakeStore()).message_id == "wamid.1"

    def test_opt_out_wins_over_an_open_window(self) -> None:
        store = FakeStore(
            leads={LEAD: _lead(NOW - timedelta(minutes=1), opted_out=True, opted_out_at="2026-11-25T09:59:00Z")}
        )
        for document in ({"to": LEAD, **TEXT}, {"to": LEAD, **TEMPLATE}):
            with pytest.raises(RecipientOptedOutError) as refused:
                _send(document, store)
            assert refused.value.opted_out_at == "2026-11-25T09:59:00Z"


class TestRecipient:
    @pytest.mark.parametrize(
        "spelling", ["+972525551234", "972525551234", "052-555-1234", "0525551234", "(052) 555 1234"]
    )
    def test_every_spelling_is_sent_as_e164_and_keyed_as_wa_id(self, spelling: str) -> None:
        sender = FakeSender()
        accepted = _send({"to": spelling, **TEMPLATE}, FakeStore(), sender)
        assert sender.sent[0][1]["to"] == "+972525551234"
        assert (accepted.to, accepted.wa_id) == ("+972525551234", LEAD)

    def test_a_national_number_follows_the_configured_region(self) -> None:
        sender = FakeSender(answer_wa_id=None)
        uk = SendPolicy(
            default_phone_number_id=DEFAULT_NUMBER,
            default_region="GB",
            per_recipient_per_minute=10,
            per_number_per_second=80,
        )
        accepted = _send({"to": "07700 900123", **TEMPLATE}, FakeStore(), sender, policy=uk)
        assert accepted.to == "+447700900123"

    @pytest.mark.parametrize("impossible", ["12", "0525", "+99912345", "fifty-two"])
    def test_an_impossible_number_is_refused_before_anything_else(self, impossible: str) -> None:
        limiter = FakeLimiter()
        with pytest.raises(InvalidRecipientError):
            _send({"to": impossible, **TEMPLATE}, FakeStore(), limiter=limiter)
        assert limiter.taken == []

    def test_metas_wa_id_keys_the_record_when_it_differs(self) -> None:
        store = FakeStore()
        _send({"to": LEAD, **TEMPLATE}, store, FakeSender(answer_wa_id="972525551299"))
        assert store.records[0].wa_id == "972525551299"


class TestSendingNumber:
    def test_the_reply_goes_from_the_number_the_lead_wrote_to(self) -> None:
        store = FakeStore(leads={LEAD: _lead(NOW - timedelta(minutes=5), last_phone_number_id="110022003300")})
        sender = FakeSender()
        _send({"to": LEAD, **TEXT}, store, sender)
        assert sender.sent[0][0] == "110022003300"

    def test_the_caller_picks_one_of_our_numbers(self) -> None:
        policy = TWO_NUMBERS
        sender = FakeSender()
        _send({"to": LEAD, **TEMPLATE, "from_phone_number_id": "110022003300"}, FakeStore(), sender, policy=policy)
        assert sender.sent[0][0] == "110022003300"
        assert "from_phone_number_id" not in sender.sent[0][1]  # ours, never posted to Meta

    def test_a_number_that_is_not_ours_is_refused_before_anything_else(self) -> None:
        policy = SendPolicy(
            default_phone_number_id=DEFAULT_NUMBER,
            default_region="IL",
            per_recipient_per_minute=10,
            per_number_per_second=80,
            own_phone_number_ids=(DEFAULT_NUMBER,),
        )
        sender = FakeSender()
        with pytest.raises(ForeignSenderError):
            _send({"to": LEAD, **TEMPLATE, "from_phone_number_id": "999"}, FakeStore(), sender, policy=policy)
        assert sender.sent == []

    def test_the_window_is_the_number_the_lead_wrote_to(self) -> None:
        # The lead wrote to the second number five minutes ago: free text may go from it, not from the first.
        policy = TWO_NUMBERS
        lead = _lead(NOW - timedelta(minutes=5), last_phone_number_id="110022003300")
        with pytest.raises(WindowClosedError):
            _send(
                {"to": LEAD, **TEXT, "from_phone_number_id": DEFAULT_NUMBER},
                FakeStore(leads={LEAD: lead}),
                policy=policy,
            )
        sender = FakeSender()
        _send(
            {"to": LEAD, **TEXT, "from_phone_number_id": "110022003300"},
            FakeStore(leads={LEAD: lead}),
            sender,
            policy=policy,
        )
        assert sender.sent[0][0] == "110022003300"

    def test_each_number_has_its_own_window(self) -> None:
        # The lead wrote to the first number 25 hours ago and to the second 5 minutes ago: two conversations.
        policy = TWO_NUMBERS
        lead = _lead(NOW - timedelta(minutes=5), last_phone_number_id="110022003300")
        lead["conversations"][DEFAULT_NUMBER] = {"last_inbound_at": iso(NOW - timedelta(hours=25))}
        with pytest.raises(WindowClosedError):
            _send(
                {"to": LEAD, **TEXT, "from_phone_number_id": DEFAULT_NUMBER},
                FakeStore(leads={LEAD: lead}),
                policy=policy,
            )
        sender = FakeSender()
        _send({"to": LEAD, **TEXT}, FakeStore(leads={LEAD: lead}), sender, policy=policy)
        assert sender.sent[0][0] == "110022003300"  # the default: the number the lead last wrote to

    def test_without_a_default_or_a_known_number_nothing_is_sent(self) -> None:
        policy = SendPolicy(
            default_phone_number_id="", default_region="IL", per_recipient_per_minute=10, per_number_per_second=80
        )
        with pytest.raises(ConfigurationError):
            _send({"to": LEAD, **TEMPLATE}, FakeStore(), policy=policy)


class TestLimitsAndRecording:
    def test_a_full_limit_refuses_before_meta(self) -> None:
        sender = FakeSender()
        with pytest.raises(RateLimitedError):
            _send({"to": LEAD, **TEMPLATE}, FakeStore(), sender, FakeLimiter(full={"recipient"}))
        assert sender.sent == []

    def test_both_limits_are_taken_per_send(self) -> None:
        limiter = FakeLimiter()
        _send({"to": LEAD, **TEMPLATE}, FakeStore(), limiter=limiter)
        assert sorted(slot.key for slot in limiter.taken) == [
            f"RATE#number#{DEFAULT_NUMBER}#2026-11-25T10:00:30Z",
            f"RATE#recipient#{LEAD}#2026-11-25T10:00:00Z",
        ]

    def test_the_record_is_a_human_send_that_clears_awaits_response(self) -> None:
        store = FakeStore(leads={LEAD: _lead(NOW - timedelta(minutes=5))})
        document = {"to": LEAD, "lead_id": "crm-7", "context": {"message_id": "wamid.Q"}, **TEXT}
        _send(document, store)
        record = store.records[0]
        assert record.sent_by is SentBy.HUMAN
        assert record.awaits_response is False
        assert record.lead_id == "crm-7"
        assert record.reply_to == "wamid.Q"
        assert record.text == "שלום"
        assert record.timestamp == iso(NOW)
        assert "lead_id" not in json.loads(record.request_json or "{}")

    def test_a_failed_record_after_meta_accepted_still_reports_the_send(self) -> None:
        # Meta has the message: answering an error would invite a duplicate resend.
        accepted = _send({"to": LEAD, **TEMPLATE}, FakeStore(broken=True))
        assert accepted.message_id == "wamid.1"
        assert accepted.recorded is False


@dataclass
class RefusingSender:
    error: Exception

    def send_message(self, phone_number_id: str, message: AnyMessage) -> Accepted:
        raise self.error


@dataclass
class PreferenceStore(FakeStore):
    preferences: list[PreferenceChange] = field(default_factory=list)

    def record_preference(self, change: PreferenceChange) -> bool:
        self.preferences.append(change)
        return True


@dataclass
class FakeRefusals:
    counted: list[tuple[str, str]] = field(default_factory=list)

    def record_refusal(self, at: str, discriminator: str) -> None:
        self.counted.append((at, discriminator))


class TestRefusals:
    def _refused(self, error: Exception, store: PreferenceStore, refusals: FakeRefusals) -> None:
        with pytest.raises(type(error)):
            send_message(
                parse_send_request({"to": LEAD, **TEMPLATE}),
                policy=POLICY,
                store=store,
                sender=RefusingSender(error),
                limiter=FakeLimiter(),
                clock=lambda: NOW,
                refusals=refusals,
            )

    def test_a_refusal_by_meta_counts_against_health_and_still_reaches_the_caller(self) -> None:
        store, refusals = PreferenceStore(), FakeRefusals()
        self._refused(AuthError(code=190, http_status=401), store, refusals)
        assert refusals.counted == [(iso(NOW), LEAD)]
        assert store.preferences == [] and store.records == []

    def test_meta_s_own_rate_limit_is_pacing_not_a_failure(self) -> None:
        refusals = FakeRefusals()
        self._refused(PairRateLimitError(code=131056, http_status=400), PreferenceStore(), refusals)
        assert refusals.counted == []

    def test_meta_saying_the_lead_stopped_marketing_opts_them_out_here(self) -> None:
        # When Meta refuses a template with 131050 (the lead stopped marketing messages on WhatsApp)
        store = PreferenceStore()
        self._refused(MarketingOptOutError(code=131050, http_status=400), store, FakeRefusals())
        # Then the lead is opted out here too, so neither the CRM nor the bot keeps trying
        (change,) = store.preferences
        assert (change.wa_id, change.opted_out, change.source) == (LEAD, True, "graph:131050")
