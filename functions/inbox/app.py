"""InboxFunction: the agent inbox page (GET /inbox and its files) and its configuration (GET /inbox/config.json).

Thin by design: the files sit beside this module (static/) and are served as they are; the configuration
comes from the settings and, when agents sign in with Cognito, from the SSM parameter the stack writes.
The page holds no data: everything it shows comes from the read API, with the agent's token.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from whatsapp_crm.inbox_page import (
    CONFIG_PATH,
    InboxConfigurationError,
    PageConfig,
    StaticSite,
    page_config,
    security_headers,
)
from whatsapp_crm.observability import logger
from whatsapp_crm.settings import InboxSettings, load

STATIC_DIR = Path(__file__).parent / "static"
_TEXT_TYPES = ("text/", "application/json", "application/manifest+json", "image/svg+xml")


@cache
def _site() -> StaticSite:
    return StaticSite(STATIC_DIR)


def _read_parameter(name: str) -> dict[str, Any]:
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_parameter(name, transform="json", max_age=load(InboxSettings).config_max_age_seconds)
    except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as error:
        raise InboxConfigurationError(f"the inbox configuration parameter cannot be read: {error}") from None
    if not isinstance(value, dict):
        raise InboxConfigurationError("the inbox configuration parameter is not a JSON object")
    return value


def _config() -> PageConfig | None:
    try:
        return page_config(load(InboxSettings), _read_parameter)
    except InboxConfigurationError:
        logger.exception("the inbox configuration cannot be read")
        return None


_media_origin: list[str | None] = []


def _thumbnail_origin() -> str | None:
    """The media bucket's link origin, found once per instance (signing a link is local, no request)."""
    if not _media_origin:
        bucket = load(InboxSettings).media_bucket
        if not bucket:
            return None
        from whatsapp_crm.wiring import media_objects

        origin = media_objects(bucket).download_origin()
        if origin is None:
            logger.warning("the media bucket's link origin cannot be found; thumbnails will not load")
            return None
        _media_origin.append(origin)
    return _media_origin[0]


def _response(
    status: int, body: bytes, content_type: str, config: PageConfig | None, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    headers = {
        "Content-Type": content_type,
        "Cache-Control": "no-cache",
        **security_headers(config, _thumbnail_origin()),
        **(extra or {}),
    }
    if content_type.startswith(_TEXT_TYPES):
        return {"statusCode": status, "headers": headers, "body": body.decode("utf-8"), "isBase64Encoded": False}
    return {"statusCode": status, "headers": headers, "body": base64.b64encode(body).decode(), "isBase64Encoded": True}


def _error(status: int, code: str, message: str, config: PageConfig | None) -> dict[str, Any]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return _response(status, body, "application/json", config, {"Cache-Control": "no-store"})


def serve(event: dict[str, Any]) -> dict[str, Any]:
    path = str(event.get("rawPath") or "/")
    config = _config()
    if path == CONFIG_PATH:
        if config is None:
            return _error(500, "configuration_error", "the inbox sign-in configuration cannot be read", None)
        body = config.model_dump_json().encode()
        return _response(200, body, "application/json; charset=utf-8", config, {"Cache-Control": "no-store"})
    asset = _site().find(path)
    if asset is None:
        return _error(404, "not_found", "no such page or file", config)
    request_headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
    if asset.etag in request_headers.get("if-none-match", ""):
        return _response(304, b"", asset.content_type, config, {"ETag": asset.etag})
    return _response(200, asset.body, asset.content_type, config, {"ETag": asset.etag})


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return serve(event)
