"""Inbound media kept: what a lead sent (photos of IDs, pay slips, voice notes, floor plans) fetched from Graph
and stored in the private MediaBucket, because Meta's download URL lives 5 minutes and its media id 7 days.

Off the webhook's path: the responder hands each media message to the media queue (`request_archive`), and
the media function archives it from there (`archive_media`), once per media id. The file is checked against
Meta's size, the size cap and Meta's sha256; its MIME type is Meta's, used as a label only (an object's
Content-Type is one of Meta's media types or application/octet-stream, and it is always served as an
attachment). A file that cannot be archived keeps its message: the media is marked `unavailable` with the
reason, and asking the lead to send it again is the agent's choice, never automatic.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from whatsapp_crm.clock import Clock, iso
from whatsapp_crm.graph.errors import (
    GraphAPIError,
    InvalidParameterError,
    MediaDownloadError,
    MediaError,
    MediaTooLargeError,
)
from whatsapp_crm.media_types import normalize_sha256, sniff_mismatch, storage_type
from whatsapp_crm.webhook.models import InboundMessage

MEDIA_KINDS = frozenset({"image", "document", "audio", "video", "sticker"})
# Files up to this size stay in memory while they are checked; larger ones spill to /tmp.
_IN_MEMORY_BYTES = 8 * 1024 * 1024


class MediaStatus(StrEnum):
    PENDING = "pending"
    ARCHIVED = "archived"
    UNAVAILABLE = "unavailable"


class UnavailableReason(StrEnum):
    """Why no file is kept; the agent inbox words each one (functions/inbox/static/js/inbox.js)."""

    TOO_LARGE = "too_large"
    EMPTY = "empty"
    GONE_AT_META = "gone_at_meta"  # Meta no longer holds it (131052, an unknown id): ask the lead to resend
    META_DOWNLOAD_FAILED = "meta_download_failed"  # Meta would not hand it over, even with a fresh URL
    CHECKSUM_MISMATCH = "checksum_mismatch"
    TYPE_MISMATCH = "type_mismatch"  # the bytes contradict the type Meta names


class ArchiveRequest(BaseModel):
    """What the responder puts on the media queue for one media message."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    wamid: str = Field(min_length=1, max_length=256)
    wa_id: str = Field(min_length=1, max_length=32)
    media_id: str = Field(min_length=1, max_length=128)
    phone_number_id: str = Field(min_length=1, max_length=64)
    kind: str
    mime_type: str | None = None
    sha256: str | None = None
    filename: str | None = Field(default=None, max_length=240)


def archive_request(wamid: str, wa_id: str, phone_number_id: str, message: InboundMessage) -> ArchiveRequest | None:
    """The request for an inbound message, or None when it carries no media to keep."""
    media = message.media
    if media is None or not media.id:
        return None
    return ArchiveRequest(
        wamid=wamid,
        wa_id=wa_id,
        media_id=media.id,
        phone_number_id=phone_number_id,
        kind=message.type.value,
        mime_type=media.mime_type,
        sha256=media.sha256,
        filename=media.filename[:240] if media.filename else None,
    )


class ArchiveRequests(Protocol):
    def request(self, request: ArchiveRequest) -> None: ...


def request_archive(
    wamid: str, wa_id: str, phone_number_id: str, message: InboundMessage, sink: ArchiveRequests
) -> ArchiveRequest | None:
    """Hand a media message to the archiver (QueueUnavailableError propagates: the record is retried)."""
    request = archive_request(wamid, wa_id, phone_number_id, message)
    if request is not None:
        sink.request(request)
    return request


# --- the archiver ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaRecord:
    """The outcome kept on the message (and on the media item that the file route reads)."""

    media_id: str
    wamid: str
    wa_id: str
    status: MediaStatus
    at: str
    mime_type: str | None = None
    size: int | None = None
    sha256: str | None = None
    object_key: str | None = None
    reason: UnavailableReason | None = None
    filename: str | None = None


class MediaSource(Protocol):
    """Graph's media endpoints (whatsapp_crm.graph.GraphClient)."""

    def get_media(self, media_id: str, *, phone_number_id: str | None = None) -> Any: ...
    def download_media(self, url: str, into: IO[bytes], *, max_bytes: int) -> Any: ...


class MediaObjects(Protocol):
    """The private bucket (whatsapp_crm.store.media_objects)."""

    def put(
        self, key: str, body: IO[bytes], *, content_type: str, sha256: str, metadata: Mapping[str, str]
    ) -> None: ...


class MediaLedger(Protocol):
    """Where media outcomes are recorded (whatsapp_crm.store.media)."""

    def media_record(self, media_id: str) -> Mapping[str, Any] | None: ...
    def record_media(self, record: MediaRecord) -> bool: ...
    def record_upload(self, record: MediaRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class ArchivePolicy:
    max_bytes: int


def object_key(wa_id: str, media_id: str) -> str:
    """One object per media id, under its lead: a retried archive overwrites the same bytes."""
    return f"inbound/{wa_id}/{media_id}"


class _Unavailable(Exception):
    def __init__(self, reason: UnavailableReason, size: int | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.size = size


def _fetch(request: ArchiveRequest, source: MediaSource, into: IO[bytes], max_bytes: int) -> tuple[Any, Any]:
    """Metadata and the downloaded file; a refused URL (expired: it lives 5 minutes) is fetched afresh once."""
    for attempt in (1, 2):
        try:
            info = source.get_media(request.media_id, phone_number_id=request.phone_number_id)
        except (MediaError, InvalidParameterError) as error:
            # 131052, or 100 "object does not exist": Meta no longer has the file (ids from webhooks live 7 days).
            raise _Unavailable(UnavailableReason.GONE_AT_META) from error
        declared = info.file_size
        if declared is not None and declared > max_bytes:
            raise _Unavailable(UnavailableReason.TOO_LARGE, declared)
        if declared == 0:
            raise _Unavailable(UnavailableReason.EMPTY, 0)
        into.seek(0)
        into.truncate()
        try:
            return info, source.download_media(info.url, into, max_bytes=max_bytes)
        except MediaTooLargeError as error:
            raise _Unavailable(UnavailableReason.TOO_LARGE, error.size) from error
        except MediaDownloadError:
            if attempt == 2:
                raise _Unavailable(UnavailableReason.META_DOWNLOAD_FAILED) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _checked(request: ArchiveRequest, info: Any, downloaded: Any, body: IO[bytes]) -> tuple[str, str]:
    """(storage Content-Type, sha256 hex) of a downloaded file that is what Meta says it is."""
    if downloaded.size == 0:
        raise _Unavailable(UnavailableReason.EMPTY, 0)
    expected = normalize_sha256(info.sha256) or normalize_sha256(request.sha256)
    if expected is not None and expected != downloaded.sha256:
        raise _Unavailable(UnavailableReason.CHECKSUM_MISMATCH, downloaded.size)
    mime_type = info.mime_type or request.mime_type
    body.seek(0)
    if mime_type and sniff_mismatch(mime_type, body.read(4096)):
        raise _Unavailable(UnavailableReason.TYPE_MISMATCH, downloaded.size)
    body.seek(0)
    return storage_type(mime_type), downloaded.sha256


def archive_media(
    request: ArchiveRequest,
    *,
    source: MediaSource,
    objects: MediaObjects,
    ledger: MediaLedger,
    policy: ArchivePolicy,
    clock: Clock,
    last_attempt: bool = False,
) -> MediaRecord | None:
    """Archive one media id once. Transient Graph failures raise (the queue retries) until `last_attempt`,
    which marks the media unavailable instead, so no message stays `pending` for ever.

    None when the media id was already archived or marked unavailable (a redelivered request).
    """
    known = ledger.media_record(request.media_id)
    if known is not None and known.get("status") in (MediaStatus.ARCHIVED, MediaStatus.UNAVAILABLE):
        return None
    mime_type = request.mime_type
    with tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY_BYTES) as body:
        try:
            info, downloaded = _fetch(request, source, body, policy.max_bytes)
            mime_type = info.mime_type or mime_type
            content_type, sha256 = _checked(request, info, downloaded, body)
        except _Unavailable as failure:
            record = _unavailable(request, failure.reason, failure.size, mime_type, clock)
        except GraphAPIError:
            # Transient (Meta down, timeouts) or ours to fix (a rejected token): the queue retries, and the
            # last attempt gives up rather than leave the message pending for ever.
            if not last_attempt:
                raise
            record = _unavailable(request, UnavailableReason.META_DOWNLOAD_FAILED, None, mime_type, clock)
        else:
            key = object_key(request.wa_id, request.media_id)
            objects.put(
                key,
                body,
                content_type=content_type,
                sha256=sha256,
                metadata={"wamid": request.wamid, "media-id": request.media_id, "kind": request.kind},
            )
            record = MediaRecord(
                media_id=request.media_id,
                wamid=request.wamid,
                wa_id=request.wa_id,
                status=MediaStatus.ARCHIVED,
                at=iso(clock()),
                mime_type=mime_type,
                size=downloaded.size,
                sha256=sha256,
                object_key=key,
                filename=request.filename,
            )
    ledger.record_media(record)
    return record


def _unavailable(
    request: ArchiveRequest, reason: UnavailableReason, size: int | None, mime_type: str | None, clock: Clock
) -> MediaRecord:
    return MediaRecord(
        media_id=request.media_id,
        wamid=request.wamid,
        wa_id=request.wa_id,
        status=MediaStatus.UNAVAILABLE,
        at=iso(clock()),
        mime_type=mime_type,
        size=size,
        reason=reason,
        filename=request.filename,
    )


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# --- the file route ----------------------------------------------------------------------------------

DOWNLOAD_URL_SECONDS = 15 * 60


class MediaNotFoundError(Exception):
    """No such media, or another lead's: the answer must not tell the two apart."""


class MediaNotArchivedError(Exception):
    def __init__(self, status: str, reason: str | None) -> None:
        super().__init__(f"the media is {status}" + (f" ({reason})" if reason else ""))
        self.status = status
        self.reason = reason


class DownloadLinks(Protocol):
    def download_url(self, key: str, *, seconds: int, content_type: str, filename: str | None = None) -> str: ...


def download_link(wa_id: str, media_id: str, *, ledger: MediaLedger, objects: DownloadLinks) -> str:
    """A presigned link to the archived file, valid 15 minutes; never Meta's URL or our token.

    A lead's file is reachable only under that lead. A file an agent uploaded (the business's own brochure,
    `origin: upload`) is reachable under any lead, since it was made to be sent to leads.
    """
    record = ledger.media_record(media_id)
    if record is None:
        raise MediaNotFoundError()
    if record.get("origin") != "upload" and record.get("wa_id") != wa_id:
        raise MediaNotFoundError()
    status = str(record.get("status") or MediaStatus.PENDING.value)
    key = record.get("object_key")
    if status != MediaStatus.ARCHIVED or not isinstance(key, str):
        raise MediaNotArchivedError(status, record.get("reason"))
    return objects.download_url(
        key,
        seconds=DOWNLOAD_URL_SECONDS,
        content_type=storage_type(record.get("mime_type")),
        filename=record.get("filename") if isinstance(record.get("filename"), str) else None,
    )
