"""A short day against the real local stack with faults on: bench/replay.py's every check must pass.

1,000 webhooks for 100 leads (redeliveries, shuffled statuses, unsigned, tampered and malformed bodies
included), 10% of DynamoDB/SQS attempts and 10% of Graph sends failing. The full day is `make replay`
(docs/reliability.md). The inbound queue's visibility timeout is shortened to 30 s so retried records
return within the test's time; the responder's 90-second claim lease is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import replay

SHORT_DAY = [
    "--webhooks", "1000",
    "--leads", "100",
    "--concurrency", "2,8",
    "--fault-rate", "0.1",
    "--fault-seed", "7",
    "--visibility-timeout", "30",
    "--drain-timeout", "600",
    "--quiet",
]  # fmt: skip


def _phase_lines(config: pytest.Config) -> Callable[[str], None] | None:
    """Write each replay phase to the terminal as it happens (past pytest's capture): the short day takes
    minutes, and `make test` would otherwise print nothing meanwhile."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if terminal is None or capture is None:
        return None

    def write(line: str) -> None:
        with capture.global_and_fixture_disabled():
            terminal.write(f"\n  {line}", flush=True)

    return write


def test_a_short_day_with_faults_loses_nothing_and_replies_once(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    # Given the local stack with 10% of AWS attempts and Graph sends failing
    printed: list[str] = []
    report = tmp_path / "replay-report.json"

    # When a short day of webhooks is fired at it, retried like Meta, and the queue drained
    exit_code = replay.main(
        [*SHORT_DAY, "--json", str(report)], print_table=printed.append, phase_line=_phase_lines(pytestconfig)
    )

    # Then every check passes: nothing lost or stored twice, one reply per eligible message, statuses right
    # (on failure the report's explained_failures hold each failing message's stored timeline)
    assert exit_code == 0, "\n".join(printed) + "\n" + report.read_text(encoding="utf-8")[-20000:]

    # And the faults really happened: about 10% of the webhook's and the responder's AWS attempts failed
    # (a fault injection that silently stopped working would leave every check above green)
    meters = json.loads(report.read_text(encoding="utf-8"))["meters"]
    for function in ("WebhookFunction", "ResponderFunction"):
        attempts = sum(meters[function]["attempts"].values())
        faults = sum(meters[function]["faults"].values())
        assert 0.05 < faults / attempts < 0.15, (function, faults, attempts)
