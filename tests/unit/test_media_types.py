"""Meta's media rules: accepted types, size limits, and files whose bytes contradict their type."""

from __future__ import annotations

import base64
import hashlib

import pytest

from whatsapp_crm.media_types import (
    OPAQUE_TYPE,
    MediaKind,
    accepted_types,
    base_type,
    normalize_sha256,
    rule_for,
    sniff_mismatch,
    storage_type,
)


@pytest.mark.parametrize(
    ("mime_type", "kind", "max_bytes"),
    [
        ("image/jpeg", MediaKind.IMAGE, 5_000_000),
        ("image/png", MediaKind.IMAGE, 5_000_000),
        ("image/webp", MediaKind.STICKER, 500_000),
        ("video/mp4", MediaKind.VIDEO, 16_000_000),
        ("audio/ogg; codecs=opus", MediaKind.AUDIO, 16_000_000),
        ("application/pdf", MediaKind.DOCUMENT, 100_000_000),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", MediaKind.DOCUMENT, 100_000_000),
    ],
)
def test_each_meta_type_has_its_kind_and_limit(mime_type: str, kind: MediaKind, max_bytes: int) -> None:
    rule = rule_for(mime_type)
    assert rule is not None
    assert (rule.kind, rule.max_bytes) == (kind, max_bytes)


@pytest.mark.parametrize("mime_type", ["application/x-msdownload", "text/html", "image/gif", "image/svg+xml", "", None])
def test_types_meta_does_not_take_have_no_rule_and_are_stored_opaque(mime_type: str | None) -> None:
    assert rule_for(mime_type) is None
    assert storage_type(mime_type) == OPAQUE_TYPE


def test_a_voice_note_keeps_its_base_type_and_aliases_resolve() -> None:
    assert base_type("Audio/OGG; codecs=opus") == "audio/ogg"
    assert base_type("video/3gp") == "video/3gpp"
    assert storage_type("image/jpg") == "image/jpeg"
    assert "text/html" not in accepted_types()


@pytest.mark.parametrize(
    ("mime_type", "head"),
    [
        ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF"),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00"),
        ("image/webp", b"RIFF\x10\x00\x00\x00WEBPVP8 "),
        ("application/pdf", b"%PDF-1.4\n"),
        ("video/mp4", b"\x00\x00\x00\x18ftypmp42"),
        ("audio/ogg", b"OggS\x00\x02"),
        ("audio/mpeg", b"ID3\x04\x00"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", b"PK\x03\x04\x14\x00"),
        ("application/msword", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),
        ("text/plain", "רשימת מסמכים: תלושי שכר".encode()),
    ],
)
def test_files_that_are_what_they_claim_pass(mime_type: str, head: bytes) -> None:
    assert not sniff_mismatch(mime_type, head)


@pytest.mark.parametrize(
    ("mime_type", "head"),
    [
        ("application/pdf", b"MZ\x90\x00\x03"),  # a Windows executable labelled PDF
        ("image/png", b"%PDF-1.4"),
        ("image/jpeg", b"<html><script>"),
        ("text/plain", b"\x7fELF\x02\x01\x01\x00"),
    ],
)
def test_files_whose_bytes_contradict_their_type_are_caught(mime_type: str, head: bytes) -> None:
    assert sniff_mismatch(mime_type, head)


def test_a_text_file_cut_inside_a_hebrew_letter_is_still_text() -> None:
    text = ("א" * 3000).encode()
    assert not sniff_mismatch("text/plain", text[:4095])


def test_sha256_in_hex_or_base64_reads_as_the_same_hex() -> None:
    digest = hashlib.sha256(b"pay slip").digest()
    assert normalize_sha256(digest.hex().upper()) == digest.hex()
    assert normalize_sha256(base64.b64encode(digest).decode()) == digest.hex()
    assert normalize_sha256("not a hash") is None
    assert normalize_sha256(None) is None
