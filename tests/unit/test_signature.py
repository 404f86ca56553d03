"""Meta's X-Hub-Signature-256 over the raw wire bytes (Hebrew, emoji and `/` arrive escaped)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from whatsapp_crm.signature import SignatureVerdict, UndecodableBodyError, header, raw_body, sign, verify

DATA = Path(__file__).resolve().parent.parent / "data" / "webhooks"
# Computed independently: `openssl dgst -sha256 -hmac 'vector-app-secret' signed_hebrew_text.wire.json`
VECTOR_SECRET = "vector-app-secret"
VECTOR_SIGNATURE = "sha256=7996b51ab7c046c236eb3bc99c51495d738828e9e26a9469aae1e9d0255fcbbf"


@pytest.fixture
def wire_body() -> bytes:
    return (DATA / "signed_hebrew_text.wire.json").read_bytes()


def test_known_vector_with_hebrew_emoji_and_slashes_verifies(wire_body: bytes) -> None:
    # Given Meta's wire bytes: \u05e9 escapes, a surrogate-pair emoji, and \/ in a URL
    assert b"\\u05e9" in wire_body and b"\\ud83d\\ude42" in wire_body and b"https:\\/\\/" in wire_body
    # Then the signature made independently with openssl verifies, and ours equals it
    assert verify(wire_body, VECTOR_SIGNATURE, VECTOR_SECRET) is SignatureVerdict.VALID
    assert sign(wire_body, VECTOR_SECRET) == VECTOR_SIGNATURE


def test_reserialized_body_no_longer_verifies(wire_body: bytes) -> None:
    # The classic bug: hashing json.dumps(json.loads(body)) instead of the bytes Meta sent.
    reserialized = json.dumps(json.loads(wire_body), ensure_ascii=False).encode("utf-8")
    assert verify(reserialized, VECTOR_SIGNATURE, VECTOR_SECRET) is SignatureVerdict.MISMATCH


@pytest.mark.parametrize("position", [0, 100, -3])
def test_one_tampered_byte_fails(wire_body: bytes, position: int) -> None:
    tampered = bytearray(wire_body)
    tampered[position] ^= 0x01
    assert verify(bytes(tampered), VECTOR_SIGNATURE, VECTOR_SECRET) is SignatureVerdict.MISMATCH


def test_signed_with_the_verify_token_instead_of_the_app_secret_fails(wire_body: bytes) -> None:
    assert verify(wire_body, sign(wire_body, "the-verify-token"), VECTOR_SECRET) is SignatureVerdict.MISMATCH


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (None, SignatureVerdict.MISSING),
        ("", SignatureVerdict.MISSING),
        ("7996b51ab7c046c236eb3bc99c51495d738828e9e26a9469aae1e9d0255fcbbf", SignatureVerdict.MISMATCH),
        ("sha1=7996b51ab7c046c236eb3bc99c51495d738828e9", SignatureVerdict.MISMATCH),
        ("sha256=", SignatureVerdict.MISMATCH),
        ("sha256=שלום", SignatureVerdict.MISMATCH),
    ],
)
def test_missing_or_malformed_headers(wire_body: bytes, value: str | None, verdict: SignatureVerdict) -> None:
    assert verify(wire_body, value, VECTOR_SECRET) is verdict


def test_an_empty_app_secret_never_verifies(wire_body: bytes) -> None:
    assert verify(wire_body, sign(wire_body, ""), "") is SignatureVerdict.MISMATCH


def test_header_lookup_ignores_case() -> None:
    assert header({"X-Hub-Signature-256": "sha256=ab"}) == "sha256=ab"
    assert header({"x-hub-signature-256": "sha256=cd"}) == "sha256=cd"
    assert header({"content-type": "application/json"}) is None
    assert header(None) is None


def test_base64_body_is_decoded_to_the_signed_bytes(wire_body: bytes) -> None:
    encoded = base64.b64encode(wire_body).decode("ascii")
    assert raw_body(encoded, True) == wire_body
    assert verify(raw_body(encoded, True), VECTOR_SIGNATURE, VECTOR_SECRET) is SignatureVerdict.VALID


def test_text_body_round_trips_to_its_utf8_bytes() -> None:
    assert raw_body("שלום", False) == "שלום".encode()
    assert raw_body(None, False) == b""


def test_invalid_base64_is_refused() -> None:
    with pytest.raises(UndecodableBodyError):
        raw_body("not*base64", True)
