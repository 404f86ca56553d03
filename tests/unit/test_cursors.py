"""Pagination cursors: opaque, signed, bound to their route and lead; anything else is refused."""

from __future__ import annotations

import base64
import json

import pytest

from whatsapp_crm.read_api import CursorSigner, InvalidCursorError, Position

LEAD = "972525551234"
OTHER_LEAD = "972545550199"
POSITION = Position(pk="MSG#wamid.HBgMOTcy", sort_key="2026-11-25T10:00:00Z#wamid.HBgMOTcy")


@pytest.fixture
def signer() -> CursorSigner:
    return CursorSigner.from_secret("app-secret-for-tests")


def _payload(cursor: str) -> dict[str, str]:
    encoded = cursor.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))))


def _encode(document: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


def test_a_cursor_round_trips_on_its_own_route_and_lead(signer: CursorSigner) -> None:
    cursor = signer.issue("messages", LEAD, POSITION)
    assert signer.verify(cursor, "messages", LEAD) == POSITION


def test_a_cursor_is_url_safe_and_carries_no_secret(signer: CursorSigner) -> None:
    cursor = signer.issue("messages", LEAD, POSITION)
    assert all(char.isalnum() or char in "-_." for char in cursor)
    assert "app-secret-for-tests" not in base64.urlsafe_b64decode(cursor.split(".")[1] + "==").decode()


@pytest.mark.parametrize(("route", "wa_id"), [("messages", OTHER_LEAD), ("conversations", ""), ("conversations", LEAD)])
def test_a_cursor_is_refused_on_another_route_or_lead(signer: CursorSigner, route: str, wa_id: str) -> None:
    cursor = signer.issue("messages", LEAD, POSITION)
    with pytest.raises(InvalidCursorError):
        signer.verify(cursor, route, wa_id)


def test_rewriting_the_lead_inside_a_cursor_breaks_its_signature(signer: CursorSigner) -> None:
    # Given a valid cursor whose payload is edited to name another lead
    version, _, signature = signer.issue("messages", LEAD, POSITION).split(".")
    edited = _payload(signer.issue("messages", LEAD, POSITION)) | {"w": OTHER_LEAD}
    forged = f"{version}.{_encode(edited)}.{signature}"
    # Then it verifies for neither lead
    for wa_id in (LEAD, OTHER_LEAD):
        with pytest.raises(InvalidCursorError):
            signer.verify(forged, "messages", wa_id)


def test_a_cursor_signed_with_another_key_is_refused(signer: CursorSigner) -> None:
    other = CursorSigner.from_secret("someone-elses-secret")
    with pytest.raises(InvalidCursorError):
        signer.verify(other.issue("messages", LEAD, POSITION), "messages", LEAD)


@pytest.mark.parametrize(
    "garbled",
    [
        "",
        "garbage",
        "v1..",
        "v1.e30.",
        "v1.!!!.abc",
        "v1.e30.e30.e30",
        "é.é.é",
        "v1." + "A" * 5000 + ".x",
        "v1.%%%%.AAAA",
    ],
)
def test_garbage_is_an_invalid_cursor_never_a_crash(signer: CursorSigner, garbled: str) -> None:
    with pytest.raises(InvalidCursorError):
        signer.verify(garbled, "messages", LEAD)


def test_a_well_signed_payload_without_a_position_is_refused() -> None:
    # A payload can only be signed by the service, but an older or buggy one must still not crash a read.
    signer = CursorSigner(b"k" * 32)
    cursor = signer.issue("messages", LEAD, Position(pk="", sort_key=""))
    with pytest.raises(InvalidCursorError):
        signer.verify(cursor, "messages", LEAD)


def test_keys_are_derived_not_the_secret_itself() -> None:
    with pytest.raises(ValueError):
        CursorSigner.from_secret("")
    with pytest.raises(ValueError):
        CursorSigner(b"short")
