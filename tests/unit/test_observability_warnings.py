"""A function that publishes no metric on an invocation (a read) logs no Powertools warning about it.

Without the filter every GET /conversations and /health left a `UserWarning: No application metrics to
publish` line in CloudWatch, and `make test` printed 89 copies of it.
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Metrics

from whatsapp_crm.observability import quiet_empty_metrics_warning


def _warnings_of_an_empty_flush(quiet: bool) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if quiet:
            quiet_empty_metrics_warning()
        metrics = Metrics(namespace="Test", service="test")
        metrics.clear_metrics()  # Powertools' metric set is shared by every instance: start from an empty one
        metrics.flush_metrics()
    return [str(warning.message) for warning in caught]


def test_powertools_warns_on_an_invocation_without_metrics_unless_quieted() -> None:
    # Given a function that published nothing this invocation, without the layer's filter Powertools warns
    assert any("No application metrics to publish" in message for message in _warnings_of_an_empty_flush(False))
    # When the layer's filter is in place, it does not
    assert _warnings_of_an_empty_flush(True) == []
