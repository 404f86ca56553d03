"""The Graph API client: one method per send endpoint, one private `_request` that owns timeouts and retries.

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

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from whatsapp_crm.graph import payloads
from whatsapp_crm.graph.errors import (
    GraphAPIError,
    GraphUnavailableError,
    InvalidMessageError,
    error_from_response,
)
from whatsapp_crm.graph.payloads import MediaKind
from whatsapp_crm.observability import logger

_NETWORK_FAILURES = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
_BACKOFF_BASE_SECONDS = 0.5
_BACKOFF_CAP_SECONDS = 4.0


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
    @property
    def default_phone_region(self) -> str: ...


class GraphClient:
    """WhatsApp Cloud API sends for one access token. `to` takes any number phone.normalize_phone accepts."""

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
            default_region=settings.default_phone_region,
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
        default_region: str = "IL",
    ) -> None:
        if not access_token:
            raise ValueError("GraphClient needs an access token")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._token = access_token
        self._headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
        self._base_url = base_url.rstrip("/")
        self._version = version.strip("/")
        self._session = session if session is not None else requests.Session()
        self._owns_session = session is None
        self._timeout = (connect_timeout, read_timeout)
        self._max_attempts = max_attempts
        self._max_retry_seconds = max_retry_seconds
        self._sleep = sleep
        self._default_region = default_region
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

    def send_message(self, phone_number_id: str, message: Mapping[str, Any]) -> SendResult:
        """Send a Meta send object as is (the send API's passthrough), completed and with `to` normalized."""
        return self._send(phone_number_id, payloads.message(message, default_region=self._default_region))

    def send_text(
        self,
        phone_number_id: str,
        to: str,
        body: str,
        *,
        preview_url: bool = False,
        reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        return self._send(
            phone_number_id,
            payloads.text(
                to,
                body,
                preview_url=preview_url,
                reply_to=reply_to,
                biz_opaque_callback_data=biz_opaque_callback_data,
                default_region=self._default_region,
            ),
        )

    def send_template(
        self,
        phone_number_id: str,
        to: str,
        name: str,
        language_code: str,
        components: Sequence[Mapping[str, Any]] = (),
        *,
        reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        return self._send(
            phone_number_id,
            payloads.template(
                to,
                name,
                language_code,
                components,
                reply_to=reply_to,
                biz_opaque_callback_data=biz_opaque_callback_data,
                default_region=self._default_region,
            ),
        )

    def send_media(
        self,
        phone_number_id: str,
        to: str,
        kind: MediaKind,
        *,
        media_id: str | None = None,
        link: str | None = None,
        caption: str | None = None,
        filename: str | None = None,
        reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        return self._send(
            phone_number_id,
            payloads.media(
                to,
                kind,
                media_id=media_id,
                link=link,
                caption=caption,
                filename=filename,
                reply_to=reply_to,
                biz_opaque_callback_data=biz_opaque_callback_data,
                default_region=self._default_region,
            ),
        )

    def send_reply_buttons(
        self,
        phone_number_id: str,
        to: str,
        body: str,
        buttons: Sequence[tuple[str, str]],
        *,
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """`buttons` are (id, title) pairs, 1 to 3; the id comes back in the user's button_reply."""
        return self._send(
            phone_number_id,
            payloads.reply_buttons(
                to,
                body,
                buttons,
                header=header,
                footer=footer,
                reply_to=reply_to,
                biz_opaque_callback_data=biz_opaque_callback_data,
                default_region=self._default_region,
            ),
        )

    def send_list(
        self,
        phone_number_id: str,
        to: str,
        body: str,
        button: str,
        sections: Sequence[Mapping[str, Any]],
        *,
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """`sections` in Meta's shape: [{"title", "rows": [{"id", "title", "description"?}]}], 10 rows in all."""
        return self._send(
            phone_number_id,
            payloads.list_message(
                to,
                body,
                button,
                sections,
                header=header,
                footer=footer,
                reply_to=reply_to,
                biz_opaque_callback_data=biz_opaque_callback_data,
                default_region=self._default_region,
            ),
        )

    def send_reaction(self, phone_number_id: str, to: str, message_id: str, emoji: str) -> SendResult:
        return self._send(
            phone_number_id, payloads.reaction(to, message_id, emoji, default_region=self._default_region)
        )

    def send_location(
        self,
        phone_number_id: str,
        to: str,
        latitude: float,
        longitude: float,
        *,
        name: str | None = None,
        address: str | None = None,
        reply_to: str | None = None,
    ) -> SendResult:
        return self._send(
            phone_number_id,
            payloads.location(
                to,
                latitude,
                longitude,
                name=name,
                address=address,
                reply_to=reply_to,
                default_region=self._default_region,
            ),
        )

    def send_contacts(
        self,
        phone_number_id: str,
        to: str,
        contacts: Sequence[Mapping[str, Any]],
        *,
        reply_to: str | None = None,
    ) -> SendResult:
        return self._send(
            phone_number_id,
            payloads.contacts(to, contacts, reply_to=reply_to, default_region=self._default_region),
        )

    def mark_as_read(self, phone_number_id: str, message_id: str, *, typing_indicator: bool = False) -> None:
        """Blue ticks on `message_id` (and everything before it); optionally show "typing…" for up to 25 s."""
        answer = self._request(
            "POST",
            self._messages_path(phone_number_id),
            payloads.mark_as_read(message_id, typing_indicator=typing_indicator),
        )
        if answer.get("success") is not True:
            raise GraphAPIError(title="the Graph API did not confirm the read receipt")

    # -- transport ---------------------------------------------------------------------------------------

    def _send(self, phone_number_id: str, body: Mapping[str, Any]) -> SendResult:
        return SendResult.from_response(self._request("POST", self._messages_path(phone_number_id), body))

    @staticmethod
    def _messages_path(phone_number_id: str) -> str:
        # The id becomes part of the URL path: anything but digits would be a different endpoint.
        if not phone_number_id or not phone_number_id.isascii() or not phone_number_id.isdigit():
            raise InvalidMessageError("phone_number_id must be the numeric id of the business phone number")
        return f"{phone_number_id}/messages"

    def _request(self, method: str, path: str, json: Mapping[str, Any] | None) -> dict[str, Any]:
        """One Graph call with bounded, jittered retries of transient failures; raises a GraphAPIError."""
        url = f"{self._base_url}/{self._version}/{path}"
        spent = 0.0
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            outcome = self._attempt(method, url, json)
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

    def _attempt(self, method: str, url: str, json: Mapping[str, Any] | None) -> dict[str, Any] | GraphAPIError:
        """The parsed answer, or a failure worth retrying. Anything else is raised at once."""
        try:
            response = self._session.request(method, url, json=json, headers=self._headers, timeout=self._timeout)
        except _NETWORK_FAILURES as exc:
            failure = GraphUnavailableError(title=f"Graph API unreachable ({type(exc).__name__})")
            failure.__cause__ = exc
            return failure
        if 200 <= response.status_code < 300:
            return self._parse_success(response)
        error = self._parse_error(response)
        if not error.auto_retry:
            raise error
        return error

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
