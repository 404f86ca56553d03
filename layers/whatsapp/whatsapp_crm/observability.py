"""The one Logger, Metrics and Tracer every function shares, plus masking for personal data.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE
(set in template.yaml's Globals), so nothing here reads settings at import time.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()
tracer = Tracer()

__all__ = ["MetricUnit", "logger", "mask_phone", "metrics", "tracer"]


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
