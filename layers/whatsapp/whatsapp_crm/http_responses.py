"""The one JSON error shape every HTTP route answers with: {"error": {"code", "message", ...}}."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types


def compact_json(body: Any) -> str:
    """Every JSON answer's text (the resolvers' serializer too): Hebrew as UTF-8, not \\u escapes, no spaces."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=compact_json(body), headers=headers
    )


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **details: Any
) -> Response[str]:
    error: dict[str, Any] = {"code": code, "message": message}
    error.update({key: value for key, value in details.items() if value is not None})
    return json_response(status, {"error": error}, headers)
