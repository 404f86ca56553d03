"""The media archive's rules with fakes: what is asked for, what is kept, what is refused, and the thread view."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import pytest

from whatsapp_crm.graph.errors import GraphUnavailableError, MediaDownloadError, MediaTooLargeError
from whatsapp_crm.media_archive import (
    ArchivePolicy,
    ArchiveRequest,
    MediaNotArchivedError,
    MediaNotFoundError,
    MediaRecord,
    MediaStatus,
    UnavailableReason,
    archive_media,
    archive_request,
    download_link,
)
from whatsapp_crm.read_api import message_view
from whatsapp_crm.webhook.models import InboundMessage

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0" + b"\x10" * 2000


@dataclass
class Info:
    media_id: str
    url: str
    mime_type: str | None
    sha256: str | None
    file_size: int | None


@dataclass
class Downloaded:
    size: int
    sha256: str


@dataclass
class FakeGraph:
    content: bytes = JPEG
    mime_type: str = "image/jpeg"
    expired_urls: int = 0  # how many download URLs are refused before one works
    down: bool = False
    calls: list[str] = field(default_factory=list)

    def get_media(self, media_id: str, *, phone_number_id: str | None = None) -> Info:
        self.calls.append("media")
        if self.down:
            raise GraphUnavailableError(title="down")
        digest = hashlib.sha256(self.content).hexdigest()
        return Info(
            media_id, f"https://lookaside.fbsbx.com/{len(self.calls)}", self.mime_type, digest, len(self.content)
        )

    def download_media(self, url: str, into: IO[bytes], *, max_bytes: int) -> Downloaded:
        self.calls.append("download")
        if self.expired_urls:
            self.expired_urls -= 1
            raise MediaDownloadError(title="expired", http_status=404)
        if len(self.content) > max_bytes:
            raise MediaTooLargeError(limit=max_bytes)
        into.write(self.content)
        return Downloaded(len(self.content), hashlib.sha256(self.content).hexdigest())


@dataclass
class FakeBucket:
    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def put(self, key: str, body: IO[bytes], *, content_type: str, sha256: str, metadata: Mapping[str, str]) -> None:
        self.objects[key] = (body.read(), content_type)

    def download_url(self, key: str, *, seconds: int, content_type: str, filename: str | None = None) -> str:
        return f"https://bucket.s3.amazonaws.com/{key}?X-Amz-Expires={seconds}"


@dataclass
class FakeLedger:
    records: dict[str, MediaRecord] = field(default_factory=dict)

    def media_record(self, media_id: str) -> Mapping[str, Any] | None:
        record = self.records.get(media_id)
        if record is None:
            return None
        return {"status": record.status.value, "wa_id": record.wa_id, "object_key": record.object_key,
                "mime_type": record.mime_type, "reason": record.reason}  # fmt: skip

    def record_media(self, record: MediaRecord) -> bool:
        self.records[record.media_id] = record
        return True

    def record_upload(self, record: MediaRecord) -> None:
        self.records[record.media_id] = record


REQUEST = ArchiveRequest(
    wamid="wamid.1", wa_id="972525551234", media_id="1013859600285441", phone_number_id="106540352242922",
    kind="image", mime_type="image/jpeg",
)  # fmt: skip


def _archive(
    graph: FakeGraph, ledger: FakeLedger | None = None, **options: Any
) -> tuple[MediaRecord | None, FakeBucket]:
    bucket = FakeBucket()
    record = archive_media(
        REQUEST,
        source=graph,
        objects=bucket,
        ledger=ledger or FakeLedger(),
        policy=ArchivePolicy(max_bytes=options.pop("max_bytes", 5_000_000)),
        clock=lambda: NOW,
        **options,
    )
    return record, bucket


class TestWhatIsAskedFor:
    @pytest.mark.parametrize("kind", ["image", "document", "audio", "video", "sticker"])
    def test_every_media_kind_is_asked_for(self, kind: str) -> None:
        media = {"id": "77", "mime_type": "x/y", "sha256": "abc", "filename": "a.pdf"}
        request = archive_request("wamid.1", "972525551234", "1065", _inbound({"type": kind, kind: media}))
        assert request is not None and (request.media_id, request.kind) == ("77", kind)
        assert (request.mime_type, request.sha256, request.filename) == ("x/y", "abc", "a.pdf")

    @pytest.mark.parametrize(
        "message",
        [
            {"type": "text", "text": {"body": "x"}},
            {"type": "image", "image": {}},
            {"type": "image", "image": {"id": ""}},
            {"type": "poll", "poll": {"id": "7"}},  # a kind Meta adds later carries nothing to archive
        ],
    )
    def test_no_media_id_no_request(self, message: dict[str, Any]) -> None:
        assert archive_request("wamid.1", "972525551234", "1065", _inbound(message)) is None


def _inbound(fields: dict[str, Any]) -> InboundMessage:
    return InboundMessage.model_validate({"id": "wamid.1", "from": "972525551234", "timestamp": "1764000000", **fields})


class TestArchive:
    def test_a_file_is_kept_under_its_lead_with_metas_type(self) -> None:
        record, bucket = _archive(FakeGraph())
        assert record is not None and record.status is MediaStatus.ARCHIVED
        assert bucket.objects == {"inbound/972525551234/1013859600285441": (JPEG, "image/jpeg")}
        assert record.sha256 == hashlib.sha256(JPEG).hexdigest()

    def test_an_expired_url_is_fetched_afresh_once(self) -> None:
        graph = FakeGraph(expired_urls=1)
        record, _ = _archive(graph)
        assert record is not None and record.status is MediaStatus.ARCHIVED
        assert graph.calls == ["media", "download", "media", "download"]

    def test_a_type_meta_does_not_accept_is_stored_opaque(self) -> None:
        graph = FakeGraph(content=b"<html><script>alert(1)</script></html>", mime_type="text/html")
        record, bucket = _archive(graph)
        assert record is not None and record.status is MediaStatus.ARCHIVED
        assert next(iter(bucket.objects.values()))[1] == "application/octet-stream"

    def test_too_large_is_refused_before_any_byte_is_read(self) -> None:
        graph = FakeGraph()
        record, bucket = _archive(graph, max_bytes=100)
        assert record is not None and record.reason is UnavailableReason.TOO_LARGE and record.size == len(JPEG)
        assert graph.calls == ["media"] and bucket.objects == {}

    def test_a_transient_failure_is_retried_by_the_queue_until_the_last_attempt(self) -> None:
        with pytest.raises(GraphUnavailableError):
            _archive(FakeGraph(down=True))
        record, _ = _archive(FakeGraph(down=True), last_attempt=True)
        assert record is not None and record.reason is UnavailableReason.META_DOWNLOAD_FAILED

    def test_an_archived_media_id_is_not_fetched_again(self) -> None:
        ledger = FakeLedger()
        _archive(FakeGraph(), ledger)
        graph = FakeGraph()
        record, _ = _archive(graph, ledger)
        assert record is None and graph.calls == []


class TestFileLinks:
    def test_a_leads_file_only_under_that_lead(self) -> None:
        ledger = FakeLedger()
        _archive(FakeGraph(), ledger)
        url = download_link("972525551234", REQUEST.media_id, ledger=ledger, objects=FakeBucket())
        assert "X-Amz-Expires=900" in url
        with pytest.raises(MediaNotFoundError):
            download_link("972545550199", REQUEST.media_id, ledger=ledger, objects=FakeBucket())

    def test_an_unavailable_file_says_why(self) -> None:
        ledger = FakeLedger()
        _archive(FakeGraph(), ledger, max_bytes=10)
        with pytest.raises(MediaNotArchivedError) as caught:
            download_link("972525551234", REQUEST.media_id, ledger=ledger, objects=FakeBucket())
        assert (caught.value.status, caught.value.reason) == ("unavailable", "too_large")


class TestThreadView:
    def _inbound(self, **attributes: Any) -> dict[str, Any]:
        sha = base64.b64encode(hashlib.sha256(JPEG).digest()).decode()
        raw = {"type": "document", "document": {"id": "55", "mime_type": "application/pdf", "sha256": sha,
                                                  "filename": "תלוש.pdf", "caption": "תלוש"}}  # fmt: skip
        return {"wamid": "wamid.1", "direction": "inbound", "message_type": "document", "media_id": "55",
                "mime_type": "application/pdf", "raw": json.dumps(raw), "timestamp": "2026-12-06T10:00:00Z",
                **attributes}  # fmt: skip

    def test_an_inbound_file_not_archived_yet_is_pending_with_metas_fields(self) -> None:
        media = message_view(self._inbound()).media
        assert media is not None
        assert (media.status, media.filename, media.caption) == ("pending", "תלוש.pdf", "תלוש")
        assert media.sha256 == hashlib.sha256(JPEG).hexdigest()  # Meta's base64 read as hex

    def test_the_archives_outcome_wins(self) -> None:
        item = self._inbound(media_status="unavailable", media_reason="checksum_mismatch", media_size=12)
        media = message_view(item).media
        assert media is not None and (media.status, media.reason, media.size) == (
            "unavailable",
            "checksum_mismatch",
            12,
        )

    def test_an_outbound_file_sent_by_link_is_not_kept_here(self) -> None:
        request = {"type": "image", "image": {"link": "https://cdn.example/flat.jpg"}}
        item = {"wamid": "wamid.2", "direction": "outbound", "message_type": "image", "request": json.dumps(request)}
        media = message_view(item).media
        assert media is not None and (media.id, media.status, media.reason) == (None, "unavailable", "not_kept")

    def test_a_text_message_has_no_media(self) -> None:
        assert message_view({"wamid": "w", "direction": "inbound", "message_type": "text"}).media is None
