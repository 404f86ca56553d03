"""The one Logger and Metrics every function shares, plus masking for personal data.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE
(set in template.yaml's Globals), so nothing here reads settings at import time.

No X-Ray SDK: Lambda's active tracing (template.yaml `Tracing: Active`) records every sampled invocation,
its initialisation and its duration without any code in the function; the SDK (Powertools' Tracer) would
add only subsegments per AWS and Graph call, at about a fifth of a cold start and a botocore of its own in
the layer (docs/decision-log.md, 2026-12-07).
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()


def quiet_empty_metrics_warning() -> None:
    """Reads (GET /conversations, /health) publish no metric of their own, and that is expected: Powertools
    then warns on every invocation, a line per request in CloudWatch (and 89 in one test run). Its
    documentation gives this filter for functions that do not publish metrics every time."""
    warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)


quiet_empty_metrics_warning()

__all__ = ["MetricUnit", "logger", "mask_phone", "metrics"]


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
