"""The Graph API client: one method per endpoint, one private `_request` that owns timeouts and retries.

Every message goes through `send_message` with the one outbound model (whatsapp_crm.send_models); there are no
per-kind senders to drift from it.

Retries are for failures that a moment later may not happen again: network errors, timeouts, HTTP 5xx
and Meta's transient codes. They are bounded by attempts *and* by seconds, because the caller is a
Lambda with its own deadline. Rate limits (including the per-user pair limit) are raised at once with a
`retry_after_seconds` hint: the caller reschedules, which neither burns Lambda time nor piles more
requests onto a limit.

A caveat that no client can remove: Meta has no idempotency key for sends, so resending after a read
timeout or a 5xx can deliver the message twice if Meta had in fact accepted the first one.

The token only ever travels in the Authorization header; errors carry Meta's texts with it scrubbed out.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

import requests

from whatsapp_crm.graph.errors import (
    GraphAPIError,
    GraphUnavailableError,
    InvalidMessageError,
    MediaDownloadError,
    MediaTooLargeError,
    TransientError,
    error_from_response,
)
from whatsapp_crm.observability import logger
from whatsapp_crm.send_models import AnyMessage as OutboundMessage

_NETWORK_FAILURES = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
_BACKOFF_BASE_SECONDS = 0.5
_BACKOFF_CAP_SECONDS = 4.0
_CHUNK_BYTES = 64 * 1024
# What `to` must look like when it leaves: '+', then the country code and number (E.164 caps it at 15 digits).
_E164 = re.compile(r"\+[1-9][0-9]{5,14}")
# Media download URLs Meta hands out live on its CDN hosts; the access token is sent to nothing else.
_MEDIA_HOST_SUFFIXES = (".fbsbx.com", ".facebook.com", ".whatsapp.net", ".fbcdn.net")
# The fields a template sync reads (Meta's default set lacks none of them, but naming them keeps pages small).
TEMPLATE_FIELDS = ("id", "name", "language", "status", "category", "parameter_format", "components")


@dataclass(frozen=True, slots=True)
class SendResult:
    """What Meta answers when it *accepts* a send; delivery is only reported later by status webhooks."""

    message_id: str
    wa_id: str | None
    input: str | None
    message_status: str | None
    """Templates only: "accepted", "held_for_quality_assessment" or "paused"."""

    @classmethod
    def from_response(cls, body: Mapping[str, Any]) -> SendResult:
        messages = body.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        message_id = first.get("id") if isinstance(first, Mapping) else None
        if not isinstance(message_id, str) or not message_id:
            raise GraphAPIError(title="the Graph API accepted the send but returned no message id")
        contacts = body.get("contacts")
        contact = contacts[0] if isinstance(contacts, list) and contacts and isinstance(contacts[0], Mapping) else {}
        status = first.get("message_status") if isinstance(first, Mapping) else None
        return cls(
            message_id=message_id,
            wa_id=_text_or_none(contact.get("wa_id")),
            input=_text_or_none(contact.get("input")),
            message_status=_text_or_none(status),
        )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """`GET /{media-id}`: where to download a media file (the URL lives 5 minutes) and what Meta says it is."""

    media_id: str
    url: str
    mime_type: str | None
    sha256: str | None
    file_size: int | None

    @classmethod
    def from_response(cls, media_id: str, body: Mapping[str, Any]) -> MediaInfo:
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise GraphAPIError(title="the Graph API returned media metadata without a download URL")
        size = body.get("file_size")
        return cls(
            media_id=_text_or_none(body.get("id")) or media_id,
            url=url,
            mime_type=_text_or_none(body.get("mime_type")),
            sha256=_text_or_none(body.get("sha256")),
            # Meta sends the size as a string of digits.
            file_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        )


@dataclass(frozen=True, slots=True)
class Downloaded:
    size: int
    sha256: str  # lower-case hex of what was written


@dataclass(frozen=True, slots=True)
class TemplatePage:
    """One page of `GET /{waba-id}/message_templates`; `after` is None on the last page (no `paging.next`)."""

    templates: list[dict[str, Any]]
    after: str | None


class _Sink:
    """Where a download streams to: counts, hashes and caps the bytes, and can start over for a retry."""

    def __init__(self, into: IO[bytes], max_bytes: int) -> None:
        self._into = into
        self._start = into.tell()
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()

    def reset(self) -> None:
        self._into.seek(self._start)
        self._into.truncate()
        self.size = 0
        self._hash = hashlib.sha256()

    def consume(self, response: requests.Response) -> None:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise MediaTooLargeError(limit=self.max_bytes, size=int(declared))
        for chunk in response.iter_content(_CHUNK_BYTES):
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise MediaTooLargeError(limit=self.max_bytes)
            self._hash.update(chunk)
            self._into.write(chunk)

    def result(self) -> Downloaded:
        return Downloaded(size=self.size, sha256=self._hash.hexdigest())


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _numeric_id(value: str | None, what: str) -> str:
    """Graph ids (media, phone number, WABA) become part of the URL path: only digits may."""
    if not value or not value.isascii() or not value.isdigit():
        raise InvalidMessageError(f"{what} must be a numeric Graph id")
    return value


def _retry_after(response: requests.Response) -> int | None:
    value = response.headers.get("Retry-After", "").strip()
    return int(value) if value.isdigit() else None


class GraphClientSettings(Protocol):
    """What each function's settings model says about its Graph calls (timeouts differ per function)."""

    @property
    def graph_api_base_url(self) -> str: ...
    @property
    def graph_api_version(self) -> str: ...
    @property
    def graph_connect_timeout_seconds(self) -> float: ...
    @property
    def graph_read_timeout_seconds(self) -> float: ...
    @property
    def graph_max_attempts(self) -> int: ...
    @property
    def graph_max_retry_seconds(self) -> float: ...


class GraphClient:
    """The WhatsApp Cloud API for one access token: one method per endpoint, all through `_request`."""

    @classmethod
    def from_settings(cls, access_token: str, settings: GraphClientSettings) -> GraphClient:
        return cls(
            access_token,
            base_url=settings.graph_api_base_url,
            version=settings.graph_api_version,
            connect_timeout=settings.graph_connect_timeout_seconds,
            read_timeout=settings.graph_read_timeout_seconds,
            max_attempts=settings.graph_max_attempts,
            max_retry_seconds=settings.graph_max_retry_seconds,
        )

    def __init__(
        self,
        access_token: str,
        *,
        base_url: str = "https://graph.facebook.com",
        version: str = "v22.0",
        session: requests.Session | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
        max_retry_seconds: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not access_token:
            raise ValueError("GraphClient needs an access token")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._token = access_token
        # requests sets Content-Type itself: JSON for sends, multipart for uploads.
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._base_url = base_url.rstrip("/")
        self._version = version.strip("/")
        self._session = session if session is not None else requests.Session()
        self._owns_session = session is None
        self._timeout = (connect_timeout, read_timeout)
        self._max_attempts = max_attempts
        self._max_retry_seconds = max_retry_seconds
        self._sleep = sleep
        self._random = random.Random()

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self._base_url!r}, version={self._version!r})"

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- sends -------------------------------------------------------------------------------------------

    def send_message(self, phone_number_id: str, message: OutboundMessage) -> SendResult:
        """`POST /{phone-number-id}/messages`: the one transport for every kind of message (pywa's
        `send_message`). `message` is the validated send model (whatsapp_crm.send_models), addressed to a
        normalized number: a `to` without '+' would get the business number's country code from Meta."""
        body = message.graph_body()
        if not _E164.fullmatch(body["to"]):
            raise InvalidMessageError("'to' must be E.164 with '+' (whatsapp_crm.phone.normalize_phone)")
        return SendResult.from_response(self._request("POST", self._messages_path(phone_number_id), body))

    def mark_as_read(self, phone_number_id: str, message_id: str, *, typing_indicator: bool = False) -> None:
        """Blue ticks on `message_id` (and everything before it); optionally show "typing…" for up to 25 s."""
        if not message_id:
            raise InvalidMessageError("mark_as_read needs the inbound message_id")
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        if typing_indicator:
            body["typing_indicator"] = {"type": "text"}
        answer = self._request("POST", self._messages_path(phone_number_id), body)
        if answer.get("success") is not True:
            raise GraphAPIError(title="the Graph API did not confirm the read receipt")

    # -- media -------------------------------------------------------------------------------------------

    def get_media(self, media_id: str, *, phone_number_id: str | None = None) -> MediaInfo:
        """`GET /{media-id}`: a fresh download URL (valid 5 minutes) with Meta's type, size and sha256.

        `phone_number_id` makes Meta check that the media belongs to that number.
        """
        params = {"phone_number_id": _numeric_id(phone_number_id, "phone_number_id")} if phone_number_id else None
        return MediaInfo.from_response(media_id, self._request("GET", _numeric_id(media_id, "media id"), params=params))

    def download_media(self, url: str, into: IO[bytes], *, max_bytes: int) -> Downloaded:
        """Stream a media URL (from `get_media`) into `into`, with the bearer token Meta requires.

        At most `max_bytes` are read (MediaTooLargeError beyond). A refused URL (expired, or not Meta's)
        is a MediaDownloadError: fetch a fresh one with `get_media`. The token is only ever sent to Meta's
        media hosts or to this client's own base URL.
        """
        if not self._trusted_media_url(url):
            raise MediaDownloadError(title="refusing to send the access token to a host that is not Meta's")
        sink = _Sink(into, max_bytes)
        self._request("GET", url, sink=sink)
        return sink.result()

    def upload_media(self, phone_number_id: str, content: bytes, *, mime_type: str, filename: str) -> str:
        """`POST /{phone-number-id}/media` (multipart): the media id to send the file by (valid 30 days)."""
        answer = self._request(
            "POST",
            f"{_numeric_id(phone_number_id, 'phone_number_id')}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, content, mime_type)},
        )
        media_id = answer.get("id")
        if not isinstance(media_id, str) or not media_id:
            raise GraphAPIError(title="the Graph API accepted the upload but returned no media id")
        return media_id

    # -- templates ---------------------------------------------------------------------------------------

    def list_templates(
        self, waba_id: str, *, after: str | None = None, limit: int = 100, fields: Sequence[str] = TEMPLATE_FIELDS
    ) -> TemplatePage:
        """One page of the WhatsApp Business Account's templates. A management call: Meta counts these
        against about 200 requests per hour per WABA, so page with a large `limit`."""
        params: dict[str, Any] = {"fields": ",".join(fields), "limit": limit}
        if after:
            params["after"] = after
        answer = self._request(
            "GET", f"{_numeric_id(waba_id, 'WhatsApp Business Account id')}/message_templates", params=params
        )
        data = answer.get("data")
        templates = [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []
        paging = _mapping(answer.get("paging"))
        cursors = _mapping(paging.get("cursors"))
        # Graph: the last page is the one without `next`; a short (even empty) page may still have one.
        next_cursor = _text_or_none(cursors.get("after")) if paging.get("next") else None
        return TemplatePage(templates=templates, after=next_cursor)

    # -- transport ---------------------------------------------------------------------------------------

    @staticmethod
    def _messages_path(phone_number_id: str) -> str:
        # The id becomes part of the URL path: anything but digits would be a different endpoint.
        if not phone_number_id or not phone_number_id.isascii() or not phone_number_id.isdigit():
            raise InvalidMessageError("phone_number_id must be the numeric id of the business phone number")
        return f"{phone_number_id}/messages"

    def _request(
        self,
        method: str,
        path: str,
        json: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        sink: _Sink | None = None,
    ) -> dict[str, Any]:
        """One Graph call with bounded, jittered retries of transient failures; raises a GraphAPIError.

        `path` is relative to the versioned base URL, or an absolute URL (media downloads). With a `sink`,
        a successful answer is streamed into it instead of parsed as JSON.
        """
        url = path if path.startswith(("https://", "http://")) else f"{self._base_url}/{self._version}/{path}"
        spent = 0.0
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            if sink is not None:
                sink.reset()
            outcome = self._attempt(method, url, json, params=params, data=data, files=files, sink=sink)
            spent += time.monotonic() - started
            if not isinstance(outcome, GraphAPIError):
                return outcome
            failure = outcome
            delay = self._backoff(attempt)
            if attempt >= self._max_attempts or spent + delay > self._max_retry_seconds:
                raise self._gave_up(failure, attempt) from failure
            logger.warning(
                "Graph API call failed; retrying",
                extra={
                    "graph_error_code": failure.code,
                    "http_status": failure.http_status,
                    "fbtrace_id": failure.fbtrace_id,
                    "attempt": attempt,
                    "retry_in_seconds": round(delay, 3),
                },
            )
            self._sleep(delay)
            spent += delay

    def _attempt(
        self,
        method: str,
        url: str,
        json: Mapping[str, Any] | None,
        *,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        files: Mapping[str, Any] | None,
        sink: _Sink | None,
    ) -> dict[str, Any] | GraphAPIError:
        """The parsed answer, or a failure worth retrying. Anything else is raised at once."""
        try:
            response = self._session.request(
                method,
                url,
                json=json,
                params=params,
                data=data,
                files=files,
                headers=self._headers,
                timeout=self._timeout,
                stream=sink is not None,
                # A download URL must not bounce the bearer token elsewhere.
                allow_redirects=sink is None,
            )
        except _NETWORK_FAILURES as exc:
            return self._unreachable(exc)
        with response:
            if 200 <= response.status_code < 300:
                if sink is None:
                    return self._parse_success(response)
                try:
                    sink.consume(response)
                except _NETWORK_FAILURES as exc:
                    return self._unreachable(exc)
                return {}
            error = self._parse_download_error(response) if sink is not None else self._parse_error(response)
        if not error.auto_retry:
            raise error
        return error

    @staticmethod
    def _unreachable(exc: Exception) -> GraphUnavailableError:
        failure = GraphUnavailableError(title=f"Graph API unreachable ({type(exc).__name__})")
        failure.__cause__ = exc
        return failure

    def _trusted_media_url(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme == "https" and any(host.endswith(suffix) for suffix in _MEDIA_HOST_SUFFIXES):
            return True
        own = urlsplit(self._base_url)
        return (parts.scheme, parts.netloc) == (own.scheme, own.netloc)

    @staticmethod
    def _parse_download_error(response: requests.Response) -> GraphAPIError:
        # Meta's media host answers with bare statuses: 5xx is worth another try, anything else means this
        # URL will not work again (expired after 5 minutes, or redirected away).
        if response.status_code >= 500:
            return TransientError(title="the media host failed", http_status=response.status_code)
        return MediaDownloadError(title="the media URL was refused", http_status=response.status_code)

    @staticmethod
    def _parse_success(response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise GraphAPIError(
                title="the Graph API answered 2xx without a JSON object", http_status=response.status_code
            )
        return body

    def _parse_error(self, response: requests.Response) -> GraphAPIError:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        return error_from_response(
            response.status_code, body, retry_after_seconds=_retry_after(response), secrets=(self._token,)
        )

    def _backoff(self, attempt: int) -> float:
        """Exponential with "equal jitter": at least half the step, so retries never bunch up at zero."""
        step = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1))
        return step / 2 + self._random.uniform(0, step / 2)

    @staticmethod
    def _gave_up(last: GraphAPIError, attempts: int) -> GraphUnavailableError:
        return GraphUnavailableError(
            f"Graph API still failing after {attempts} attempt(s): {last}",
            code=last.code,
            title=last.title,
            details=last.details,
            fbtrace_id=last.fbtrace_id,
            http_status=last.http_status,
            subcode=last.subcode,
        )
