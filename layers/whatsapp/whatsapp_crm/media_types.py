"""Meta's media rules: which MIME types each WhatsApp media kind accepts, how large, and what the bytes look like.

Pure (no I/O). Sources are in docs/graph-client.md ("Media"): Meta's supported media types, mirrored by AWS
End User Messaging and BSP docs. Sizes are read as decimal megabytes, the stricter reading of Meta's "5 MB":
refusing a file a few kilobytes early is better than Meta refusing it after the upload.

`sniff_mismatch` compares a file's first bytes with the type it claims. A MIME type is a claim made by
whoever sent the file (a lead's phone, a CRM user); it decides how the file is labelled and offered, never
how it is run, so a file whose bytes contradict its type is refused at upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MB = 1_000_000
KB = 1_000


class MediaKind(StrEnum):
    IMAGE = "image"
    DOCUMENT = "document"
    AUDIO = "audio"
    VIDEO = "video"
    STICKER = "sticker"


@dataclass(frozen=True, slots=True)
class MediaRule:
    mime_type: str
    kind: MediaKind
    max_bytes: int
    extension: str


_RULES = (
    MediaRule("image/jpeg", MediaKind.IMAGE, 5 * MB, "jpg"),
    MediaRule("image/png", MediaKind.IMAGE, 5 * MB, "png"),
    # Animated stickers may be 500 KB, static ones 100 KB; telling them apart needs a WebP parser, so the
    # larger bound applies and Meta judges the rest.
    MediaRule("image/webp", MediaKind.STICKER, 500 * KB, "webp"),
    MediaRule("video/mp4", MediaKind.VIDEO, 16 * MB, "mp4"),
    MediaRule("video/3gpp", MediaKind.VIDEO, 16 * MB, "3gp"),
    MediaRule("audio/aac", MediaKind.AUDIO, 16 * MB, "aac"),
    MediaRule("audio/amr", MediaKind.AUDIO, 16 * MB, "amr"),
    MediaRule("audio/mpeg", MediaKind.AUDIO, 16 * MB, "mp3"),
    MediaRule("audio/mp4", MediaKind.AUDIO, 16 * MB, "m4a"),
    # Opus in Ogg only (what a WhatsApp voice note is); Meta refuses other Ogg codecs.
    MediaRule("audio/ogg", MediaKind.AUDIO, 16 * MB, "ogg"),
    MediaRule("text/plain", MediaKind.DOCUMENT, 100 * MB, "txt"),
    MediaRule("application/pdf", MediaKind.DOCUMENT, 100 * MB, "pdf"),
    MediaRule("application/msword", MediaKind.DOCUMENT, 100 * MB, "doc"),
    MediaRule(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", MediaKind.DOCUMENT, 100 * MB, "docx"
    ),
    MediaRule("application/vnd.ms-excel", MediaKind.DOCUMENT, 100 * MB, "xls"),
    MediaRule(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", MediaKind.DOCUMENT, 100 * MB, "xlsx"
    ),
    MediaRule("application/vnd.ms-powerpoint", MediaKind.DOCUMENT, 100 * MB, "ppt"),
    MediaRule(
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        MediaKind.DOCUMENT,
        100 * MB,
        "pptx",
    ),
)
RULES: dict[str, MediaRule] = {rule.mime_type: rule for rule in _RULES}
# Spellings seen in the wild for the same types (Meta's own table says video/3gp).
_ALIASES = {"video/3gp": "video/3gpp", "image/jpg": "image/jpeg", "audio/mp3": "audio/mpeg", "audio/x-m4a": "audio/mp4"}

# What a stored object is labelled when its type is not one of Meta's: nothing a browser would render or run.
OPAQUE_TYPE = "application/octet-stream"


def base_type(mime_type: str | None) -> str:
    """`audio/ogg; codecs=opus` -> `audio/ogg`, lower-cased, aliases resolved; "" for nothing."""
    if not mime_type:
        return ""
    bare = mime_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare)


def rule_for(mime_type: str | None) -> MediaRule | None:
    return RULES.get(base_type(mime_type))


def accepted_types() -> list[str]:
    return sorted(RULES)


def storage_type(mime_type: str | None) -> str:
    """The Content-Type an archived object gets: Meta's type when it is one of Meta's media types, else opaque."""
    rule = rule_for(mime_type)
    return rule.mime_type if rule is not None else OPAQUE_TYPE


def _is_mp4_family(head: bytes) -> bool:
    return len(head) >= 12 and head[4:8] == b"ftyp"


def _is_mpeg_audio(head: bytes) -> bool:
    return head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _is_aac(head: bytes) -> bool:
    return head.startswith(b"ADIF") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0)


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the end of the sample is still text.
        return error.start >= len(head) - 3
    return True


_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = b"PK\x03\x04"
_SIGNATURES = {
    "image/jpeg": lambda head: head.startswith(b"\xff\xd8\xff"),
    "image/png": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/webp": lambda head: head.startswith(b"RIFF") and head[8:12] == b"WEBP",
    "video/mp4": _is_mp4_family,
    "video/3gpp": _is_mp4_family,
    "audio/mp4": _is_mp4_family,
    "audio/ogg": lambda head: head.startswith(b"OggS"),
    "audio/amr": lambda head: head.startswith(b"#!AMR"),
    "audio/mpeg": _is_mpeg_audio,
    "audio/aac": _is_aac,
    "application/pdf": lambda head: head.startswith(b"%PDF-"),
    "application/msword": lambda head: head.startswith(_OLE),
    "application/vnd.ms-excel": lambda head: head.startswith(_OLE),
    "application/vnd.ms-powerpoint": lambda head: head.startswith(_OLE),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": lambda head: head.startswith(_ZIP),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": lambda head: head.startswith(_ZIP),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": lambda head: head.startswith(_ZIP),
    "text/plain": _is_text,
}
SNIFF_BYTES = 4096


def sniff_mismatch(mime_type: str, head: bytes) -> bool:
    """True when the file's first bytes say it is not `mime_type` (a PDF labelled image/png, an .exe as PDF)."""
    check = _SIGNATURES.get(base_type(mime_type))
    return check is not None and not check(head[:SNIFF_BYTES])


def normalize_sha256(value: str | None) -> str | None:
    """Meta's sha256 as lower-case hex. The media endpoint gives hex; webhooks have carried base64 too."""
    if not value:
        return None
    text = value.strip()
    if len(text) == 64 and all(char in "0123456789abcdefABCDEF" for char in text):
        return text.lower()
    import base64
    import binascii

    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None
