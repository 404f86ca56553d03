"""The one Logger, Metrics and Tracer every function shares, plus masking for personal data.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE
(set in template.yaml's Globals), so nothing here reads settings at import time.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger()
metrics = Metrics()


def quiet_empty_metrics_warning() -> None:
    """Reads (GET /conversations, /health) publish no metric of their own, and that is expected: Powertools
    then warns on every invocation, a line per request in CloudWatch (and 89 in one test run). Its
    documentation gives this filter for functions that do not publish metrics every time."""
    warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)


quiet_empty_metrics_warning()

# `tracer` is provided lazily by __getattr__ below.
__all__ = ["MetricUnit", "logger", "mask_phone", "metrics"]

_tracer: Tracer | None = None


def __getattr__(name: str) -> Any:
    """`tracer` is built on first import of the name: constructing a Powertools Tracer loads the X-Ray SDK
    (about 200 ms of cold start, measured by bench/bench_webhook.py), which the webhook must not pay."""
    global _tracer
    if name == "tracer":
        if _tracer is None:
            from aws_lambda_powertools import Tracer

            _tracer = Tracer()
        return _tracer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def mask_phone(number: str | None) -> str:
    """Keep enough of a phone number to tell leads apart in logs, never the whole number.

    "972525551234" -> "9725******34": country code and prefix stay readable, the subscriber part does not.
    """
    if not number:
        return ""
    digits = number.lstrip("+")
    if len(digits) <= 6:
        return "*" * len(digits)
    return digits[:4] + "*" * (len(digits) - 6) + digits[-2:]
