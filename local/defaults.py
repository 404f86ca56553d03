"""Local-only credentials and addresses shared by the local stack, events/, the demo and the signing script.

These values are public on purpose: they exist so a fresh clone works with no Meta app. They are never
valid anywhere but on loopback. A real deployment reads its credentials from Secrets Manager.
"""

from __future__ import annotations

import os

LOCAL_APP_SECRET = "local-app-secret-not-for-production"
LOCAL_VERIFY_TOKEN = "local-verify-token"
LOCAL_ACCESS_TOKEN = "EAAG-local-simulator-token"
LOCAL_REGION = "eu-west-1"
LOCAL_ACCOUNT_ID = "123456789012"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000
# `make run PORT=...` and the tests pass the port this way; `--port` wins over it.
PORT_ENV = "LOCAL_STACK_PORT"


def app_secret() -> str:
    """The app secret the local webhook checks: WHATSAPP_APP_SECRET when set, else the local one."""
    return os.environ.get("WHATSAPP_APP_SECRET") or LOCAL_APP_SECRET


def verify_token() -> str:
    return os.environ.get("WHATSAPP_VERIFY_TOKEN") or LOCAL_VERIFY_TOKEN


def default_port() -> int:
    return int(os.environ.get(PORT_ENV) or DEFAULT_PORT)


def default_base_url() -> str:
    return f"http://{DEFAULT_HOST}:{default_port()}"
