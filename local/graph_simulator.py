"""A Graph API stand-in on loopback: `POST /{version}/{phone_number_id}/messages`, answered the way Meta does.

Tests, the local stack and benches send real HTTP to it, so the client's timeouts, retries and error
mapping run exactly as they would against graph.facebook.com. It checks the Bearer token (if given one),
validates bodies at the level that catches our own bugs (messaging_product, `to` with '+', the type's
object, Meta's size limits) and answers with Meta-shaped errors. Faults can be injected: error codes,
random failure ratios, slow answers (to trip client timeouts) and a full outage.

It is stricter than Meta in one place on purpose: a `to` without '+' is refused, because Meta would
silently prepend the *business* number's country code and message a stranger.

When given a webhook URL and app secret it plays Meta's other half too: after each accepted send it POSTs
signed status webhooks (sent → delivered → read, or failed) to that URL from background threads: several
messages' statuses at once (as Meta does), each message's in order, and a webhook answered 5xx or not at all
is retried with growing pauses, as Meta retries.

It also plays Meta's media and template endpoints: `GET /{media-id}` (metadata with a download URL that
expires), the authenticated download itself, `POST /{phone-number-id}/media` (multipart upload) and
`GET /{waba-id}/message_templates` (a catalogue with cursor paging, local.template_catalogue), with faults
for each (a wrong sha256, an expired URL, a vanished file, any Graph error code).

Standalone: `python -m local.graph_simulator --port 8089` (add PYTHONPATH=layers/whatsapp for webhooks).
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import email.policy
import hashlib
import importlib.util
import itertools
import json
import queue
import random
import re
import secrets
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import parse_qs, urlsplit

from local.template_catalogue import DEFAULT_WABA_ID, TemplateRefusal, check_send, default_catalogue

_MESSAGES_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<phone_number_id>\d+)/messages/?$")
_UPLOAD_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<phone_number_id>\d+)/media/?$")
_NUMBERS_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<waba_id>\d+)/phone_numbers/?$")
_TEMPLATES_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<waba_id>\d+)/message_templates/?$")
_MEDIA_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<media_id>\d+)/?$")
_DOWNLOAD_PATH = re.compile(r"^/_media/(?P<media_id>\d+)$")
# Meta's accepted upload types and their size limits (decimal MB), as Meta's media reference lists them.
_UPLOAD_LIMITS: dict[str, int] = {
    **dict.fromkeys(("image/jpeg", "image/png"), 5_000_000),
    "image/webp": 500_000,
    **dict.fromkeys(("video/mp4", "video/3gpp", "video/3gp"), 16_000_000),
    **dict.fromkeys(("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"), 16_000_000),
    **dict.fromkeys(
        (
            "text/plain",
            "application/pdf",
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
        100_000_000,
    ),
}
# What `fail_next(..., on=...)` can aim at.
ENDPOINTS = frozenset({"messages", "media", "download", "upload", "templates"})
MEDIA_FAULTS = frozenset({"missing", "wrong_sha256", "expired_url", "download_404"})
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[\s\-().]")
_MEDIA_KINDS = frozenset({"image", "document", "audio", "video", "sticker"})
_CAPTIONED = frozenset({"image", "document", "video"})
_TYPES = frozenset({"text", "template", "interactive", "reaction", "location", "contacts"} | _MEDIA_KINDS)

TITLES: dict[int, str] = {
    0: "AuthException",
    1: "API Unknown",
    2: "API Service",
    4: "Application request limit reached",
    10: "Permission Denied",
    100: "Invalid parameter",
    190: "Invalid OAuth access token - Cannot parse access token",
    200: "Permission error",
    368: "Temporarily blocked for policies violations",
    80007: "Rate limit issues",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131005: "Access denied",
    131008: "Required parameter is missing",
    131009: "Parameter value is not valid",
    131016: "Service unavailable",
    131021: "Recipient cannot be sender",
    131026: "Message undeliverable",
    131031: "Account has been locked",
    131042: "Business eligibility payment issue",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages.",
    131051: "Unsupported message type",
    131052: "Media download error",
    131053: "Media upload error",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131057: "Account in maintenance mode",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    132015: "Template is Paused",
    132016: "Template is Disabled",
    133004: "Server temporarily unavailable",
    133010: "Phone number not registered",
}
# The HTTP status Meta's older error table gives each code; anything not listed is a 400.
HTTP_STATUS: dict[int, int] = {
    0: 401,
    190: 401,
    2: 503,
    3: 500,
    10: 403,
    131005: 403,
    368: 403,
    131031: 403,
    131000: 500,
    131016: 503,
    131057: 500,
    133004: 503,
    132001: 404,
}

DEFAULT_STATUS_SEQUENCE = ("sent", "delivered", "read")


class _Refusal(Exception):
    """A request Meta would refuse: answered as a Graph error object."""

    def __init__(self, code: int, details: str, http_status: int | None = None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.http_status = http_status or HTTP_STATUS.get(code, 400)


@dataclass
class RecordedRequest:
    """One request as the simulator saw it. `status`/`response` stay None until it was answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    phone_number_id: str | None
    status: int | None = None
    response: Any = None
    # messages, media (metadata), download, upload, templates; None for a path Meta does not serve.
    endpoint: str | None = "messages"

    @property
    def is_read(self) -> bool:
        return self.endpoint == "messages" and isinstance(self.body, dict) and "status" in self.body

    @property
    def is_send(self) -> bool:
        return self.endpoint == "messages" and not self.is_read

    @property
    def accepted(self) -> bool:
        return self.status == 200


@dataclass
class Delivery:
    """One status webhook the simulator POSTed (or tried to)."""

    wamid: str
    status: str
    http_status: int | None
    error: str | None = None
    attempts: int = 1


@dataclass
class _Fault:
    code: int
    http_status: int
    title: str | None
    details: str | None


@dataclass(frozen=True)
class _Outgoing:
    """An accepted send whose statuses are still to be reported."""

    wamid: str
    wa_id: str
    phone_number_id: str
    steps: tuple[tuple[str, _Fault | None], ...]
    # Meta echoes the send's biz_opaque_callback_data in its status webhooks.
    callback: str | None = None


@dataclass
class StoredMedia:
    """A file Meta holds: uploaded through the API, or sent by a lead (`add_media`)."""

    media_id: str
    content: bytes
    mime_type: str
    phone_number_id: str | None
    filename: str | None = None
    faults: set[str] = field(default_factory=set)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class _Faults:
    errors: list[_Fault] = field(default_factory=list)
    # Errors aimed at the media, download, upload and templates endpoints, by endpoint.
    endpoint_errors: dict[str, list[_Fault]] = field(default_factory=dict)
    async_failures: list[_Fault] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    ratio: float = 0.0
    ratio_codes: tuple[int, ...] = (131000,)
    ratio_random: random.Random = field(default_factory=random.Random)
    delay_ratio: float = 0.0
    delay_seconds: float = 0.0
    delay_random: random.Random = field(default_factory=random.Random)
    include_reads: bool = False
    outage: bool = False


def error_body(code: int, title: str | None = None, details: str | None = None) -> dict[str, Any]:
    """A Graph error object the way the send endpoint returns it."""
    title = title or TITLES.get(code, "Unknown error")
    error: dict[str, Any] = {"message": f"(#{code}) {title}", "type": "OAuthException", "code": code}
    if code not in (0, 190):
        error["error_data"] = {"messaging_product": "whatsapp", "details": details or title}
    else:
        error["message"] = title
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")
    return {"error": error}


# -- body validation (what Meta would refuse) ---------------------------------------------------------------


def _text_field(container: Any, key: str, limit: int, where: str, *, required: bool = True) -> None:
    value = container.get(key) if isinstance(container, dict) else None
    if value is None:
        if required:
            raise _Refusal(131008, f"Param {where}['{key}'] is required.")
        return
    if not isinstance(value, str) or not value:
        raise _Refusal(100, f"Param {where}['{key}'] must be a non-empty string.")
    if len(value) > limit:
        raise _Refusal(100, f"Param {where}['{key}'] must be at most {limit} characters long.")


def _object(body: dict[str, Any], kind: str) -> dict[str, Any]:
    content = body.get(kind)
    if not isinstance(content, dict):
        raise _Refusal(131008, f"Param {kind} is required for messages of type {kind}.")
    return content


def _check_text(body: dict[str, Any], kind: str, _: GraphSimulator) -> None:
    content = _object(body, kind)
    _text_field(content, "body", 4096, "text")
    if "preview_url" in content and not isinstance(content["preview_url"], bool):
        raise _Refusal(100, "Param text['preview_url'] must be a boolean.")


def _check_media(body: dict[str, Any], kind: str, simulator: GraphSimulator) -> None:
    content = _object(body, kind)
    if ("id" in content) == ("link" in content):
        raise _Refusal(100, f"Param {kind} must have exactly one of 'id' or 'link'.")
    if simulator.check_media_ids and "id" in content and simulator.media(str(content["id"])) is None:
        raise _Refusal(131053, f"Media {content['id']} was not uploaded to this number.")
    link = content.get("link")
    if link is not None and (not isinstance(link, str) or not link.startswith("https://")):
        raise _Refusal(131009, f"Param {kind}['link'] must be an https URL.")
    if "caption" in content:
        if kind not in _CAPTIONED:
            raise _Refusal(100, f"Param {kind}['caption'] is not supported for {kind} messages.")
        _text_field(content, "caption", 1024, kind)
    if "filename" in content and kind != "document":
        raise _Refusal(100, f"Param {kind}['filename'] is only supported for documents.")


def _check_template(body: dict[str, Any], kind: str, simulator: GraphSimulator) -> None:
    content = _object(body, kind)
    _text_field(content, "name", 512, "template")
    language = content.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        raise _Refusal(131008, "Param template['language']['code'] is required.")
    if "components" in content and not isinstance(content["components"], list):
        raise _Refusal(100, "Param template['components'] must be an array.")
    known = simulator.known_templates
    if known is not None and content["name"] not in known:
        raise _Refusal(132001, f"template name ({content['name']}) does not exist in {language['code']}")
    catalogue = simulator.templates
    if catalogue is not None:
        try:
            check_send(catalogue, content)
        except TemplateRefusal as refusal:
            raise _Refusal(refusal.code, refusal.details) from None


def _check_buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise _Refusal(131009, "Param interactive['action']['buttons'] must have between 1 and 3 elements.")
    for index, button in enumerate(buttons):
        reply = button.get("reply") if isinstance(button, dict) else None
        if not isinstance(button, dict) or button.get("type") != "reply" or not isinstance(reply, dict):
            raise _Refusal(100, f"Param interactive['action']['buttons'][{index}] must be a reply button.")
        _text_field(reply, "id", 256, f"interactive['action']['buttons'][{index}]['reply']")
        _text_field(reply, "title", 20, f"interactive['action']['buttons'][{index}]['reply']")
    if len({button["reply"]["id"] for button in buttons}) != len(buttons):
        raise _Refusal(131009, "Button ids must be unique.")
    if len({button["reply"]["title"] for button in buttons}) != len(buttons):
        raise _Refusal(131009, "Button titles must be unique.")


def _check_list(action: dict[str, Any]) -> None:
    _text_field(action, "button", 20, "interactive['action']")
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise _Refusal(131009, "Param interactive['action']['sections'] must have between 1 and 10 elements.")
    rows = [row for section in sections if isinstance(section, dict) for row in section.get("rows") or ()]
    if not 1 <= len(rows) <= 10:
        raise _Refusal(131009, "A list message must have between 1 and 10 rows in total.")
    for index, section in enumerate(sections):
        _text_field(section, "title", 24, f"interactive['action']['sections'][{index}]", required=len(sections) > 1)
    for row in rows:
        where = "interactive['action']['sections'][]['rows'][]"
        _text_field(row, "id", 200, where)
        _text_field(row, "title", 24, where)
        _text_field(row, "description", 72, where, required=False)


def _check_interactive(body: dict[str, Any], kind: str, _: GraphSimulator) -> None:
    content = _object(body, kind)
    subtype = content.get("type")
    if subtype not in ("button", "list"):
        return  # cta_url, flow, product...: not emulated beyond the envelope.
    _text_field(content.get("body"), "text", 1024 if subtype == "button" else 4096, "interactive['body']")
    if "header" in content:
        _text_field(content["header"], "text", 60, "interactive['header']")
    if "footer" in content:
        _text_field(content["footer"], "text", 60, "interactive['footer']")
    action = content.get("action")
    if not isinstance(action, dict):
        raise _Refusal(131008, "Param interactive['action'] is required.")
    if subtype == "button":
        _check_buttons(action)
    else:
        _check_list(action)


def _check_reaction(body: dict[str, Any], kind: str, _: GraphSimulator) -> None:
    content = _object(body, kind)
    if not isinstance(content.get("message_id"), str) or not content["message_id"]:
        raise _Refusal(131008, "Param reaction['message_id'] is required.")
    if not isinstance(content.get("emoji"), str):
        raise _Refusal(131008, "Param reaction['emoji'] is required.")


def _check_location(body: dict[str, Any], kind: str, _: GraphSimulator) -> None:
    content = _object(body, kind)
    for key, bound in (("latitude", 90), ("longitude", 180)):
        value = content.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not -bound <= value <= bound:
            raise _Refusal(100, f"Param location['{key}'] must be a number between -{bound} and {bound}.")


def _check_contacts(body: dict[str, Any], kind: str, _: GraphSimulator) -> None:
    cards = body.get(kind)
    if not isinstance(cards, list) or not cards:
        raise _Refusal(131008, "Param contacts is required for messages of type contacts.")
    for index, card in enumerate(cards):
        name = card.get("name") if isinstance(card, dict) else None
        if not isinstance(name, dict) or not isinstance(name.get("formatted_name"), str):
            raise _Refusal(131008, f"Param contacts[{index}]['name']['formatted_name'] is required.")


_CHECKS: dict[str, Callable[[dict[str, Any], str, GraphSimulator], None]] = {
    "text": _check_text,
    "template": _check_template,
    "interactive": _check_interactive,
    "reaction": _check_reaction,
    "location": _check_location,
    "contacts": _check_contacts,
    **dict.fromkeys(_MEDIA_KINDS, _check_media),
}


def _check_envelope(body: Any) -> str:
    """The recipient's digits, once the parts every send shares are valid."""
    if not isinstance(body, dict):
        raise _Refusal(100, "The request body must be a JSON object.")
    if body.get("messaging_product") != "whatsapp":
        raise _Refusal(100, "The parameter messaging_product is required and must be 'whatsapp'.")
    if body.get("recipient_type", "individual") not in ("individual", "group"):
        raise _Refusal(100, "Param recipient_type must be 'individual'.")
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise _Refusal(100, "The parameter to is required.")
    compact = _SEPARATORS.sub("", to)
    if not _E164.fullmatch(compact):
        raise _Refusal(131009, "Param to must be E.164 with a leading '+' (the simulator refuses what Meta guesses).")
    kind = body.get("type", "text")
    if kind not in _TYPES:
        raise _Refusal(100, f"Param type must be one of {sorted(_TYPES)}.")
    context = body.get("context")
    if context is not None and (not isinstance(context, dict) or not isinstance(context.get("message_id"), str)):
        raise _Refusal(100, "Param context['message_id'] must be a string.")
    return compact[1:]


def _check_read(body: dict[str, Any]) -> None:
    if body.get("messaging_product") != "whatsapp":
        raise _Refusal(100, "The parameter messaging_product is required and must be 'whatsapp'.")
    if body.get("status") != "read":
        raise _Refusal(100, "Param status must be 'read'.")
    if not isinstance(body.get("message_id"), str) or not body["message_id"]:
        raise _Refusal(131008, "The parameter message_id is required.")
    indicator = body.get("typing_indicator")
    if indicator is not None and indicator != {"type": "text"}:
        raise _Refusal(100, "Param typing_indicator['type'] must be 'text'.")


# -- the server ----------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], simulator: GraphSimulator) -> None:
        self.simulator = simulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Kept-alive client connections would otherwise keep handler threads waiting after stop()."""
        with self.connections_lock:
            for connection in list(self.connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "GraphSimulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # Quiet: tests and the local stack read the recorded requests instead.

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self._dispatch(raw)

    def do_GET(self) -> None:
        self._dispatch(b"")

    def do_DELETE(self) -> None:
        self._dispatch(b"")

    def _dispatch(self, raw: bytes) -> None:
        answer = self.server.simulator._handle(self.command, self.path, dict(self.headers.items()), raw)
        if answer is None:
            self.close_connection = True
            return
        status, payload, content_type = answer
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # The client gave up (its read timeout) before we answered.


class GraphSimulator:
    """The fake Graph API. Use as a context manager, or start()/stop(); `base_url` is the client's base_url."""

    def __init__(
        self,
        *,
        access_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_url: str | None = None,
        app_secret: str | None = None,
        status_delay: float = 0.05,
        webhook_workers: int = 4,
        webhook_attempts: int = 6,
        status_sequence: Sequence[str] = DEFAULT_STATUS_SEQUENCE,
        known_templates: Collection[str] | None = None,
        templates: Sequence[dict[str, Any]] | None = None,
        waba_id: str = DEFAULT_WABA_ID,
        media_url_ttl: float = 300.0,
        check_media_ids: bool = False,
        phone_numbers: dict[str, str] | None = None,
    ) -> None:
        if (webhook_url is None) != (app_secret is None):
            raise ValueError("status webhooks need both webhook_url and app_secret")
        self.access_token = access_token
        self.known_templates = known_templates
        # With a catalogue, template sends are checked as Meta checks them (name, status, parameters).
        self.templates: list[dict[str, Any]] | None = (
            [dict(item) for item in templates] if templates is not None else None
        )
        self.waba_id = waba_id
        # phone_number_id -> display number: the WABA's numbers. With them, a send, read or upload from any
        # other id is refused as Meta refuses an object it does not know (code 100); without, any id goes.
        self.phone_numbers = dict(phone_numbers) if phone_numbers is not None else None
        self.media_url_ttl = media_url_ttl
        self.check_media_ids = check_media_ids
        self._media: dict[str, StoredMedia] = {}
        self._media_ids = itertools.count(880_000_000_000_001)
        self.webhook_url = webhook_url
        self._app_secret = app_secret
        self.status_delay = status_delay
        self.webhook_workers = max(1, webhook_workers)
        self.webhook_attempts = max(1, webhook_attempts)
        self.status_sequence = tuple(status_sequence)
        self._address = (host, port)
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []
        self._faults = _Faults()
        self._deliveries: list[Delivery] = []
        self._delivered = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._outbox: queue.Queue[_Outgoing | None] = queue.Queue()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._wamids = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> GraphSimulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self._address, self)
        serving = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="graph-simulator", daemon=True
        )
        serving.start()
        self._threads = [serving]
        if self.webhook_url:
            for number in range(self.webhook_workers):
                worker = threading.Thread(
                    target=self._deliver_statuses, name=f"graph-simulator-webhooks-{number}", daemon=True
                )
                worker.start()
                self._threads.append(worker)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        for _ in range(self.webhook_workers):
            self._outbox.put(None)
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> GraphSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The Graph origin to give GraphClient(base_url=...), without a version."""
        return f"http://{self._address[0]}:{self.port}"

    def environment(self, version: str = "v22.0") -> dict[str, str]:
        """Environment overrides that point a function's Graph client (GraphSettings) at this simulator."""
        return {"GRAPH_API_BASE_URL": self.base_url, "GRAPH_API_VERSION": version}

    def messages_url(self, phone_number_id: str, version: str = "v22.0") -> str:
        return f"{self.base_url}/{version}/{phone_number_id}/messages"

    # -- what was received -------------------------------------------------------------------------------

    def recorded(self) -> list[RecordedRequest]:
        """Every request, in arrival order, answered or not (a delayed one has status None until answered)."""
        with self._lock:
            return list(self._records)

    def sent_messages(self) -> list[dict[str, Any]]:
        """Bodies of the sends that were accepted (HTTP 200): what a user would actually receive."""
        with self._lock:
            return [record.body for record in self._records if record.accepted and record.is_send]

    def reads(self) -> list[dict[str, Any]]:
        """Bodies of the accepted mark-as-read (and typing indicator) requests."""
        with self._lock:
            return [record.body for record in self._records if record.accepted and record.is_read]

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def wait_for_deliveries(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        """Block until `count` status webhooks were attempted; raises TimeoutError otherwise."""
        with self._delivered:
            if not self._delivered.wait_for(lambda: len(self._deliveries) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self._deliveries)} of {count} status webhooks delivered")
            return list(self._deliveries)

    def clear(self) -> None:
        """Forget recorded requests and deliveries (injected faults stay)."""
        with self._lock:
            self._records.clear()
            self._deliveries.clear()

    def reset(self) -> None:
        """Forget everything: records, deliveries, injected faults, outage."""
        with self._lock:
            self._records.clear()
            self._deliveries.clear()
            self._faults = _Faults()

    # -- fault injection ---------------------------------------------------------------------------------

    def fail_next(
        self,
        code: int,
        http_status: int | None = None,
        times: int = 1,
        title: str | None = None,
        *,
        details: str | None = None,
        include_reads: bool = False,
        on: str = "messages",
    ) -> None:
        """Answer the next `times` sends with Graph error `code` (HTTP status from Meta's table unless given).

        Reads (mark-as-read) are left alone unless `include_reads`, so a test can fail a reply without
        failing the read receipt the responder sends first. `on` aims the error at another endpoint
        instead: media (metadata), download, upload or templates.
        """
        if on not in ENDPOINTS:
            raise ValueError(f"on must be one of {sorted(ENDPOINTS)}")
        fault = _Fault(code, http_status or HTTP_STATUS.get(code, 400), title, details)
        with self._lock:
            if on == "messages":
                self._faults.errors.extend([fault] * times)
                self._faults.include_reads = self._faults.include_reads or include_reads
            else:
                self._faults.endpoint_errors.setdefault(on, []).extend([fault] * times)

    def fail_ratio(
        self, ratio: float, codes: Sequence[int] = (131000,), seed: int | None = None, *, include_reads: bool = False
    ) -> None:
        """Fail each send with probability `ratio` (0 turns it off), with a code drawn from `codes`."""
        if not 0.0 <= ratio <= 1.0 or not codes:
            raise ValueError("ratio must be within [0, 1] and codes must not be empty")
        with self._lock:
            self._faults.ratio = ratio
            self._faults.ratio_codes = tuple(codes)
            self._faults.ratio_random = random.Random(seed)
            self._faults.include_reads = self._faults.include_reads or include_reads

    def fail_async_next(self, code: int, times: int = 1, title: str | None = None) -> None:
        """Accept the next `times` sends (200 + wamid), then report them `failed` with `code` by webhook.

        This is how 131047, 131026 and 131049 usually surface in production.
        """
        with self._lock:
            self._faults.async_failures.extend([_Fault(code, 200, title, None)] * times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Hold the next `times` requests for `seconds` before answering (to trip client read timeouts)."""
        with self._lock:
            self._faults.delays.extend([seconds] * times)

    def delay_ratio(self, ratio: float, seconds: float, seed: int | None = None) -> None:
        """Hold each send with probability `ratio` for `seconds` before answering (0 turns it off).

        Past the client's read timeout this is a timeout whose send Meta accepted all the same.
        """
        if not 0.0 <= ratio <= 1.0 or seconds < 0:
            raise ValueError("ratio must be within [0, 1] and seconds not negative")
        with self._lock:
            self._faults.delay_ratio = ratio
            self._faults.delay_seconds = seconds
            self._faults.delay_random = random.Random(seed)

    def set_outage(self, down: bool) -> None:
        """While down, every request gets a bare HTTP 500 with an HTML body, like a failing load balancer."""
        with self._lock:
            self._faults.outage = down

    # -- media and templates (Meta's side) ----------------------------------------------------------------

    def add_media(
        self,
        content: bytes,
        mime_type: str,
        *,
        phone_number_id: str | None = None,
        filename: str | None = None,
        faults: Collection[str] = (),
    ) -> str:
        """Hold a file as Meta would after a lead sent it; the media id goes into the inbound webhook.

        `faults`: `missing` (GET /{media-id} says no such object), `wrong_sha256` (the metadata's sha256 is
        not the file's), `expired_url` (download URLs are already expired when issued), `download_404`
        (the file is gone from the media host).
        """
        unknown = set(faults) - MEDIA_FAULTS
        if unknown:
            raise ValueError(f"unknown media faults {sorted(unknown)}; known: {sorted(MEDIA_FAULTS)}")
        media_id = str(next(self._media_ids))
        with self._lock:
            self._media[media_id] = StoredMedia(media_id, content, mime_type, phone_number_id, filename, set(faults))
        return media_id

    def media(self, media_id: str) -> StoredMedia | None:
        """A file Meta holds (uploaded, or added with `add_media`)."""
        with self._lock:
            return self._media.get(media_id)

    def uploads(self) -> list[StoredMedia]:
        with self._lock:
            return [
                self._media[record.response["id"]]
                for record in self._records
                if record.endpoint == "upload" and record.accepted
            ]

    def set_templates(self, templates: Sequence[dict[str, Any]] | None) -> None:
        """Replace the template catalogue (None: no catalogue, template sends are not checked)."""
        with self._lock:
            self.templates = [dict(item) for item in templates] if templates is not None else None

    def set_template_status(self, name: str, language: str, status: str) -> None:
        with self._lock:
            for template in self.templates or []:
                if template.get("name") == name and template.get("language") == language:
                    template["status"] = status
                    return
        raise KeyError(f"no template {name} ({language}) in the catalogue")

    # -- request handling (called from handler threads) --------------------------------------------------

    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, str] | None:
        bare = path.split("?", 1)[0]
        match = _MESSAGES_PATH.match(bare)
        endpoint, other = _route(method, bare)
        record = RecordedRequest(
            method=method,
            path=path,
            headers={name: value for name, value in headers.items() if name.lower() != "authorization"},
            body=_upload_summary(headers, raw) if endpoint == "upload" else _parse_json(raw),
            phone_number_id=match["phone_number_id"] if match else other.get("phone_number_id"),
            endpoint=endpoint,
        )
        with self._lock:
            self._records.append(record)
            faults = self._faults
            delay = faults.delays.pop(0) if faults.delays else 0.0
            if not delay and faults.delay_ratio and record.is_send:
                delay = faults.delay_seconds if faults.delay_random.random() < faults.delay_ratio else 0.0
        if delay and self._stopping.wait(delay):
            return None
        if endpoint in ("messages", None):
            status, payload, content_type = self._answer(method, match, headers, record)
        else:
            status, payload, content_type = self._answer_other(endpoint, other, path, headers, raw, record)
        with self._lock:
            record.status, record.response = status, payload
        return status, payload, content_type

    def _answer(
        self, method: str, match: re.Match[str] | None, headers: dict[str, str], record: RecordedRequest
    ) -> tuple[int, Any, str]:
        with self._lock:
            outage = self._faults.outage
        if outage:
            return 500, b"<html><body>500 Internal Server Error</body></html>", "text/html"
        try:
            self._check_token(headers)
            if match is None or method != "POST":
                raise _Refusal(100, f"Unsupported {method.lower()} request.", http_status=400)
            if record.body is None:
                raise _Refusal(100, "The request body is not valid JSON.")
            self._check_number(match["phone_number_id"])
            self._injected_fault(record)
            if record.is_read:
                _check_read(record.body)
                return 200, {"success": True}, "application/json"
            return 200, self._accept(record.body, match["phone_number_id"]), "application/json"
        except _Refusal as refusal:
            return refusal.http_status, error_body(refusal.code, details=refusal.details), "application/json"
        except _InjectedFault as injected:
            fault = injected.fault
            return fault.http_status, error_body(fault.code, fault.title, fault.details), "application/json"

    def _answer_other(
        self,
        endpoint: str,
        params: dict[str, str],
        path: str,
        headers: dict[str, str],
        raw: bytes,
        record: RecordedRequest,
    ) -> tuple[int, Any, str]:
        """Media metadata, downloads, uploads and the template catalogue."""
        with self._lock:
            outage = self._faults.outage
            queued = self._faults.endpoint_errors.get(endpoint)
            injected = queued.pop(0) if queued else None
        if outage:
            return 500, b"<html><body>500 Internal Server Error</body></html>", "text/html"
        query = {key: values[-1] for key, values in parse_qs(urlsplit(path).query).items()}
        try:
            self._check_token(headers)
            if injected is not None:
                raise _InjectedFault(injected)
            if endpoint == "media":
                return 200, self._media_metadata(params["media_id"], query), "application/json"
            if endpoint == "download":
                return self._download(params["media_id"], query)
            if endpoint == "upload":
                self._check_number(params["phone_number_id"])
                return 200, self._upload(params["phone_number_id"], headers, raw), "application/json"
            if endpoint == "phone_numbers":
                return 200, self._number_list(params["waba_id"]), "application/json"
            return 200, self._template_page(params["waba_id"], query), "application/json"
        except _Refusal as refusal:
            if endpoint == "download":
                # Meta's media host answers with bare statuses, not Graph error objects.
                return refusal.http_status, b"", "text/plain"
            return refusal.http_status, error_body(refusal.code, details=refusal.details), "application/json"
        except _InjectedFault as fault:
            failure = fault.fault
            return failure.http_status, error_body(failure.code, failure.title, failure.details), "application/json"

    def _stored(self, media_id: str) -> StoredMedia:
        with self._lock:
            stored = self._media.get(media_id)
        if stored is None or "missing" in stored.faults:
            raise _Refusal(
                100, f"Unsupported get request. Object with ID '{media_id}' does not exist or cannot be loaded."
            )
        return stored

    def _media_metadata(self, media_id: str, query: dict[str, str]) -> dict[str, Any]:
        stored = self._stored(media_id)
        asked_number = query.get("phone_number_id")
        if asked_number and stored.phone_number_id and asked_number != stored.phone_number_id:
            raise _Refusal(100, "The media does not belong to this phone number.")
        ttl = 0.0 if "expired_url" in stored.faults else self.media_url_ttl
        expires = int(time.time() + ttl)
        sha256 = stored.sha256 if "wrong_sha256" not in stored.faults else hashlib.sha256(b"not the file").hexdigest()
        return {
            "messaging_product": "whatsapp",
            "url": f"{self.base_url}/_media/{media_id}?ext={expires}&hash={secrets.token_hex(8)}",
            "mime_type": stored.mime_type,
            "sha256": sha256,
            "file_size": str(len(stored.content)),
            "id": media_id,
        }

    def _download(self, media_id: str, query: dict[str, str]) -> tuple[int, Any, str]:
        with self._lock:
            stored = self._media.get(media_id)
        expires = query.get("ext", "")
        if stored is None or "download_404" in stored.faults or not expires.isdigit() or int(expires) <= time.time():
            raise _Refusal(100, "not found", http_status=404)
        return 200, stored.content, stored.mime_type

    def _upload(self, phone_number_id: str, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
        fields, file_part = _multipart(headers, raw)
        if fields.get("messaging_product") != "whatsapp":
            raise _Refusal(100, "The parameter messaging_product is required and must be 'whatsapp'.")
        if file_part is None:
            raise _Refusal(131008, "The parameter file is required.")
        filename, content, part_type = file_part
        mime_type = (fields.get("type") or part_type or "").split(";", 1)[0].strip().lower()
        limit = _UPLOAD_LIMITS.get(mime_type)
        if limit is None:
            raise _Refusal(
                131053, f"Param file must be a file with one of the following types: {sorted(_UPLOAD_LIMITS)}"
            )
        if not content:
            raise _Refusal(131053, "The uploaded file is empty.")
        if len(content) > limit:
            raise _Refusal(131053, f"The file is larger than the {limit} bytes allowed for {mime_type}.")
        media_id = str(next(self._media_ids))
        with self._lock:
            self._media[media_id] = StoredMedia(media_id, content, mime_type, phone_number_id, filename)
        return {"id": media_id}

    def _template_page(self, waba_id: str, query: dict[str, str]) -> dict[str, Any]:
        if waba_id != self.waba_id:
            raise _Refusal(100, f"Unsupported get request. Object with ID '{waba_id}' does not exist.")
        with self._lock:
            catalogue = [dict(item) for item in self.templates or []]
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 25
        start = _cursor_index(query.get("after"))
        page = catalogue[start : start + max(1, limit)]
        fields = [name for name in query.get("fields", "").split(",") if name]
        if fields:
            page = [{key: value for key, value in item.items() if key in fields or key == "id"} for item in page]
        answer: dict[str, Any] = {"data": page}
        if catalogue:
            end = start + len(page)
            answer["paging"] = {"cursors": {"before": _cursor(start), "after": _cursor(end - 1 if page else start)}}
            if end < len(catalogue):
                answer["paging"]["cursors"]["after"] = _cursor(end)
                answer["paging"]["next"] = (
                    f"{self.base_url}/v22.0/{waba_id}/message_templates?limit={limit}&after={_cursor(end)}"
                )
        return answer

    def _check_number(self, phone_number_id: str) -> None:
        if self.phone_numbers is not None and phone_number_id not in self.phone_numbers:
            details = (
                f"Unsupported post request. Object with ID '{phone_number_id}' does not exist, cannot be loaded "
                "due to missing permissions, or does not support this operation."
            )
            raise _Refusal(100, details, http_status=400)

    def _number_list(self, waba_id: str) -> dict[str, Any]:
        """`GET /{waba-id}/phone_numbers`: the WABA's numbers, as WhatsApp Manager shows them."""
        if waba_id != self.waba_id:
            raise _Refusal(100, f"Unsupported get request. Object with ID '{waba_id}' does not exist.", 400)
        numbers = self.phone_numbers or {}
        return {
            "data": [
                {
                    "id": number_id,
                    "display_phone_number": f"+{display[0]} {display[1:4]}-{display[4:7]}-{display[7:]}",
                    "verified_name": f"Demo Realty {index + 1}",
                    "code_verification_status": "VERIFIED",
                    "quality_rating": "GREEN",
                    "platform_type": "CLOUD_API",
                    "throughput": {"level": "STANDARD"},
                }
                for index, (number_id, display) in enumerate(numbers.items())
            ],
            "paging": {"cursors": {"before": _cursor(0), "after": _cursor(max(len(numbers) - 1, 0))}},
        }

    def _check_token(self, headers: dict[str, str]) -> None:
        if self.access_token is None:
            return
        given = next((value for name, value in headers.items() if name.lower() == "authorization"), "")
        if not secrets.compare_digest(given.encode(), f"Bearer {self.access_token}".encode()):
            raise _Refusal(190, "Invalid OAuth access token - Cannot parse access token", http_status=401)

    def _injected_fault(self, record: RecordedRequest) -> None:
        with self._lock:
            faults = self._faults
            if record.is_read and not faults.include_reads:
                return
            if faults.errors:
                raise _InjectedFault(faults.errors.pop(0))
            if faults.ratio and faults.ratio_random.random() < faults.ratio:
                code = faults.ratio_random.choice(faults.ratio_codes)
                raise _InjectedFault(_Fault(code, HTTP_STATUS.get(code, 400), None, None))

    def _accept(self, body: dict[str, Any], phone_number_id: str) -> dict[str, Any]:
        wa_id = _check_envelope(body)
        kind = body.get("type", "text")
        _CHECKS[kind](body, kind, self)
        wamid = f"wamid.HBgL{next(self._wamids):06d}{uuid.uuid4().hex.upper()}"
        message: dict[str, Any] = {"id": wamid}
        if kind == "template":
            message["message_status"] = "accepted"
        with self._lock:
            failure = self._faults.async_failures.pop(0) if self._faults.async_failures else None
        if self.webhook_url:
            callback = body.get("biz_opaque_callback_data")
            steps = self._status_steps(kind, failure)
            self._outbox.put(
                _Outgoing(wamid, wa_id, phone_number_id, steps, callback if isinstance(callback, str) else None)
            )
        contact = {"input": body["to"], "wa_id": wa_id}
        return {"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]}

    # -- status webhooks ---------------------------------------------------------------------------------

    def _status_steps(self, kind: str, failure: _Fault | None) -> tuple[tuple[str, _Fault | None], ...]:
        if failure is not None:
            return (("failed", failure),)
        if kind == "reaction":
            return (("sent", None),)  # Meta reports only `sent` for reactions.
        return tuple((name, None) for name in self.status_sequence)

    def _deliver_statuses(self) -> None:
        from local import meta_payloads as meta

        while True:
            outgoing = self._outbox.get()
            if outgoing is None:
                return
            for name, error in outgoing.steps:
                if self._stopping.wait(self.status_delay):
                    return
                if error is None:
                    status = meta.status(outgoing.wamid, name, outgoing.wa_id)
                else:
                    title = error.title or TITLES.get(error.code, "Message failed")
                    status = meta.status(outgoing.wamid, name, outgoing.wa_id, error_code=error.code, error_title=title)
                if outgoing.callback is not None:
                    status["biz_opaque_callback_data"] = outgoing.callback
                document = meta.envelope(meta.status_value([status], outgoing.phone_number_id))
                body = meta.wire_bytes(document)
                self._post_webhook(outgoing.wamid, name, body, meta.signed_headers)

    def _post_webhook(
        self, wamid: str, status: str, body: bytes, signed_headers: Callable[[bytes, str], dict[str, str]]
    ) -> None:
        if self.webhook_url is None or self._app_secret is None:
            return
        request = urlrequest.Request(
            self.webhook_url, data=body, headers=signed_headers(body, self._app_secret), method="POST"
        )
        delivery = Delivery(wamid=wamid, status=status, http_status=None, attempts=0)
        pause = 0.5
        while delivery.attempts < self.webhook_attempts:
            delivery.attempts += 1
            delivery.http_status, delivery.error = None, None
            try:
                with urlrequest.urlopen(request, timeout=10) as response:
                    delivery.http_status = response.status
            except urlerror.HTTPError as refused:
                delivery.http_status = refused.code
            except (urlerror.URLError, OSError) as failed:
                delivery.error = type(failed).__name__
            # Meta retries what was not taken (no answer or a 5xx); a 4xx is our webhook's final word.
            if delivery.http_status is not None and delivery.http_status < 500:
                break
            if self._stopping.wait(pause):
                break
            pause *= 2
        with self._delivered:
            self._deliveries.append(delivery)
            self._delivered.notify_all()


class _InjectedFault(Exception):
    def __init__(self, fault: _Fault) -> None:
        super().__init__(fault.code)
        self.fault = fault


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _route(method: str, path: str) -> tuple[str | None, dict[str, str]]:
    """Which of Meta's endpoints a request is for, and its path parameters."""
    if _MESSAGES_PATH.match(path):
        return "messages", {}
    for endpoint, pattern, wanted in (
        ("upload", _UPLOAD_PATH, "POST"),
        ("templates", _TEMPLATES_PATH, "GET"),
        ("phone_numbers", _NUMBERS_PATH, "GET"),
        ("media", _MEDIA_PATH, "GET"),
        ("download", _DOWNLOAD_PATH, "GET"),
    ):
        found = pattern.match(path)
        if found and method == wanted:
            return endpoint, found.groupdict()
    return None, {}


def _multipart(headers: dict[str, str], raw: bytes) -> tuple[dict[str, str], tuple[str | None, bytes, str] | None]:
    """Form fields and the `file` part (filename, bytes, its Content-Type) of a multipart/form-data body."""
    content_type = next((value for name, value in headers.items() if name.lower() == "content-type"), "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise _Refusal(100, "Upload requests must be multipart/form-data.")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    fields: dict[str, str] = {}
    file_part: tuple[str | None, bytes, str] | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "file":
            file_part = (part.get_filename(), data, part.get_content_type())
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", "replace")
    return fields, file_part


def _upload_summary(headers: dict[str, str], raw: bytes) -> dict[str, Any] | None:
    """What an upload carried, without its bytes (recorded requests stay small)."""
    try:
        fields, file_part = _multipart(headers, raw)
    except _Refusal:
        return None
    summary: dict[str, Any] = dict(fields)
    if file_part is not None:
        filename, content, part_type = file_part
        summary["file"] = {
            "filename": filename,
            "content_type": part_type,
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
    return summary


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"i{index}".encode()).decode().rstrip("=")


def _cursor_index(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise _Refusal(100, "Invalid cursor.") from None
    if not text.startswith("i") or not text[1:].isdigit():
        raise _Refusal(100, "Invalid cursor.")
    return int(text[1:])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Graph API simulator on loopback.")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    parser.add_argument("--access-token", default=None, help="require this Bearer token (default: accept any)")
    parser.add_argument("--webhook-url", default=None, help="POST signed status webhooks here after each send")
    parser.add_argument("--app-secret", default=None, help="sign status webhooks with this app secret")
    parser.add_argument("--status-delay", type=float, default=0.5, help="seconds between sent/delivered/read")
    args = parser.parse_args(argv)
    if args.webhook_url:
        # Status webhooks are built by local.meta_payloads, which signs with the layer's signature module.
        if importlib.util.find_spec("whatsapp_crm") is None:
            parser.error("status webhooks need the layer on the path: PYTHONPATH=layers/whatsapp")
    simulator = GraphSimulator(
        access_token=args.access_token,
        port=args.port,
        webhook_url=args.webhook_url,
        app_secret=args.app_secret,
        status_delay=args.status_delay,
        templates=default_catalogue(),
    )
    with simulator:
        print(f"Graph API simulator on {simulator.base_url}", flush=True)
        print(f"  POST {simulator.base_url}/v22.0/<phone_number_id>/messages", flush=True)
        stopping = threading.Event()
        # The local stack stops its children with SIGTERM; a shell's background job may ignore SIGINT.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
        while not stopping.wait(0.5):
            pass
        print("stopping", flush=True)


if __name__ == "__main__":
    main()
