"""docs/openapi.json is generated from the code; a change to a route or model must come with a regenerated file.

Here rather than in unit tests: it imports every handler module, which is slow for the unit level.
"""

from __future__ import annotations

from scripts.generate_openapi import OUTPUT, build_document, render


def test_the_committed_document_matches_the_code() -> None:
    # When this fails: python scripts/generate_openapi.py, and commit docs/openapi.json with the change.
    assert OUTPUT.read_text(encoding="utf-8") == render()


def test_it_documents_every_route_with_our_error_shape_not_powertools_default() -> None:
    document = build_document()
    operations = {(method.upper(), path): op for path, ops in document["paths"].items() for method, op in ops.items()}
    assert set(operations) == {
        ("POST", "/messages"),
        ("GET", "/conversations"),
        ("GET", "/conversations/{wa_id}/messages"),
        ("POST", "/conversations/{wa_id}/read"),
        ("GET", "/health"),
        ("GET", "/templates"),
        ("GET", "/conversations/{wa_id}/media/{media_id}"),
        ("POST", "/media"),
    }
    upload = operations[("POST", "/media")]["responses"]
    assert set(upload) == {"201", "400", "413", "415", "502", "503"}
    templates = operations[("GET", "/templates")]
    assert {p["name"] for p in templates["parameters"]} == {"refresh", "status", "name"}
    assert set(templates["responses"]) == {"200", "400", "429", "502", "503"}
    send = operations[("POST", "/messages")]["responses"]
    assert set(send) == {"201", "400", "409", "422", "429", "502", "503"}
    assert send["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["security"] == [{"sigv4": []}, {"jwt": []}]
