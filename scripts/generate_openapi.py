#!/usr/bin/env python3
"""Regenerate docs/openapi.json from the code: the send and read API's routes, models and error shapes.

Each function's Powertools resolver describes its own routes (request models, query and path parameters,
the responses its decorators declare); this merges the two into one document, adds how callers
authenticate (SigV4 or a JWT, per the template's ApiAuth) and drops Powertools' generic 422 "Validation
Error" entry, because this API answers validation errors with 400 and uses 422 for the 24-hour window.

    python scripts/generate_openapi.py            # rewrite docs/openapi.json
    python scripts/generate_openapi.py --check    # exit 1 if docs/openapi.json is out of date

tests/integration/test_openapi.py runs the check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local.runtime import use_layers

use_layers()

from local.handlers import load_function_module

OUTPUT = ROOT / "docs" / "openapi.json"
API_FUNCTIONS = ("SendFunction", "ConversationsFunction", "TemplatesFunction", "MediaFunction")
TITLE = "WhatsApp CRM bridge: send and read API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Send WhatsApp messages to leads and read their conversations. Every route requires AWS SigV4 "
    "(execute-api:Invoke, the default ApiAuth=IAM) or, when the stack is deployed with ApiAuth=JWT, a bearer "
    'token from the configured issuer. Errors are JSON: {"error": {"code", "message", ...}}; see '
    "docs/api.md for the table of codes."
)
SECURITY_SCHEMES: dict[str, Any] = {
    "sigv4": {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "description": "AWS Signature Version 4 for service execute-api (ApiAuth=IAM, the default).",
        "x-amazon-apigateway-authtype": "awsSigv4",
    },
    "jwt": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A token from JwtIssuer for one of JwtAudience (ApiAuth=JWT).",
    },
}
SERVERS = [
    {
        "url": "https://{apiId}.execute-api.{region}.amazonaws.com",
        "description": "The stack's ApiBaseUrl output",
        "variables": {"apiId": {"default": "abcdef1234"}, "region": {"default": "il-central-1"}},
    }
]
_POWERTOOLS_VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"


def _schema_of(logical_id: str) -> dict[str, Any]:
    module = load_function_module(logical_id)
    schema = module.app.get_openapi_schema(title=TITLE, version=VERSION)
    document: dict[str, Any] = json.loads(schema.model_dump_json(by_alias=True, exclude_none=True))
    return document


def _drop_generic_validation_errors(paths: dict[str, Any]) -> None:
    for operations in paths.values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            generic = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if generic.get("$ref") == _POWERTOOLS_VALIDATION_ERROR:
                del responses["422"]


def _referenced(document: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(document, dict):
        reference = document.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/components/schemas/"):
            found.add(reference.rsplit("/", 1)[1])
        for value in document.values():
            found |= _referenced(value)
    elif isinstance(document, list):
        for value in document:
            found |= _referenced(value)
    return found


def _prune(schemas: dict[str, Any], paths: dict[str, Any]) -> dict[str, Any]:
    """Keep only schemas reachable from the paths (Powertools adds its validation-error models)."""
    keep: set[str] = set()
    frontier = _referenced(paths)
    while frontier:
        name = frontier.pop()
        if name in keep or name not in schemas:
            continue
        keep.add(name)
        frontier |= _referenced(schemas[name])
    return {name: schemas[name] for name in sorted(keep)}


def build_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for logical_id in API_FUNCTIONS:
        part = _schema_of(logical_id)
        for path, operations in part.get("paths", {}).items():
            paths.setdefault(path, {}).update(operations)
        for name, schema in part.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"two functions define the schema {name} differently")
            schemas[name] = schema
    _drop_generic_validation_errors(paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "servers": SERVERS,
        "security": [{"sigv4": []}, {"jwt": []}],
        "paths": {path: paths[path] for path in sorted(paths)},
        "components": {"schemas": _prune(schemas, paths), "securitySchemes": SECURITY_SCHEMES},
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed document is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run python scripts/generate_openapi.py")
            return 1
        print(f"{OUTPUT.relative_to(ROOT)} is up to date")
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
