"""scripts/sign_webhook.py dates what it replays now, so a replayed event is answered like a fresh one.

events/ hold fixed dates (2025), and the responder drops messages older than the 24-hour window: replayed
unchanged, the README's own example would be stored but never answered.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from functools import cache
from types import ModuleType
from typing import Any

from local.template import ROOT

EVENTS = ROOT / "events"
NOW = 1_780_000_000


@cache
def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sign_webhook", ROOT / "scripts" / "sign_webhook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _event_body(name: str) -> bytes:
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return base64.b64decode(event["body"]) if event.get("isBase64Encoded") else str(event["body"]).encode()


def _items(body: bytes, kind: str) -> list[dict[str, Any]]:
    document = json.loads(body)
    return [
        item for entry in document["entry"] for change in entry["changes"] for item in change["value"].get(kind, [])
    ]


def test_a_replayed_message_event_is_dated_now_and_otherwise_unchanged() -> None:
    # Given the README's example event, dated long ago
    original = _items(_event_body("webhook_post_text_he.json"), "messages")
    assert all(int(message["timestamp"]) < NOW - 24 * 3600 for message in original)
    # When it is replayed
    body = _script().body_from_file(EVENTS / "webhook_post_text_he.json", as_is=False, now=NOW)
    # Then its message is dated now, and everything else (the wamid, the Hebrew text) is as in the file
    replayed = _items(body, "messages")
    assert [message["timestamp"] for message in replayed] == [str(NOW)]
    assert [{**message, "timestamp": "x"} for message in replayed] == [{**m, "timestamp": "x"} for m in original]
    # And the body stays in Meta's wire form (ASCII, \\u escapes), which is what gets signed
    assert body.isascii() and b"\\u05e9" in body


def test_a_replayed_status_event_is_dated_now() -> None:
    body = _script().body_from_file(EVENTS / "webhook_post_status.json", as_is=False, now=NOW)
    assert {status["timestamp"] for status in _items(body, "statuses")} == {str(NOW)}


def test_keep_timestamp_keeps_the_file_s_dates() -> None:
    original = _event_body("webhook_post_text_he.json")
    body = _script().body_from_file(EVENTS / "webhook_post_text_he.json", as_is=False, keep_timestamp=True, now=NOW)
    assert json.loads(body) == json.loads(original)


def test_as_is_signs_the_file_s_bytes_unchanged() -> None:
    original = _event_body("webhook_post_text_he.json")
    assert _script().body_from_file(EVENTS / "webhook_post_text_he.json", as_is=True, now=NOW) == original


def test_image_builds_a_photo_message_of_that_media_id_with_its_caption() -> None:
    # The README's local photo walk-through: the simulator holds the file, the lead's webhook names it
    (message,) = _items(_script().text_body("972525551234", "תלוש שכר", "דנה", image="1013859600285441"), "messages")
    assert message["type"] == "image"
    assert message["image"] == {"id": "1013859600285441", "mime_type": "image/jpeg", "caption": "תלוש שכר"}
