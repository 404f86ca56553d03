"""Outbound media: a file an agent sends (a brochure, a floor plan) uploaded to Graph and kept in MediaBucket.

`POST /media` takes the file as `multipart/form-data` (a part named `file`) or as the raw body with its
Content-Type. It is checked against Meta's media rules before anything leaves (type, size per kind, bytes
that match the type), uploaded to Graph for a media id (valid 30 days at Meta), and kept in the bucket under
that id so the thread can show it and `GET /conversations/{wa_id}/media/{media_id}` can serve it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Protocol

from whatsapp_crm.clock import Clock, iso
from whatsapp_crm.media_archive import MediaObjects, MediaRecord, MediaStatus
from whatsapp_crm.media_types import MediaRule, accepted_types, base_type, rule_for, sniff_mismatch

FILE_PART = "file"
FILENAME_LIMIT = 240


@dataclass(frozen=True, slots=True)
class UploadedFile:
    content: bytes
    mime_type: str  # as the caller labelled it, base type (no parameters), aliases resolved
    filename: str | None


class UploadRefusedError(Exception):
    """A file Meta would refuse, or a body that holds none: `status` and `code` are the HTTP answer."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details


def _clean_filename(value: str | None) -> str | None:
    if not value:
        return None
    # A name, not a path: whatever a browser or client put before the last separator is dropped.
    name = value.replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(char for char in name if char.isprintable())
    return name[:FILENAME_LIMIT] or None


def _multipart_file(body: bytes, content_type: str) -> UploadedFile:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    document = BytesParser(_class=EmailMessage, policy=HTTP).parse(io.BytesIO(head + body))
    if not document.is_multipart():
        raise UploadRefusedError(400, "validation_error", "the multipart body could not be read", field="body")
    for part in document.iter_parts():
        if not isinstance(part, EmailMessage) or part.get_param("name", header="content-disposition") != FILE_PART:
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        declared = part.get_content_type() if part.get("content-type") else ""
        return UploadedFile(content, base_type(declared), _clean_filename(filename))
    raise UploadRefusedError(
        400, "validation_error", f"the multipart body has no part named '{FILE_PART}'", field=FILE_PART
    )


def read_upload(body: bytes, content_type: str | None, filename: str | None = None) -> UploadedFile:
    """The file of a POST /media body: a `file` part of multipart/form-data, or the body itself."""
    declared = (content_type or "").strip()
    if base_type(declared) == "multipart/form-data":
        return _multipart_file(body, declared)
    return UploadedFile(body, base_type(declared), _clean_filename(filename))


def check_upload(upload: UploadedFile, *, max_bytes: int) -> MediaRule:
    """Meta's rules for this file (its kind), or UploadRefusedError saying which one it breaks."""
    if not upload.mime_type:
        raise UploadRefusedError(
            415, "unsupported_media_type", "say what the file is: a Content-Type (of the part or the body)",
            accepted=accepted_types(),
        )  # fmt: skip
    rule = rule_for(upload.mime_type)
    if rule is None:
        raise UploadRefusedError(
            415, "unsupported_media_type", f"WhatsApp does not accept {upload.mime_type}", accepted=accepted_types()
        )
    if not upload.content:
        raise UploadRefusedError(400, "empty_file", "the file is empty", field=FILE_PART)
    limit = min(rule.max_bytes, max_bytes)
    if len(upload.content) > limit:
        raise UploadRefusedError(
            413, "file_too_large", f"{rule.kind.value} files of type {rule.mime_type} may be at most {limit} bytes",
            limit_bytes=limit, size=len(upload.content),
        )  # fmt: skip
    if sniff_mismatch(rule.mime_type, upload.content):
        raise UploadRefusedError(
            415, "content_mismatch", f"the file's bytes are not {rule.mime_type}", mime_type=rule.mime_type
        )
    return rule


class MediaUploader(Protocol):
    def upload_media(self, phone_number_id: str, content: bytes, *, mime_type: str, filename: str) -> str: ...


class UploadLedger(Protocol):
    def record_upload(self, record: MediaRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class UploadResult:
    media_id: str
    mime_type: str
    size: int
    sha256: str
    filename: str | None
    kind: str

    def as_json(self) -> dict[str, object]:
        return {
            "media_id": self.media_id,
            "mime_type": self.mime_type,
            "size": self.size,
            "sha256": self.sha256,
            "filename": self.filename,
            "kind": self.kind,
        }


def upload_key(media_id: str) -> str:
    return f"uploads/{media_id}"


def upload_media(
    upload: UploadedFile,
    *,
    phone_number_id: str,
    uploader: MediaUploader,
    objects: MediaObjects,
    ledger: UploadLedger,
    max_bytes: int,
    clock: Clock,
) -> UploadResult:
    """Check, upload to Graph, keep. A Graph refusal raises before anything is kept; a store failure after
    Graph accepted raises too (the orphan media id expires at Meta after 30 days; nothing refers to it)."""
    rule = check_upload(upload, max_bytes=max_bytes)
    filename = upload.filename or f"{rule.kind.value}.{rule.extension}"
    media_id = uploader.upload_media(phone_number_id, upload.content, mime_type=rule.mime_type, filename=filename)
    sha256 = hashlib.sha256(upload.content).hexdigest()
    key = upload_key(media_id)
    objects.put(
        key,
        io.BytesIO(upload.content),
        content_type=rule.mime_type,
        sha256=sha256,
        metadata={"media-id": media_id, "kind": rule.kind.value},
    )
    ledger.record_upload(
        MediaRecord(
            media_id=media_id,
            wamid="",
            wa_id="",
            status=MediaStatus.ARCHIVED,
            at=iso(clock()),
            mime_type=rule.mime_type,
            size=len(upload.content),
            sha256=sha256,
            object_key=key,
            filename=filename,
        )
    )
    return UploadResult(media_id, rule.mime_type, len(upload.content), sha256, upload.filename, rule.kind.value)


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None
