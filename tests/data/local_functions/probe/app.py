"""Handlers for the local runtime's tests: what a function instance sees, and how it can fail."""

from __future__ import annotations

import os
import time
from typing import Any

INVOCATIONS = 0


def environment(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global INVOCATIONS
    INVOCATIONS += 1
    return {
        "probe": os.environ.get("PROBE_VALUE"),
        "table": os.environ.get("TABLE_NAME"),
        "shell_secret": os.environ.get("AWS_PROFILE"),
        "invocations": INVOCATIONS,
        "pid": os.getpid(),
        "function_name": context.function_name,
        "echo": event.get("echo"),
    }


def sleep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(float(event.get("seconds", 0)))
    return {"slept": event.get("seconds"), "pid": os.getpid()}


def fail(event: dict[str, Any], context: Any) -> None:
    raise ValueError("the probe was asked to fail")


def crash(event: dict[str, Any], context: Any) -> None:
    os._exit(3)
