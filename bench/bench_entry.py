"""CPU of the webhook's real Lambda entry point against a minimal hand-written handler making the same calls.

Run: `.venv/bin/python bench/bench_entry.py` (part of `make bench`).

Both run in this process with real boto3/botocore clients whose network is stubbed (bench/stubbed_network:
botocore's `before-send` hook answers with canned DynamoDB, SQS and Secrets Manager responses), so each
event pays for building, serialising, signing and parsing every AWS request as it does in Lambda, but for
no socket. Measured per event, in CPU time:

- **entry**: `functions/webhook/app.py`'s `lambda_handler` on an API Gateway HTTP API event: routing,
  settings, the cached secret, signature check, parse, the DynamoDB and SQS calls, metrics and the log line;
- **minimal**: `MinimalWebhook` below, what one would write by hand with boto3 and nothing else: the HMAC
  check, `json.loads`, then the very requests the entry point made for this event (recorded from it once
  through botocore's `before-parameter-build` event), with no routing, validation, logging or metrics;
- **floor**: HMAC-SHA256 plus `json.loads` of the body (bench_webhook.py's floor), for scale.

Entry and minimal alternate in rounds (best round of each, and the median of the per-round ratios), so load
on this shared machine hits both alike. The bench checks that both made the same AWS operations per event.
Target (issue 11): entry <= 1.5x minimal.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import os
import platform
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from _common import ROOT, ensure_paths

ensure_paths()

import stubbed_network
from bench_coldstart import lambda_environment

from local.apigw import http_api_event, lambda_context

TARGET = 1.5
APP_SECRET = "bench-app-secret"


def _environment() -> None:
    os.environ.update(lambda_environment("WebhookFunction", ROOT / "functions" / "webhook"))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    stubbed_network.configure(app_secret=APP_SECRET, verify_token="bench-verify-token")
    stubbed_network.install()


class MinimalWebhook:
    """A webhook written by hand with boto3 alone: check the signature, read the JSON, make the calls.

    It makes exactly the requests the real entry point made for the same event (recorded once from it), so
    what the two differ by is everything our code adds around the AWS calls (routing, settings, parsing and
    validation, building the requests, logging, metrics), not a different design of the writes (issue 11's
    point 1 is about those)."""

    def __init__(self, requests: list[tuple[str, str, dict[str, Any]]]) -> None:
        import boto3
        from botocore import xform_name

        secrets = boto3.client("secretsmanager")
        secret = secrets.get_secret_value(SecretId=os.environ["WHATSAPP_SECRET_ID"])["SecretString"]
        self.app_secret = json.loads(secret)["app_secret"].encode()
        clients = {service: boto3.client(service) for service in {service for service, _op, _params in requests}}
        self.calls = [(getattr(clients[service], xform_name(op)), params) for service, op, params in requests]

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        raw = event.get("body") or ""
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        expected = "sha256=" + hmac.new(self.app_secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(event["headers"].get("x-hub-signature-256", ""), expected):
            return {"statusCode": 403, "body": '{"error":"signature"}'}
        json.loads(body)
        for call, params in self.calls:
            call(**params)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"status":"ok"}'}


def _recorded(handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any], context: Any) -> list[Any]:
    stubbed_network.recorded.clear()
    stubbed_network.recording = True
    try:
        _operations(handler, event, context)
    finally:
        stubbed_network.recording = False
    return list(stubbed_network.recorded)


def _operations(handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any], context: Any) -> Counter[str]:
    stubbed_network.calls.clear()
    response = handler(event, context)
    if response["statusCode"] != 200:
        raise SystemExit(f"{handler} answered {response}")
    return Counter(stubbed_network.calls)


def main() -> int:
    _environment()
    # After the environment: Powertools reads its service name and metrics namespace when first imported.
    from bench_webhook import hebrew_text_body, interleaved, three_status_body

    from local import meta_payloads as meta
    from local.handlers import load_function_module

    entry = load_function_module("WebhookFunction").lambda_handler
    context = lambda_context("WebhookFunction", timeout_seconds=10)
    rows = []
    from whatsapp_crm.observability import logger

    # What would reach CloudWatch Logs (the log lines and the metrics' EMF documents), kept and counted.
    logs = io.StringIO()
    logger.registered_handler.setStream(logs)  # type: ignore[attr-defined]
    with contextlib.redirect_stdout(logs):
        for name, body in (("Hebrew text message", hebrew_text_body()), ("3 statuses", three_status_body())):
            event = http_api_event(
                "POST",
                "/webhook",
                body=body,
                headers={"content-type": "application/json", **meta.signed_headers(body, APP_SECRET)},
            )
            # The first call reads the secret (cached afterwards by both): not part of the steady state.
            _operations(entry, event, context)
            minimal = MinimalWebhook(_recorded(entry, event, context))
            entry_calls, minimal_calls = _operations(entry, event, context), _operations(minimal, event, context)
            if entry_calls != minimal_calls:
                raise SystemExit(
                    f"{name}: different AWS calls, entry {dict(entry_calls)}, minimal {dict(minimal_calls)}"
                )

            def floor(body: bytes = body) -> None:
                hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
                json.loads(body)

            def run_entry(event: dict[str, Any] = event) -> None:
                entry(event, context)

            def run_minimal(event: dict[str, Any] = event, minimal: MinimalWebhook = minimal) -> None:
                minimal(event, context)

            best_minimal, best_entry, median_ratio = interleaved(run_minimal, run_entry, 200, 9)
            logs.seek(0)
            logs.truncate()
            run_entry()
            log_bytes = len(logs.getvalue().encode())
            best_floor = min(interleaved(floor, floor, 2000, 3)[:2])
            rows.append((name, entry_calls, best_floor, best_minimal, best_entry, median_ratio, log_bytes))
    load = os.getloadavg()
    print("## Webhook CPU per event through the Lambda entry point (real botocore, network stubbed)")
    print(f"CPython {platform.python_version()} on {platform.machine()}; load average {load[0]:.1f}; best of 9 rounds")
    print("of 200 events each, entry and minimal alternating.\n")
    print(
        "| payload | AWS calls per event | floor (HMAC + json.loads) | minimal boto3 handler | lambda_handler "
        "| entry / minimal (best) | entry / minimal (median of rounds) | log bytes per event |"
    )
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for name, calls, best_floor, best_minimal, best_entry, median_ratio, log_bytes in rows:
        worst = max(worst, median_ratio)
        described = ", ".join(f"{operation.split('.')[-1]} {count}" for operation, count in sorted(calls.items()))
        print(
            f"| {name} | {described} | {best_floor * 1e6:.1f} µs | {best_minimal * 1e6:.0f} µs "
            f"| {best_entry * 1e6:.0f} µs | {best_entry / best_minimal:.2f}x | {median_ratio:.2f}x | {log_bytes:.0f} |"
        )
    print(f"\nWorst median ratio {worst:.2f}x (target <= {TARGET}x): {'met' if worst <= TARGET else 'not met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
