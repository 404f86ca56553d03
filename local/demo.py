"""`make demo`: a Hebrew-speaking lead books a meeting, played against the running local stack over HTTP only.

1. the lead writes "שלום, אפשר לקבוע פגישה מחר?" (a signed webhook, as Meta would send it);
2. the auto-reply reaches the Graph simulator (read through the stack's /_local/graph/requests) and its
   status webhooks come back: sent ✓, delivered ✓✓, read ✓✓ (blue);
3. the lead taps the first offered slot (a button_reply webhook quoting the reply);
4. the lead sends a photo of a pay slip: the archiver keeps it in the media bucket (moto's S3) and the file
   route hands out a 15-minute link whose bytes match Meta's sha256;
5. the agent uploads a brochure (POST /media) and sends it by its media id (POST /messages);
6. the conversation is printed as GET /conversations/{wa_id}/messages returns it;
7. the CRM events the conversation published on the event bus (GET /_local/events?wa_id=...).

Hebrew is printed for the terminal at hand (local/terminal_text.py): logical order inside Unicode isolates
where the terminal does BiDi itself, visual order where it does not; `--bidi` overrides the guess.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from local.defaults import DEFAULT_HOST, PORT_ENV, app_secret, default_port
from local.runtime import use_layers
from local.terminal_text import BidiMode, choose_mode, display_width, render

GREETING = "שלום, אפשר לקבוע פגישה מחר?"
PHOTO_CAPTION = "תלוש שכר"
BROCHURE_NAME = "פרוספקט הגפן.pdf"
BROCHURE_CAPTION = "מצורף הפרוספקט של פרויקט הגפן"
LEAD_NAME = "דנה"
TICKS = {"accepted": "🕓", "sent": "✓", "delivered": "✓✓", "read": "✓✓", "failed": "✗"}


class DemoError(Exception):
    """Something the person running the demo can fix (stack not running, a function missing...)."""


@dataclass
class Http:
    base_url: str

    def get(self, path: str) -> tuple[int, Any]:
        return self._call(urllib.request.Request(self.base_url + path, method="GET"))

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        return self._call(urllib.request.Request(self.base_url + path, data=body, headers=headers, method="POST"))

    def download(self, path: str) -> tuple[int, bytes, str]:
        """GET following redirects (the file route's 302 to a presigned link): status, bytes, final URL."""
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=30) as response:
                return response.status, response.read(), response.geturl()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read(), path

    def _call(self, request: urllib.request.Request) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as refused:
            return refused.code, _decode(refused.read())
        except (urllib.error.URLError, ConnectionError) as error:
            raise DemoError(
                f"no local stack at {self.base_url} ({error}). Start it first: make run "
                f"(another port: {PORT_ENV}=<port> make run, then {PORT_ENV}=<port> make demo)"
            ) from None


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def wait_for[T](what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise DemoError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Demo:
    def __init__(self, http: Http, mode: BidiMode, color: bool, timeout: float, out: Callable[[str], None]) -> None:
        from local import meta_payloads

        self.meta = meta_payloads
        self.http = http
        self.mode = mode
        self.color = color
        self.timeout = timeout
        self.out = out
        self.wa_id = "97252" + "".join(random.choice("0123456789") for _ in range(7))
        self.width = min(78, shutil.get_terminal_size((78, 24)).columns - 2)
        self.functions: list[str] = []

    # -- talking to the stack ----------------------------------------------------------------------------

    def check_stack(self) -> dict[str, Any]:
        status, info = self.http.get("/_local/info")
        self.functions = list(info.get("functions", [])) if isinstance(info, dict) else []
        if status != 200 or not isinstance(info, dict):
            raise DemoError(f"{self.http.base_url} is not the local stack (GET /_local/info -> {status})")
        if not info.get("simulator"):
            raise DemoError("the stack talks to the real Graph API; the demo needs the simulator (unset WHATSAPP_*)")
        if "ResponderFunction" not in info.get("functions", []):
            raise DemoError("ResponderFunction is not in template.yaml yet: nobody would answer the lead")
        return info

    def send_webhook(self, message: dict[str, Any]) -> None:
        body = self.meta.wire_bytes(self.meta.envelope(self.meta.message_value([message], name=LEAD_NAME)))
        status, answer = self.http.post("/webhook", body, self.meta.signed_headers(body, app_secret()))
        if status != 200:
            raise DemoError(f"the webhook refused the lead's message: {status} {answer}")

    def graph_sends(self) -> list[dict[str, Any]]:
        status, document = self.http.get("/_local/graph/requests")
        if status != 200:
            raise DemoError(f"GET /_local/graph/requests -> {status}")
        return [
            record
            for record in document["requests"]
            if record["status"] == 200
            and isinstance(record["body"], dict)
            and "status" not in record["body"]
            and record["body"].get("to") == f"+{self.wa_id}"
        ]

    def reply_to(self, wamid: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            for record in self.graph_sends():
                if record["body"].get("context", {}).get("message_id") == wamid:
                    return record
            return None

        return wait_for("the auto-reply (is ResponderFunction failing? see the stack's log)", probe, self.timeout)

    def wait_for_ticks(self, wamid: str) -> list[str]:
        def probe() -> list[str] | None:
            _, document = self.http.get("/_local/graph/deliveries")
            statuses = [d["status"] for d in document.get("deliveries", []) if d["wamid"] == wamid]
            return statuses if "read" in statuses or "failed" in statuses else None

        return wait_for("the status webhooks", probe, self.timeout)

    def media_of(self, wamid: str) -> dict[str, Any] | None:
        """The thread's `media` of one message once the archiver decided (archived or unavailable)."""
        status, document = self.http.get(f"/conversations/{self.wa_id}/messages")
        if status != 200:
            return None
        for message in document.get("messages", []):
            media = message.get("media") or {}
            if message.get("id") == wamid and media.get("status") in ("archived", "unavailable"):
                return dict(media)
        return None

    def photo_archived(self) -> None:
        from local.media_samples import sha256_hex

        status, added = self.http.post("/_local/graph/media?sample=photo", b"", {})
        if status != 200:
            raise DemoError(f"POST /_local/graph/media -> {status} {added}")
        self.out("")
        self.out(f"{LEAD_NAME} sends a photo of her pay slip for the mortgage check:")
        wamid = self.meta.new_wamid()
        photo: dict[str, Any] = {
            "from": self.wa_id,
            "id": wamid,
            "timestamp": str(int(time.time())),
            "type": "image",
            "image": {
                "id": added["media_id"],
                "mime_type": "image/jpeg",
                "sha256": added["sha256"],
                "caption": PHOTO_CAPTION,
            },
        }
        self.send_webhook(photo)
        self.bubble(f"[📷 {PHOTO_CAPTION}]", inbound=True)
        media = wait_for("the photo archived (is MediaFunction failing? see the stack's log)",
                         lambda: self.media_of(wamid), self.timeout)  # fmt: skip
        if media.get("status") != "archived":
            raise DemoError(f"the photo was not archived: {media.get('reason')}")
        path = f"/conversations/{self.wa_id}/media/{media['id']}"
        status, content, final_url = self.http.download(path)
        same = status == 200 and sha256_hex(content) == media.get("sha256") == added["sha256"]
        verdict = "✓ matches Meta's" if same else "✗ DOES NOT MATCH"
        digest = str(media["sha256"])[:12]
        self.out(self.indent(f"archived: {media['mime_type']}, {media['size']} bytes, sha256 {digest}… {verdict}"))
        self.out(self.indent(f"GET {path} → 302 → a 15-minute link into the media bucket ({len(content)} bytes)"))
        if not same or "X-Amz-Expires=900" not in final_url:
            raise DemoError("the archived photo could not be downloaded through the file route")

    def brochure_sent(self) -> None:
        from local.media_samples import BROCHURE

        boundary = "demo-" + "".join(random.choice("0123456789abcdef") for _ in range(16))
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="gefen-brochure.pdf"\r\n'
                "Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + BROCHURE
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, uploaded = self.http.post("/media", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 201:
            raise DemoError(f"POST /media -> {status} {uploaded}")
        self.out("")
        self.out(f"The agent uploads a brochure: POST /media → 201, media_id {uploaded['media_id']}")
        message = {
            "to": f"+{self.wa_id}",
            "type": "document",
            "document": {"id": uploaded["media_id"], "filename": BROCHURE_NAME, "caption": BROCHURE_CAPTION},
        }
        status, sent = self.http.post(
            "/messages", json.dumps(message, ensure_ascii=False).encode(), {"Content-Type": "application/json"}
        )
        if status != 201:
            raise DemoError(f"POST /messages (the brochure) -> {status} {sent}")

        def at_meta() -> dict[str, Any] | None:
            return next((r for r in self.graph_sends() if r["body"].get("type") == "document"), None)

        record = wait_for("the brochure at the simulator", at_meta, self.timeout)
        self.show_send(record["body"], "the agent's brochure")
        self.wait_for_ticks(_wamid(record))

    # -- the story ---------------------------------------------------------------------------------------

    def run(self) -> None:
        self.check_stack()
        self.out(f"Lead {LEAD_NAME} (+{self.wa_id}) writes on WhatsApp:")
        first = self.meta.text_message(self.wa_id, GREETING)
        self.send_webhook(first)
        self.bubble(GREETING, inbound=True)
        reply = self.reply_to(first["id"])
        self.show_send(reply["body"], "auto-reply")
        ticks = self.wait_for_ticks(_wamid(reply))
        self.out(self.indent(f"status webhooks: {' → '.join(ticks)}"))
        buttons = _buttons(reply["body"])
        if not buttons:
            self.out("The reply offered no slot to tap; skipping the booking.")
        else:
            slot_id, title = buttons[0]
            self.out(f"The lead taps «{render(title, self.mode)}»:")
            tap = self.meta.button_reply(self.wa_id, slot_id, title, context_id=_wamid(reply))
            self.send_webhook(tap)
            self.bubble(f"[{title}]", inbound=True)
            confirmation = self.reply_to(tap["id"])
            self.show_send(confirmation["body"], "confirmation")
            self.wait_for_ticks(_wamid(confirmation))
        if "MediaFunction" in self.functions:
            self.photo_archived()
            self.brochure_sent()
        self.print_thread()
        self.print_events()

    def print_events(self) -> None:
        """The CRM events of this lead, once the table's stream has caught up (the count stops changing)."""
        path = f"/_local/events?wa_id={self.wa_id}"
        status, document = self.http.get(path)
        if status == 404:
            self.out("No CRM event bus in template.yaml yet; no events to show.")
            return
        seen: list[int] = []

        def settled() -> list[dict[str, Any]] | None:
            _, current = self.http.get(path)
            events = list(current.get("events", [])) if isinstance(current, dict) else []
            seen.append(len(events))
            # Three polls a second apart with the same count, and at least the lead's first message.
            return events if events and len(seen) >= 3 and len(set(seen[-3:])) == 1 else None

        events = wait_for("the CRM events", settled, self.timeout, interval=1.0)
        self.out("")
        self.out(f"GET {path} (CRM events on the bus, as a consumer receives them):")
        for event in sorted(events, key=lambda event: str(event["detail"].get("occurred_at") or "")):
            detail = event["detail"]
            slot = _local_time(str(detail["slot_start"]), "%a %H:%M") if detail.get("slot_start") else None
            about = detail.get("status") or detail.get("message_type") or slot or detail.get("intent") or ""
            what = f"{event['detail-type']:<24} {about}".rstrip()
            stamp = _local_time(str(detail.get("occurred_at") or ""), "%H:%M:%S")
            self.out(f"  {stamp}  {what:<40} detail.id {str(detail['id'])[:8]}…")

    def print_thread(self) -> None:
        path = f"/conversations/{self.wa_id}/messages"
        status, document = self.http.get(path)
        self.out("")
        if status == 404 and isinstance(document, dict) and document.get("message") == "Not Found":
            self.out(f"GET {path}: no ConversationsFunction in template.yaml yet; nothing more to show.")
            return
        if status != 200:
            raise DemoError(f"GET {path} -> {status} {document}")
        self.out(f"GET {path} (oldest first):")
        self.out("─" * self.width)
        for message in oldest_first(document.get("messages", [])):
            inbound = message.get("direction") == "inbound"
            text = message.get("text") or f"[{message.get('type')}]"
            media = message.get("media") or {}
            if media:
                text = f"{text}  [{message.get('type')}: {media.get('status')}]"
            stamp = _local_time(str(message.get("timestamp") or ""))
            delivery = str(message.get("status") or "")
            tick = "" if inbound else f"{self.tick(delivery)} {delivery}"
            tags = [tag for tag in ("auto-reply" if message.get("auto_reply") else "", message.get("intent")) if tag]
            footer = f"{stamp} {tick}".strip() + (f"  ({', '.join(tags)})" if tags else "")
            self.bubble(text, inbound=inbound, footer=footer)
        self.out("─" * self.width)

    # -- printing ----------------------------------------------------------------------------------------

    def show_send(self, body: dict[str, Any], label: str) -> None:
        self.out(f"The service answers ({label}, {body.get('type')}):")
        self.bubble(_text_of(body), inbound=False)
        for _, title in _buttons(body):
            self.bubble(f"[ {title} ]", inbound=False)

    def tick(self, status: str) -> str:
        mark = TICKS.get(status, status)
        return f"\033[36m{mark}\033[0m" if status == "read" and self.color else mark

    def indent(self, text: str) -> str:
        return " " * 4 + text

    def bubble(self, text: str, *, inbound: bool, footer: str = "") -> None:
        """The lead's messages on the left, ours on the right, like the phone shows them."""
        column = self.width * 2 // 3
        lines = [line for paragraph in text.splitlines() for line in textwrap.wrap(paragraph, column) or [""]]
        if footer:
            lines.append(footer)
        for line in lines:
            shown = render(line, self.mode)
            pad = 2 if inbound else max(2, self.width - display_width(line))
            self.out(" " * pad + shown)


def oldest_first(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The API lists newest first with one-second timestamps; within a second, a reply follows what it quotes."""
    by_id = {message.get("id"): message for message in messages}

    def depth(message: dict[str, Any]) -> int:
        seen: set[Any] = set()
        while message.get("reply_to") in by_id and message.get("reply_to") not in seen:
            seen.add(message["reply_to"])
            message = by_id[message["reply_to"]]
        return len(seen)

    return sorted(messages, key=lambda message: (str(message.get("timestamp") or ""), depth(message)))


def _local_time(timestamp: str, form: str = "%H:%M") -> str:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone().strftime(form)
    except ValueError:
        return timestamp


def _wamid(record: dict[str, Any]) -> str:
    return str(record["response"]["messages"][0]["id"])


def _buttons(body: dict[str, Any]) -> list[tuple[str, str]]:
    interactive = body.get("interactive") or {}
    buttons = interactive.get("action", {}).get("buttons") or []
    return [(button["reply"]["id"], button["reply"]["title"]) for button in buttons if "reply" in button]


def _text_of(body: dict[str, Any]) -> str:
    kind = body.get("type")
    if kind == "text":
        return str(body["text"]["body"])
    if kind == "interactive":
        return str(body["interactive"].get("body", {}).get("text", ""))
    if kind == "document":
        document = body.get("document", {})
        return f"[📎 {document.get('filename') or 'document'}] {document.get('caption') or ''}".strip()
    return f"[{kind}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=default_port(), help=f"the stack's port (env {PORT_ENV}; 3000)")
    parser.add_argument("--bidi", choices=[mode.value for mode in BidiMode], help="how to print Hebrew")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each step")
    args = parser.parse_args(argv)
    use_layers()
    is_tty = sys.stdout.isatty()
    mode = BidiMode(args.bidi) if args.bidi else choose_mode(is_tty)
    demo = Demo(Http(f"http://{DEFAULT_HOST}:{args.port}"), mode, is_tty, args.timeout, print)
    # The agent inbox shows the same conversation live: open it before the lead writes.
    print(f"Agent inbox: http://{DEFAULT_HOST}:{args.port}/inbox#/c/{demo.wa_id}\n")
    try:
        demo.run()
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
