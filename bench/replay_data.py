"""A realistic day of Meta webhooks for bench/replay.py: deterministic from a seed, signed like Meta.

What a day holds (`generate_day(n=10_000, leads=500)`):
- inbound messages from `leads` leads over the last ten hours: Hebrew, English and mixed texts of every
  intent (greeting, availability, meeting, opt-out, default), media of every kind, locations, contact cards,
  reactions, taps on meeting-slot buttons and template quick replies, unsupported messages; about one
  message webhook in twelve carries two messages of the same lead (Meta batches);
- status webhooks for the outbound messages the CRM sent before the replay (sent, delivered, read, or a
  failure; `delivered` sometimes implied and never sent), in shuffled order, one to three per webhook;
- 20% byte-identical redeliveries of valid webhooks (same body, same signature), arriving later;
- 5% unsigned or tampered bodies (no signature, another secret's signature, a body changed after signing);
- 2% malformed: signed bodies that are not JSON, truncated, of a foreign object, not UTF-8, nested past any
  parser, or a correct envelope whose only message lacks its id or sender (skipped, never stored).

Every body is in Meta's wire encoding (local.meta_payloads.wire_bytes: `\\uXXXX` escapes, `\\/`) and signed
with local.meta_payloads.signed_headers, so the signature covers exactly the bytes sent.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from local import meta_payloads as meta

MESSAGE = "message"
STATUS = "status"
REDELIVERY = "redelivery"
UNSIGNED = "unsigned"
WRONG_SECRET = "wrong_secret"
TAMPERED = "tampered"
MALFORMED = "malformed"
MALFORMED_PART = "malformed_part"

VALID_KINDS = frozenset({MESSAGE, STATUS, REDELIVERY})
ATTACK_KINDS = frozenset({UNSIGNED, WRONG_SECRET, TAMPERED})

# Texts by intent and language. Every one is checked against the intent engine by
# tests/reliability/test_replay_data.py, so the day holds each intent it claims to.
TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "greeting": {
        "he": ("שלום", "היי 👋", "ערב טוב", "בוקר טוב!", "שלום לכם", "היי, מה שלומך?"),
        "en": ("Hi", "Hello!", "Good morning", "hey there 🙂", "Good evening"),
        "mixed": ("היי, hello", "שלום hi!"),
    },
    "availability": {
        "he": (
            "מתי אתם זמינים?",
            "מה שעות הפעילות שלכם?",
            "אתה זמין היום?",
            "מתי אפשר לדבר?",
            "אתם פתוחים מחר?",
        ),
        "en": ("When are you available?", "What are your opening hours?", "Are you open today?", "When can we talk?"),
        "mixed": ("היי, when are you available?", "Are you זמין today?"),
    },
    "meeting": {
        "he": (
            "אפשר לקבוע פגישה מחר?",
            "שלום, אפשר לקבוע פגישה מחר?",
            "אני רוצה לראות את הדירה",
            "אפשר לתאם ביקור בנכס ברחוב הרצל 12?",
            "נשמח לקבוע פגישה השבוע",
        ),
        "en": ("Can we schedule a meeting?", "I'd like to see the apartment", "Can I book a viewing tomorrow?"),
        "mixed": ("Hi, אפשר לקבוע פגישה tomorrow?", "I want to see the דירה, can we schedule a meeting?"),
    },
    "opt_out": {
        "he": ("הסירו אותי מהרשימה", "די, תפסיקו לשלוח לי הודעות", "הסר"),
        "en": ("STOP", "Please remove me from your list", "unsubscribe"),
        "mixed": ("stop, הסירו אותי",),
    },
    "default": {
        "he": (
            "כמה עולה הדירה ברחוב ויצמן?",
            "יש חניה בבניין?",
            "הדירה עדיין רלוונטית? ראיתי ב-https://example.com/listing/42",
            'המחיר כולל ארנונה? "4 חדרים" כתוב במודעה',
            "תודה רבה 🙏",
            "קומה כמה?\nויש מעלית?",
        ),
        "en": (
            "How much is the rent?",
            "Is parking included?",
            "Saw the listing at https://example.com/p/17 - still on the market?",
            "Thanks! 👍",
            "Does the building have an elevator?",
        ),
        "mixed": ("Is the דירה in תל אביב still for rent?", "מחיר per month?"),
    },
}
LANGUAGE_SHARE = (("he", 0.6), ("en", 0.25), ("mixed", 0.15))
HEBREW_NAMES = ("דנה כהן", "יוסי לוי", "מיכל אברהם", "אבי מזרחי", "נועה פרץ", "איתי ביטון", "שירה דהן", "עומר אזולאי")
ENGLISH_NAMES = ("Dana Cohen", "Josh Levy", "Michelle Abrams", "Avi M.", "Noa P.", "Sarah 🌸", "Tom", "Rachel O'Neil")
EMOJI = ("👍", "❤️", "😂", "🙏", "🔥", "😮")
MEDIA_KINDS = ("image", "audio", "document", "video", "sticker")
MIME = {
    "image": "image/jpeg",
    "audio": "audio/ogg; codecs=opus",
    "document": "application/pdf",
    "video": "video/mp4",
    "sticker": "image/webp",
}
BUSINESS_ZONE = ZoneInfo("Asia/Jerusalem")
DAY_SECONDS = 10 * 3600


@dataclass(frozen=True)
class Webhook:
    """One POST /webhook of the day, exactly as it goes on the wire."""

    index: int
    kind: str
    body: bytes
    headers: dict[str, str]
    # Inbound message wamids a valid webhook carries; for the rest, wamids that must never be stored.
    wamids: tuple[str, ...] = ()
    # (wamid, status) pairs of a status webhook.
    statuses: tuple[tuple[str, str], ...] = ()
    original: int | None = None

    @property
    def valid(self) -> bool:
        """Signed, well-formed and from Meta: must be answered 200 (after retries, like Meta's)."""
        return self.kind in VALID_KINDS

    @property
    def expected_statuses(self) -> frozenset[int]:
        if self.valid or self.kind == MALFORMED_PART:
            return frozenset({200})
        if self.kind == UNSIGNED:
            return frozenset({401})
        if self.kind in (WRONG_SECRET, TAMPERED):
            return frozenset({403})
        return frozenset({400, 413})


@dataclass(frozen=True)
class InboundSpec:
    wamid: str
    wa_id: str
    message_type: str
    timestamp: int
    text: str | None = None
    language: str | None = None
    intent: str | None = None  # the intent the text was written for (texts only)


@dataclass(frozen=True)
class OutboundSpec:
    """A message the CRM sent before the replay; the day carries its status webhooks."""

    wamid: str
    wa_id: str
    statuses: tuple[str, ...]


@dataclass
class Day:
    webhooks: list[Webhook]
    inbound: dict[str, InboundSpec] = field(default_factory=dict)
    outbound: dict[str, OutboundSpec] = field(default_factory=dict)
    leads: tuple[str, ...] = ()

    def count(self, kind: str) -> int:
        return sum(1 for webhook in self.webhooks if webhook.kind == kind)


class _Builder:
    def __init__(self, seed: int, leads: int, app_secret: str, now: float) -> None:
        self.random = random.Random(seed)
        self.app_secret = app_secret
        self.start = int(now) - DAY_SECONDS - 600
        self.leads = tuple(f"9725{self.random.randrange(0, 10**8):08d}" for _ in range(leads))
        self.names = {
            wa_id: self.random.choice(HEBREW_NAMES if self.random.random() < 0.65 else ENGLISH_NAMES)
            for wa_id in self.leads
        }
        self.language = {wa_id: self._pick_language() for wa_id in self.leads}
        # About one lead in 25 opts out at some point of the day and keeps writing now and then.
        self.opts_out = {wa_id for wa_id in self.leads if self.random.random() < 0.04}
        self.serial = 0
        self.inbound: dict[str, InboundSpec] = {}
        self.outbound: dict[str, OutboundSpec] = {}

    def _pick_language(self) -> str:
        roll, total = self.random.random(), 0.0
        for language, share in LANGUAGE_SHARE:
            total += share
            if roll < total:
                return language
        return "he"

    def wamid(self, prefix: str) -> str:
        self.serial += 1
        token = "".join(self.random.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20))
        return f"wamid.HBgM{prefix}{self.serial:07d}{token}=="

    def signed(self, document: Any) -> tuple[bytes, dict[str, str]]:
        body = meta.wire_bytes(document)
        return body, meta.signed_headers(body, self.app_secret)

    # --- inbound messages ---------------------------------------------------------------------------

    def _text(self, wa_id: str, intent: str) -> tuple[str, str]:
        language = self.language[wa_id]
        if self.random.random() < 0.15:
            language = self.random.choice(("he", "en", "mixed"))
        return self.random.choice(TEXTS[intent][language]), language

    def _slot_id(self, at: int) -> tuple[str, str]:
        """A meeting slot in business hours within the next days, as our buttons carry it."""
        local = datetime.fromtimestamp(at, BUSINESS_ZONE) + timedelta(days=self.random.randint(1, 6))
        while local.weekday() in (4, 5):  # Friday, Saturday: outside "sun-thu"
            local += timedelta(days=1)
        slot = local.replace(hour=self.random.choice((9, 10, 11, 13, 14, 16)), minute=0, second=0, microsecond=0)
        if self.random.random() < 0.2:
            slot = slot.replace(hour=22)  # outside business hours: the responder re-offers
        return "slot:" + slot.isoformat(timespec="minutes"), slot.strftime("%a %H:%M")

    def message(self, wa_id: str, at: int, intent_hint: str | None) -> dict[str, Any]:
        wamid = self.wamid("IN")
        base: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(at)}
        roll = self.random.random()
        spec_text: str | None = None
        language: str | None = None
        intent: str | None = None
        if intent_hint is not None or roll < 0.70:
            intent = (
                intent_hint
                or self.random.choices(("greeting", "availability", "meeting", "default"), weights=(18, 20, 20, 42))[0]
            )
            spec_text, language = self._text(wa_id, intent)
            message = {**base, "type": "text", "text": {"body": spec_text}}
            if self.random.random() < 0.05:
                message["context"] = {"from": meta.DEMO_DISPLAY_NUMBER, "id": self.wamid("CTX")}
        elif roll < 0.76:
            slot_id, title = self._slot_id(at)
            context = {"from": meta.DEMO_DISPLAY_NUMBER, "id": self.wamid("OUT")}
            choice = {"type": "button_reply", "button_reply": {"id": slot_id, "title": title}}
            message = {**base, "type": "interactive", "context": context, "interactive": choice}
        elif roll < 0.79:
            payload = self.random.choice(("Yes, I'm interested", "כן, מעוניין", "Schedule a visit"))
            context = {"from": meta.DEMO_DISPLAY_NUMBER, "id": self.wamid("TPL")}
            message = {**base, "type": "button", "context": context, "button": {"payload": payload, "text": payload}}
        elif roll < 0.89:
            kind = self.random.choice(MEDIA_KINDS)
            media: dict[str, Any] = {"mime_type": MIME[kind], "sha256": "q83Y8+KnVQ==", "id": str(10**15 + self.serial)}
            if kind in ("image", "video", "document") and self.random.random() < 0.5:
                media["caption"] = self.random.choice(("התמונה מהסלון", "floor plan 📐", "חוזה / contract"))
            if kind == "document":
                media["filename"] = "חוזה שכירות.pdf"
            if kind == "audio":
                media["voice"] = True
            message = {**base, "type": kind, kind: media}
        elif roll < 0.91:
            location = {"latitude": 32.0853, "longitude": 34.781768, "name": "דיזנגוף סנטר", "address": "תל אביב"}
            message = {**base, "type": "location", "location": location}
        elif roll < 0.92:
            card = {
                "name": {"formatted_name": "רות ישראלי", "first_name": "רות"},
                "phones": [{"phone": "+972 52-555-0000"}],
            }
            message = {**base, "type": "contacts", "contacts": [card]}
        elif roll < 0.99:
            reaction = {"message_id": self.wamid("OUT"), "emoji": self.random.choice(EMOJI)}
            message = {**base, "type": "reaction", "reaction": reaction}
        else:
            error = {
                "code": 131051,
                "title": "Message type unknown",
                "message": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."},
            }
            message = {**base, "type": "unsupported", "errors": [error], "unsupported": {"type": "poll_creation"}}
        self.inbound[wamid] = InboundSpec(wamid, wa_id, message["type"], at, spec_text, language, intent)
        return message

    def message_webhook(self, wa_id: str, at: int, intent_hint: str | None) -> tuple[bytes, dict[str, str], list[str]]:
        messages = [self.message(wa_id, at, intent_hint)]
        if intent_hint is None and self.random.random() < 0.08:
            messages.append(self.message(wa_id, at + self.random.randint(1, 20), None))
        value = meta.message_value(messages, name=self.names[wa_id])
        body, headers = self.signed(meta.envelope(value))
        return body, headers, [message["id"] for message in messages]

    # --- statuses of earlier outbound messages ------------------------------------------------------

    def outbound_statuses(self, wanted: int) -> list[tuple[int, dict[str, Any]]]:
        """(time, status object) pairs for enough outbound messages to fill `wanted` statuses."""
        statuses: list[tuple[int, dict[str, Any]]] = []
        while len(statuses) < wanted:
            wa_id = self.random.choice(self.leads)
            wamid = self.wamid("OUT")
            sent_at = self.start + self.random.randint(0, DAY_SECONDS - 120)
            roll = self.random.random()
            if roll < 0.80:
                names: tuple[str, ...] = ("sent", "delivered", "read")
            elif roll < 0.90:
                names = ("sent", "read")  # `delivered` implied by `read` and never sent
            elif roll < 0.95:
                names = ("sent", "delivered")
            else:
                names = ("sent", "failed")
            self.outbound[wamid] = OutboundSpec(wamid, wa_id, names)
            for step, name in enumerate(names):
                at = sent_at + step * self.random.randint(1, 40)
                if name == "failed":
                    code = self.random.choice((131026, 131049))
                    status = meta.status(wamid, name, wa_id, timestamp=at, error_code=code)
                else:
                    status = meta.status(wamid, name, wa_id, timestamp=at)
                statuses.append((at, status))
        return statuses

    # --- what Meta never sends --------------------------------------------------------------------------

    def attack(self, kind: str, at: int) -> Webhook:
        wa_id = self.random.choice(self.leads)
        message = meta.text_message(wa_id, self.random.choice(("שלום", "free money 💰 http://x.example")), timestamp=at)
        message["id"] = self.wamid("BAD")
        body = meta.wire_bytes(meta.envelope(meta.message_value([message], name="Mallory")))
        if kind == UNSIGNED:
            headers = {"content-type": "application/json", "user-agent": "curl/8"}
        elif kind == WRONG_SECRET:
            headers = meta.signed_headers(body, "not-the-app-secret")
        else:
            headers = meta.signed_headers(body, self.app_secret)
            body = body.replace(b"Mallory", b"Mallorz")
        return Webhook(-1, kind, body, headers, wamids=(message["id"],))

    def malformed(self, at: int) -> Webhook:
        wa_id = self.random.choice(self.leads)
        message = meta.text_message(wa_id, "שלום", timestamp=at)
        message["id"] = self.wamid("BAD")
        good = meta.wire_bytes(meta.envelope(meta.message_value([message])))
        shape = self.random.randrange(7)
        kind = MALFORMED
        if shape == 0:
            body = good[: len(good) // 2]
        elif shape == 1:
            body = b"hello, this is not json"
        elif shape == 2:
            body = meta.wire_bytes([meta.envelope(meta.message_value([message]))])
        elif shape == 3:
            body = meta.wire_bytes({"object": "page", "entry": [{"id": "1", "changes": []}]})
        elif shape == 4:
            body = good.replace(b"\\u05e9", b"\xd7") + b"\xff\xfe"
        elif shape == 5:
            body = b"[" * 200_000 + b"]" * 200_000
        else:
            kind = MALFORMED_PART
            missing = self.random.choice(("id", "from"))
            broken = {key: value for key, value in message.items() if key != missing}
            value = {"messaging_product": "whatsapp", "metadata": meta.metadata(), "messages": [broken]}
            body = meta.wire_bytes(meta.envelope(value))
        return Webhook(-1, kind, body, meta.signed_headers(body, self.app_secret), wamids=(message["id"],))


def _message_plan(builder: _Builder, count: int) -> list[tuple[int, str, str | None]]:
    """(time, lead, intent hint) for each message webhook, every lead writing at least once."""
    rng = builder.random
    plan: list[tuple[int, str, str | None]] = []
    for index in range(count):
        wa_id = builder.leads[index] if index < len(builder.leads) else rng.choice(builder.leads)
        plan.append((builder.start + rng.randint(0, DAY_SECONDS), wa_id, None))
    plan.sort()
    # Each opting-out lead says so once, somewhere in the middle of its own messages.
    by_lead: dict[str, list[int]] = {}
    for position, (_, wa_id, _hint) in enumerate(plan):
        by_lead.setdefault(wa_id, []).append(position)
    for wa_id in sorted(builder.opts_out):
        positions = by_lead.get(wa_id, [])
        if positions:
            chosen = positions[len(positions) // 2]
            at, _, _ = plan[chosen]
            plan[chosen] = (at, wa_id, "opt_out")
    return plan


def _pack_statuses(builder: _Builder, statuses: list[tuple[int, dict[str, Any]]], webhooks: int) -> list[Webhook]:
    """Shuffled (Meta delivers concurrently), then one to three statuses per webhook."""
    rng = builder.random
    jittered = sorted(statuses, key=lambda pair: pair[0] + rng.randint(-1800, 1800))
    packed: list[Webhook] = []
    position = 0
    while len(packed) < webhooks and position < len(jittered):
        size = 1 if rng.random() < 0.85 else rng.randint(2, 3)
        group = jittered[position : position + size]
        position += size
        value = meta.status_value([status for _, status in group])
        body, headers = builder.signed(meta.envelope(value))
        pairs = tuple((status["id"], status["status"]) for _, status in group)
        packed.append(Webhook(group[0][0], STATUS, body, headers, statuses=pairs))
    return packed


def generate_day(
    n: int = 10_000, leads: int = 500, *, seed: int = 20261125, app_secret: str, now: float | None = None
) -> Day:
    """The day's webhooks in firing order. `n` counts every POST, redeliveries and bad ones included."""
    if n < 20 or leads < 1:
        raise ValueError("a day needs at least 20 webhooks and one lead")
    builder = _Builder(seed, leads, app_secret, time.time() if now is None else now)
    rng = builder.random
    malformed, attacks, redeliveries = round(n * 0.02), round(n * 0.05), round(n * 0.20)
    originals = n - malformed - attacks - redeliveries
    message_webhooks = round(originals * 0.62)
    status_webhooks = originals - message_webhooks

    timed: list[tuple[int, Webhook]] = []
    for at, wa_id, hint in _message_plan(builder, message_webhooks):
        body, headers, wamids = builder.message_webhook(wa_id, at, hint)
        timed.append((at, Webhook(-1, MESSAGE, body, headers, wamids=tuple(wamids))))
    statuses = builder.outbound_statuses(round(status_webhooks * 1.3))
    timed += [(webhook.index, webhook) for webhook in _pack_statuses(builder, statuses, status_webhooks)]
    timed.sort(key=lambda pair: pair[0])
    ordered = [webhook for _, webhook in timed]

    # Attacks and malformed bodies anywhere; redeliveries of valid webhooks some time after the original.
    for _ in range(attacks):
        kind = rng.choice((UNSIGNED, UNSIGNED, WRONG_SECRET, TAMPERED))
        ordered.insert(
            rng.randrange(len(ordered) + 1), builder.attack(kind, builder.start + rng.randint(0, DAY_SECONDS))
        )
    for _ in range(malformed):
        ordered.insert(rng.randrange(len(ordered) + 1), builder.malformed(builder.start + rng.randint(0, DAY_SECONDS)))
    final = _with_redeliveries(ordered, redeliveries, rng)
    webhooks = [
        Webhook(index, hook.kind, hook.body, hook.headers, hook.wamids, hook.statuses, hook.original)
        for index, hook in enumerate(final)
    ]
    return Day(webhooks=webhooks, inbound=builder.inbound, outbound=builder.outbound, leads=builder.leads)


def _with_redeliveries(ordered: Sequence[Webhook], count: int, rng: random.Random) -> list[Webhook]:
    valid_positions = [position for position, webhook in enumerate(ordered) if webhook.valid]
    copies: dict[int, list[Webhook]] = {}
    for _ in range(count):
        source = rng.choice(valid_positions)
        original = ordered[source]
        # Meta retries "immediately, then with decreasing frequency": most copies come soon, some much later.
        lag = int(rng.expovariate(1 / 150)) + 1
        target = min(len(ordered) - 1, source + lag)
        copies.setdefault(target, []).append(
            Webhook(-1, REDELIVERY, original.body, original.headers, original.wamids, original.statuses, source)
        )
    final: list[Webhook] = []
    position_of: dict[int, int] = {}
    for position, webhook in enumerate(ordered):
        position_of[position] = len(final)
        final.append(webhook)
        for copy in copies.get(position, []):
            final.append(copy)
    # `original` names the original's index in the final order.
    return [
        Webhook(-1, hook.kind, hook.body, hook.headers, hook.wamids, hook.statuses, position_of[hook.original])
        if hook.original is not None
        else hook
        for hook in final
    ]


def describe(day: Day) -> dict[str, Any]:
    """Counts of what the day holds, for the report."""
    kinds: dict[str, int] = {}
    for webhook in day.webhooks:
        kinds[webhook.kind] = kinds.get(webhook.kind, 0) + 1
    types: dict[str, int] = {}
    languages: dict[str, int] = {}
    for spec in day.inbound.values():
        types[spec.message_type] = types.get(spec.message_type, 0) + 1
        if spec.language:
            languages[spec.language] = languages.get(spec.language, 0) + 1
    return {
        "webhooks": len(day.webhooks),
        "by_kind": kinds,
        "leads": len(day.leads),
        "inbound_messages": len(day.inbound),
        "inbound_by_type": types,
        "texts_by_language": languages,
        "outbound_with_statuses": len(day.outbound),
        "first_message_at": datetime.fromtimestamp(min(s.timestamp for s in day.inbound.values()), UTC).isoformat()
        if day.inbound
        else None,
    }


if __name__ == "__main__":
    sample = generate_day(200, 20, app_secret="local-app-secret-not-for-production")
    print(json.dumps(describe(sample), ensure_ascii=False, indent=2))
