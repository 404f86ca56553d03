"""The agent inbox page: its static files, the JSON configuration it starts from, and the headers it is served with.

The page is plain files (HTML, CSS, ES modules) served as they are; nothing is built and nothing is loaded
from another origin. Its configuration (how agents sign in, which API to call, how numbers are shown) is
served as JSON, never written into the files, so one set of files works on the local stack and in AWS.

Headers: a strict Content-Security-Policy (scripts and styles from this origin only, no inline code, no
eval; the API and the sign-in service are the only other origins the page may talk to), no framing, no
MIME sniffing, no referrer. Files are revalidated on every load (ETag), so a deploy is seen at once.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from whatsapp_crm.settings import InboxSettings

PAGE_PATH = "/inbox"
CONFIG_PATH = "/inbox/config.json"
INDEX_FILE = "index.html"
MAX_ASSET_PATH = 200
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
}


class CognitoConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    domain: str = Field(description="Hosted UI origin, https://<prefix>.auth.<region>.amazoncognito.com")
    client_id: str
    user_pool_id: str
    region: str
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])


class PageConfig(BaseModel):
    """What /inbox/config.json answers: everything the page needs to start."""

    model_config = ConfigDict(frozen=True)

    auth: Literal["cognito", "iam"]
    api_base_url: str = Field(default="", description="Where the read and send API is; empty means this origin")
    cognito: CognitoConfig | None = None
    phone_numbers: Literal["masked", "full"] = "masked"
    timezone: str = "Asia/Jerusalem"
    human_takeover_hours: int = 12


class InboxConfigurationError(RuntimeError):
    """The sign-in configuration the stack wrote is missing or unreadable."""


def page_config(settings: InboxSettings, read_parameter: Callable[[str], Mapping[str, Any]]) -> PageConfig:
    """The page's configuration from the function's settings and, for Cognito sign-in, the stack's parameter."""
    api_base_url = ""
    cognito = None
    signs_in = settings.inbox_auth == "JWT"
    if signs_in:
        if not settings.inbox_config_parameter:
            raise InboxConfigurationError("INBOX_AUTH=JWT needs INBOX_CONFIG_PARAMETER")
        document = read_parameter(settings.inbox_config_parameter)
        try:
            api_base_url = str(document["api_base_url"]).rstrip("/")
            cognito = CognitoConfig.model_validate(document["cognito"])
        except (KeyError, TypeError, ValueError) as error:
            raise InboxConfigurationError(f"the inbox configuration parameter is incomplete: {error}") from None
    return PageConfig(
        auth="cognito" if signs_in else "iam",
        api_base_url=api_base_url,
        cognito=cognito,
        phone_numbers=settings.inbox_phone_numbers,
        timezone=settings.business_timezone,
        human_takeover_hours=settings.human_takeover_hours,
    )


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(config: PageConfig | None, media_origin: str | None = None) -> str:
    """This origin only, plus the API's and the sign-in service's origins for fetch(), and the media bucket's
    for the thumbnails the page loads from its 15-minute links."""
    media = f" {media_origin}" if media_origin and _ORIGIN.fullmatch(media_origin) else ""
    connect = ["'self'"]
    if config is not None:
        for url in (config.api_base_url, config.cognito.domain if config.cognito else ""):
            origin = _origin(url) if url else None
            if origin and origin not in connect:
                connect.append(origin)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            # Thumbnails load from the media route's presigned links (the bucket's origin).
            f"img-src 'self' blob: data:{media}",
            f"media-src 'self' blob:{media}",
            f"connect-src {' '.join(connect)}",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(config: PageConfig | None, media_origin: str | None = None) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(config, media_origin),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


class StaticSite:
    """The page's files, read once per instance. Only files found at load time are ever served."""

    def __init__(self, root: Path) -> None:
        self._assets: dict[str, Asset] = {}
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            relative = path.relative_to(root).as_posix()
            content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self._assets[relative] = Asset(body, content_type, etag)

    @property
    def names(self) -> list[str]:
        return sorted(self._assets)

    def find(self, request_path: str) -> Asset | None:
        """The asset a request path names: `/inbox` is the page, `/inbox/<file>` one of its files."""
        if request_path in (PAGE_PATH, PAGE_PATH + "/"):
            return self._assets.get(INDEX_FILE)
        if not request_path.startswith(PAGE_PATH + "/") or len(request_path) > MAX_ASSET_PATH:
            return None
        relative = request_path.removeprefix(PAGE_PATH + "/")
        parts = PurePosixPath(relative).parts
        if not parts or any(part in ("..", ".") or part.startswith(".") for part in parts):
            return None
        return self._assets.get(relative)
