#!/usr/bin/env python3
"""`make smoke`: check a running stack end to end, one line per check and what to do when one fails.

    make smoke ENV=dev                                 # the deployed dev stack (its ApiBaseUrl output)
    make smoke URL=https://<api-id>.execute-api.il-central-1.amazonaws.com
    make smoke ENV=dev TO=+972525551234                # and a real template send to that test recipient
    make smoke URL=http://127.0.0.1:3000               # the local stack (`make run`): no SigV4

Checks: Meta's GET handshake with the stack's verify token; a signed synthetic webhook (a text from the lead
+972 50-000-0000, dated 25 hours ago so no auto-reply is ever sent to it) accepted; `/health`; the read API
returning that message; and with TO, a template send (`hello_world`, which Meta gives every WhatsApp Business
Account; TEMPLATE and LANGUAGE choose another) followed by its status coming back through Meta's webhook.

Against AWS the API calls are signed with SigV4 from the caller's credentials (botocore's signer), and the
verify token and app secret are read from the stack's secret (WHATSAPP_VERIFY_TOKEN and WHATSAPP_APP_SECRET
override them). A URL on loopback given as URL= is the local stack: its own values, nothing signed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deploy_config import DeployError, aws_session, fail, load_environment, stack_outputs

from local import defaults
from local.runtime import use_layers

use_layers()

from local import meta_payloads as meta

SMOKE_LEAD = "972500000000"
SMOKE_NAME = "Smoke test (make smoke)"
# Older than the 24-hour customer-service window: the responder drops it, so nothing is ever sent to SMOKE_LEAD.
SMOKE_AGE_SECONDS = 25 * 3600
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
READ_WAIT_SECONDS = 15.0
STATUS_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error_text(self) -> str:
        document = self.json()
        error = document.get("error") if isinstance(document, dict) else None
        if isinstance(error, dict):
            graph = error.get("graph_error") or {}
            code = f" (Meta {graph.get('code')}: {graph.get('title')})" if graph else ""
            return f"{self.status} {error.get('code')}: {error.get('message')}{code}"
        if isinstance(document, dict) and "message" in document:
            return f"{self.status} {document['message']}"
        return f"{self.status} {self.body[:200].decode('utf-8', errors='replace')}"


class Client:
    """HTTP to the stack; signed with SigV4 for execute-api when `credentials` are given."""

    def __init__(self, base_url: str, credentials: Any = None, region: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.region = region

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        sign: bool = True,
    ) -> Answer:
        url = self.base_url + path
        headers = dict(headers or {})
        if sign and self.credentials is not None:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest

            signed = AWSRequest(method=method, url=url, data=body, headers=headers)
            SigV4Auth(self.credentials, "execute-api", self.region).add_auth(signed)
            headers = dict(signed.headers.items())
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, response.read())
        except urllib.error.HTTPError as refused:
            return Answer(refused.code, refused.read())


@dataclass
class Smoke:
    client: Client
    verify_token: str
    app_secret: str
    where: str  # how to read the logs of this stack, for the hints
    wamid: str = ""

    def handshake(self) -> tuple[bool, str, str]:
        challenge = str(secrets.randbelow(10**9))
        query = urllib.parse.urlencode(
            {"hub.mode": "subscribe", "hub.verify_token": self.verify_token, "hub.challenge": challenge}
        )
        answer = self.client.request("GET", f"/webhook?{query}", sign=False)
        if answer.status == 200 and answer.body.decode(errors="replace") == challenge:
            return True, "GET /webhook answered Meta's challenge", ""
        if answer.status == 403:
            return False, answer.error_text(), "the stack's verify token differs: `make verify-token`, or `make secret`"
        return False, answer.error_text(), f"is URL the ApiBaseUrl output (no /webhook)? {self.where} WebhookFunction"

    def webhook(self) -> tuple[bool, str, str]:
        self.wamid = ""
        wamid = meta.new_wamid("smoke")
        message = meta.text_message(SMOKE_LEAD, "make smoke: synthetic message, no reply expected")
        message["id"] = wamid
        message["timestamp"] = str(int(time.time()) - SMOKE_AGE_SECONDS)
        body = meta.wire_bytes(meta.envelope(meta.message_value([message], name=SMOKE_NAME)))
        headers = meta.signed_headers(body, self.app_secret)
        answer = self.client.request("POST", "/webhook", body=body, headers=headers, sign=False)
        if answer.status == 200:
            self.wamid = wamid
            return True, f"POST /webhook (signed) stored {wamid} from +{SMOKE_LEAD}", ""
        if answer.status in (401, 403):
            return (
                False,
                answer.error_text(),
                "the app secret in the stack's secret is not the one signing: `make secret`",
            )
        return False, answer.error_text(), f"the webhook could not store it: {self.where} WebhookFunction"

    def health(self) -> tuple[bool, str, str]:
        answer = self.client.request("GET", "/health")
        document = answer.json()
        if answer.status == 403:
            return False, answer.error_text(), "these AWS credentials may not call the API: attach ApiCallerPolicyArn"
        if answer.status != 200 or not isinstance(document, dict):
            return False, answer.error_text(), f"{self.where} ConversationsFunction"
        checks = document.get("checks", {})
        failing = sorted(name for name, check in checks.items() if isinstance(check, dict) and not check.get("ok"))
        if document.get("status") == "healthy":
            return True, "GET /health: healthy (" + ", ".join(sorted(checks)) + ")", ""
        hint = "fill the secret: `make secret`" if "secret" in failing else f"{self.where} ConversationsFunction"
        return False, f"GET /health: {document.get('status')}, failing: {', '.join(failing)}", hint

    def read(self) -> tuple[bool, str, str]:
        if not self.wamid:
            return False, "no synthetic message was sent", "fix the webhook check first"
        found, answer = self._wait_for(SMOKE_LEAD, lambda message: message.get("id") == self.wamid, READ_WAIT_SECONDS)
        if found is not None:
            return True, f"GET /conversations/{SMOKE_LEAD}/messages returned {self.wamid}", ""
        if answer is not None and answer.status == 403:
            return False, answer.error_text(), "these AWS credentials may not call the API: attach ApiCallerPolicyArn"
        detail = answer.error_text() if answer is not None and answer.status != 200 else "the message is not listed"
        return False, detail, f"stored but not readable: {self.where} ConversationsFunction"

    def send(self, to: str, template: str, language: str) -> tuple[bool, str, str]:
        payload = {"to": to, "type": "template", "template": {"name": template, "language": {"code": language}}}
        answer = self.client.request(
            "POST", "/messages", body=json.dumps(payload).encode(), headers={"content-type": "application/json"}
        )
        document = answer.json()
        if answer.status not in (200, 201, 202) or not isinstance(document, dict) or "message_id" not in document:
            return False, answer.error_text(), _send_hint(answer, self.where)
        message_id = str(document["message_id"])
        wa_id = str(document.get("wa_id") or re.sub(r"\D", "", to))
        delivered = ("sent", "delivered", "read")
        found, _ = self._wait_for(
            wa_id,
            lambda message: message.get("id") == message_id and message.get("status") in delivered,
            STATUS_WAIT_SECONDS,
        )
        if found is None:
            return (
                False,
                f"POST /messages accepted {message_id}, but no status came back in {STATUS_WAIT_SECONDS:.0f} s",
                "Meta's webhook is not delivering: Callback URL, the `messages` field, and subscribed_apps (README)",
            )
        return True, f"{template} ({language}) to {to}: {found.get('status')} (the status came back by webhook)", ""

    def _wait_for(
        self, wa_id: str, wanted: Callable[[dict[str, Any]], bool], seconds: float
    ) -> tuple[dict[str, Any] | None, Answer | None]:
        deadline = time.monotonic() + seconds
        answer: Answer | None = None
        while True:
            answer = self.client.request("GET", f"/conversations/{wa_id}/messages")
            document = answer.json()
            messages = document.get("messages", []) if isinstance(document, dict) else []
            match = next((m for m in messages if isinstance(m, dict) and wanted(m)), None)
            if match is not None or answer.status == 403 or time.monotonic() > deadline:
                return match, answer
            time.sleep(1)


SEND_HINTS = {
    "131030": "add the number to your test number's recipients (API Setup > To > Manage phone number list)",
    "132001": "no such approved template in that language: TEMPLATE=<name> LANGUAGE=<code>",
    "190": "Meta refused the access token: a system-user token with whatsapp_business_messaging, `make secret`",
    "configuration_error": "deploy with WhatsAppPhoneNumberIds (make deploy)",
}


def _send_hint(answer: Answer, where: str) -> str:
    text = answer.error_text()
    for key, hint in SEND_HINTS.items():
        if re.search(rf"\b{re.escape(key)}\b", text):
            return hint
    if answer.status == 403:
        return "these AWS credentials may not call the API: attach ApiCallerPolicyArn"
    return f"{where} SendFunction"


def _run(smoke: Smoke, to: str | None, template: str, language: str) -> bool:
    checks: list[tuple[str, Callable[[], tuple[bool, str, str]]]] = [
        ("handshake", smoke.handshake),
        ("webhook", smoke.webhook),
        ("health", smoke.health),
        ("read", smoke.read),
    ]
    if to:
        checks.append(("send", lambda: smoke.send(to, template, language)))
    all_ok = True
    for name, check in checks:
        started = time.monotonic()
        try:
            ok, detail, hint = check()
        except (OSError, urllib.error.URLError) as failure:
            ok, detail, hint = False, f"cannot connect: {failure}", "is the stack running and URL right?"
        took = time.monotonic() - started
        all_ok = all_ok and ok
        line = f"{'ok  ' if ok else 'FAIL'}  {name:<9} {detail} ({took:.1f} s)"
        print(line + ("" if ok else f"\n      -> {hint}"), flush=True)
    if not to:
        print("skip  send      give TO=+972... (a recipient your number may message) for a real template send")
    return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Smoke-test a deployed or local stack.")
    parser.add_argument("--url", default="", help="the stack's ApiBaseUrl (default: ENV's stack output)")
    parser.add_argument("--env", default="dev", help="samconfig.toml environment, for the stack and its secret")
    parser.add_argument("--to", default="", help="send a template to this number (E.164) and wait for its status")
    parser.add_argument("--template", default="hello_world")
    parser.add_argument("--language", default="en_US")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    host = urllib.parse.urlsplit(url).hostname if url else None
    try:
        if url and host in LOOPBACK:
            smoke = Smoke(Client(url), defaults.verify_token(), defaults.app_secret(), where="see `make run`'s log:")
            print(f"local stack {url} (no SigV4: its routes are open on loopback)")
        else:
            environment = load_environment(args.env)
            region = _region_of(url) or environment.region
            session = aws_session(region)
            credentials = session.get_credentials()
            if credentials is None:
                raise DeployError("no AWS credentials: AWS_PROFILE, `aws sso login`, or access keys in the environment")
            outputs = stack_outputs(session, environment.stack_name) if not url or not _secret_from_env() else {}
            if outputs is None:
                raise DeployError(f"no stack {environment.stack_name} in {region}: make deploy ENV={args.env}, or URL=")
            url = url or outputs.get("ApiBaseUrl", "")
            if not url:
                raise DeployError(f"stack {environment.stack_name} has no ApiBaseUrl output; give URL=")
            verify_token, app_secret = _stack_secret(session, outputs)
            where = f".venv-tools/bin/sam logs --config-env {args.env} --name"
            smoke = Smoke(Client(url, credentials, region), verify_token, app_secret, where=where)
            print(f"stack {url} (SigV4 as {session.client('sts').get_caller_identity()['Arn']}, {region})")
    except DeployError as error:
        return fail(error)
    return 0 if _run(smoke, args.to or None, args.template, args.language) else 1


def _region_of(url: str) -> str | None:
    match = re.search(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com", url)
    return match.group(1) if match else None


def _secret_from_env() -> bool:
    return bool(os.environ.get("WHATSAPP_VERIFY_TOKEN") and os.environ.get("WHATSAPP_APP_SECRET"))


def _stack_secret(session: Any, outputs: dict[str, str]) -> tuple[str, str]:
    if _secret_from_env():
        return os.environ["WHATSAPP_VERIFY_TOKEN"], os.environ["WHATSAPP_APP_SECRET"]
    arn = outputs.get("WhatsAppSecretArn")
    if not arn:
        raise DeployError(
            "the stack has no WhatsAppSecretArn output: set WHATSAPP_VERIFY_TOKEN and WHATSAPP_APP_SECRET"
        )
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        document = json.loads(session.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    except (BotoCoreError, ClientError, ValueError) as failure:
        raise DeployError(f"cannot read the stack's secret ({type(failure).__name__}): make secret") from None
    return str(document.get("verify_token", "")), str(document.get("app_secret", ""))


if __name__ == "__main__":
    sys.exit(main())
