#!/usr/bin/env python3
"""Sign a webhook the way Meta does (X-Hub-Signature-256 over the exact bytes) and POST it, or print a curl line.

    python scripts/sign_webhook.py events/webhook_post_text_he.json          # an event from events/
    python scripts/sign_webhook.py my_webhook.json                           # a webhook document
    python scripts/sign_webhook.py --from 972525551234 --text "שלום"         # a text message, built here
    python scripts/sign_webhook.py --curl --text "hi"                        # print, do not send

Every message's and status's timestamp is re-stamped to now unless --keep-timestamp: events/ hold fixed
dates, and the responder does not answer a message older than 24 hours. The document (or the body of an API
Gateway event from events/) is then re-encoded in Meta's wire form (ASCII JSON, \\uXXXX escapes, \\/) and
signed; --as-is sends the file's bytes unchanged (its timestamps too) with the event's own signature when it
carries one, so events/webhook_post_bad_signature.json is refused (403). The secret is the local stack's
(local/defaults.py, or WHATSAPP_APP_SECRET), so this is for the local stack only.
"""

from __future__ import annotations

import argparse
import base64
import json
import shlex
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local.defaults import app_secret, default_base_url
from local.runtime import use_layers

use_layers()

from local import meta_payloads as meta


class UsageProblem(Exception):
    """Something the user can fix, said in one line (no traceback)."""


def _read(path: Path) -> tuple[bytes, Any]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UsageProblem(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return raw, json.loads(raw)
    except ValueError:
        raise UsageProblem(f"{path} is not JSON (a webhook document or an events/ API Gateway event)") from None


def file_signature(path: Path) -> str | None:
    """The X-Hub-Signature-256 an events/ API Gateway event carries (None for a plain webhook document)."""
    _, document = _read(path)
    headers = document.get("headers") if isinstance(document, dict) else None
    if not isinstance(headers, dict):
        return None
    for name, value in headers.items():
        if str(name).lower() == "x-hub-signature-256" and isinstance(value, str):
            return value
    return None


def body_from_file(path: Path, as_is: bool, keep_timestamp: bool = False, now: int | None = None) -> bytes:
    raw, document = _read(path)
    if isinstance(document, dict) and document.get("version") == "2.0" and "body" in document:
        body = str(document["body"])
        raw = base64.b64decode(body) if document.get("isBase64Encoded") else body.encode("utf-8")
        document = json.loads(raw)
    if as_is:
        return raw
    if not keep_timestamp:
        restamp(document, int(time.time()) if now is None else now)
    return meta.wire_bytes(document)


def restamp(document: Any, now: int) -> None:
    """Date every message and status of a webhook document `now` (Meta's seconds since the epoch, as text)."""
    entries = document.get("entry", []) if isinstance(document, dict) else []
    for entry in entries:
        for change in entry.get("changes", []) if isinstance(entry, dict) else []:
            value = change.get("value", {}) if isinstance(change, dict) else {}
            for item in [*value.get("messages", []), *value.get("statuses", [])]:
                if isinstance(item, dict) and "timestamp" in item:
                    item["timestamp"] = str(now)


def text_body(wa_id: str, text: str | None, name: str | None, image: str | None = None) -> bytes:
    """A text message, or with `image` a photo (that media id, `text` its caption)."""
    if image is not None:
        message = meta.media_message(wa_id, "image", image, mime_type="image/jpeg", caption=text)
    else:
        message = meta.text_message(wa_id, text or "")
    return meta.wire_bytes(meta.envelope(meta.message_value([message], name=name)))


def curl_line(url: str, body: bytes, headers: dict[str, str]) -> str:
    parts = ["curl", "-sS", "-X", "POST", shlex.quote(url)]
    for name, value in headers.items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    parts += ["--data-binary", shlex.quote(body.decode("utf-8"))]
    return " ".join(parts)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as unreachable:
        reason = getattr(unreachable, "reason", unreachable)
        raise UsageProblem(
            f"nothing answers at {url} ({reason}); start the local stack with `make run` "
            "(or pass --url, or set LOCAL_STACK_PORT)"
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sign a WhatsApp webhook with the local app secret and POST it.")
    parser.add_argument("file", nargs="?", type=Path, help="a webhook document or an events/ API Gateway event")
    parser.add_argument("--text", help="build a text-message webhook with this body instead of reading a file")
    parser.add_argument(
        "--image", metavar="MEDIA_ID", help="build a photo message of this media id (--text is its caption)"
    )
    parser.add_argument("--from", dest="wa_id", default="972525551234", help="the lead's wa_id (with --text)")
    parser.add_argument("--name", default="Lead", help="the lead's profile name (with --text)")
    parser.add_argument("--url", default=f"{default_base_url()}/webhook", help="where to POST")
    parser.add_argument("--secret", default=None, help="app secret (default: the local stack's)")
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="send the file's bytes unchanged (timestamps too), with the event's own X-Hub-Signature-256 when it "
        "has one (events/webhook_post_bad_signature.json stays bad); a plain document is signed",
    )
    parser.add_argument(
        "--keep-timestamp", action="store_true", help="keep the file's timestamps (default: re-stamp them to now)"
    )
    parser.add_argument("--bad-signature", action="store_true", help="sign with a wrong secret (expect 403)")
    parser.add_argument("--curl", action="store_true", help="print a curl command instead of sending")
    args = parser.parse_args(argv)
    if (args.file is None) == (args.text is None and args.image is None):
        parser.error("give either a FILE or --text / --image")
    try:
        return _sign_and_send(args)
    except UsageProblem as problem:
        print(f"sign_webhook: {problem}", file=sys.stderr)
        return 2


def _sign_and_send(args: argparse.Namespace) -> int:
    body = (
        body_from_file(args.file, args.as_is, args.keep_timestamp)
        if args.file is not None
        else text_body(args.wa_id, args.text, args.name, args.image)
    )
    secret = args.secret or app_secret()
    headers = meta.signed_headers(body, "not-" + secret if args.bad_signature else secret)
    own = file_signature(args.file) if args.as_is and args.file is not None and not args.bad_signature else None
    if own is not None:
        headers["x-hub-signature-256"] = own  # the event's own signature, right or deliberately wrong
    if args.curl:
        print(curl_line(args.url, body, headers))
        return 0
    status, answer = post(args.url, body, headers)
    print(f"{status} {answer}")
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
