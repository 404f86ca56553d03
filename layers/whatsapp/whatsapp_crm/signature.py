"""Meta's webhook signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`.

The HMAC covers the body bytes exactly as Meta sent them (ASCII JSON with `\\uXXXX` escapes and `\\/`).
Never hash a re-serialized body: key order, spacing and escapes would all differ.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from enum import StrEnum

SIGNATURE_HEADER = "x-hub-signature-256"
_PREFIX = "sha256="


class SignatureVerdict(StrEnum):
    VALID = "valid"
    MISSING = "missing"
    MISMATCH = "mismatch"


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta would send for `body` (used by tests, events/ and the local simulator)."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify(body: bytes, header_value: str | None, app_secret: str) -> SignatureVerdict:
    """Constant-time check of the signature header against the raw body."""
    if not header_value:
        return SignatureVerdict.MISSING
    if not app_secret or not header_value.startswith(_PREFIX):
        return SignatureVerdict.MISMATCH
    expected = sign(body, app_secret)
    # compare_digest on ASCII bytes: a non-ASCII header must fail closed, not raise.
    given = header_value.strip().lower().encode("ascii", errors="replace")
    return SignatureVerdict.VALID if hmac.compare_digest(expected.encode("ascii"), given) else SignatureVerdict.MISMATCH


def header(headers: Mapping[str, str] | None, name: str = SIGNATURE_HEADER) -> str | None:
    """Case-insensitive header lookup (HTTP API lower-cases names, REST API keeps the sender's)."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


class UndecodableBodyError(ValueError):
    """The event claims base64 but the body is not valid base64."""


def raw_body(body: str | None, is_base64_encoded: bool) -> bytes:
    """The bytes Meta sent, from an API Gateway event's `body` / `isBase64Encoded`."""
    if body is None:
        return b""
    if is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise UndecodableBodyError("body is not valid base64") from None
    # API Gateway hands non-base64 bodies over as text decoded from UTF-8; encoding restores the bytes.
    return body.encode("utf-8", errors="surrogatepass")
