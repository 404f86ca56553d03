"""The SQS event source mapping, played locally: long-poll a queue, invoke the function, delete what succeeded.

One poller per SQS event of every function in template.yaml. It does what Lambda's event source mapping does
and nothing more, so the retry behaviour seen locally is the one seen in AWS:

- records are Lambda-shaped (messageId, receiptHandle, body, attributes incl. MessageGroupId,
  MessageDeduplicationId, SequenceNumber, ApproximateReceiveCount, eventSourceARN ...);
- up to BatchSize records per invocation, gathered for at most MaximumBatchingWindowInSeconds;
- a function error or timeout deletes nothing: the whole batch comes back after the queue's visibility
  timeout;
- with ReportBatchItemFailures, only the records named in batchItemFailures stay; a response naming an
  unknown or empty itemIdentifier fails the whole batch, as Lambda does;
- the queue's RedrivePolicy (maxReceiveCount) moves a record to the dead-letter queue; SQS (moto) does that
  on receive, not the poller.

Not emulated: Lambda's scaling out to concurrent batches (here one batch at a time per event source, which
keeps FIFO order trivially) and FilterCriteria (the stack says so at start when a template uses it).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.defaults import LOCAL_REGION
from local.template import CreatedResources

SQS_MAX_MESSAGES = 10
FIFO_MAX_BATCH = 10


@dataclass(frozen=True)
class SqsSource:
    """One SQS event of one function."""

    function: str
    event_name: str
    queue_url: str
    queue_arn: str
    batch_size: int
    batching_window_seconds: float
    report_batch_item_failures: bool
    enabled: bool = True
    has_filter: bool = False


def _queue_arn(value: Any, created: CreatedResources) -> str:
    """`Queue:` of an SQS event: !GetAtt Queue.Arn, or an ARN written out."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return created.attributes[(logical_id, attribute)]
    if isinstance(value, str):
        return value
    raise ValueError(f"unsupported Queue value {value!r}")


def sqs_sources(template: dict[str, Any], created: CreatedResources) -> list[SqsSource]:
    """Every SQS event of every function, its queue resolved to the locally created one."""
    url_by_arn = {
        arn: created.refs[logical_id]
        for (logical_id, attribute), arn in created.attributes.items()
        if attribute == "Arn" and logical_id in created.refs and created.refs[logical_id].startswith("http")
    }
    sources: list[SqsSource] = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") != "SQS":
                continue
            properties = event.get("Properties") or {}
            arn = _queue_arn(properties["Queue"], created)
            if arn not in url_by_arn:
                raise ValueError(f"{logical_id}.{name}: queue {arn} is not a queue of this template")
            fifo = arn.endswith(".fifo")
            batch_size = int(properties.get("BatchSize", 10))
            sources.append(
                SqsSource(
                    function=logical_id,
                    event_name=name,
                    queue_url=url_by_arn[arn],
                    queue_arn=arn,
                    batch_size=min(batch_size, FIFO_MAX_BATCH) if fifo else batch_size,
                    batching_window_seconds=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (properties.get("FunctionResponseTypes") or []),
                    enabled=bool(properties.get("Enabled", True)),
                    has_filter=bool(properties.get("FilterCriteria")),
                )
            )
    return sources


def _message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS's MessageAttributes in the camelCase shape Lambda hands to functions."""
    shaped: dict[str, Any] = {}
    for name, value in attributes.items():
        binary = value.get("BinaryValue")
        shaped[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode("ascii") if isinstance(binary, bytes) else binary,
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType"),
        }
    return shaped


def lambda_record(message: dict[str, Any], source: SqsSource) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": _message_attributes(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": LOCAL_REGION,
    }


@dataclass(frozen=True)
class BatchResult:
    received: int
    deleted: int
    failed_ids: tuple[str, ...]
    error: str | None = None


def failed_message_ids(outcome: Any, records: list[dict[str, Any]], report_failures: bool) -> set[str] | None:
    """Which records stay on the queue; None means the whole batch failed."""
    if outcome.error is not None:
        return None
    if not report_failures:
        return set()
    response = outcome.payload
    if response is None or response == {}:
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None or failures == []:
        return set()
    known = {record["messageId"] for record in records}
    wanted: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in known:
            return None  # Lambda treats a malformed partial response as a failure of the whole batch
        wanted.add(str(identifier))
    return wanted


class BackgroundPolling:
    """A poller's thread: poll_once() again and again until stop(); an error is logged and retried a second
    later (moto restarting, a stack shutting down). Subclasses set `_stop`, `_log`, `_thread` and `_label`."""

    _stop: threading.Event
    _thread: threading.Thread | None
    _log: Callable[[str], None] | None
    _label: str  # e.g. "sqs-ResponderFunction-Inbound"
    # How long to wait after a poll that found nothing (an SQS long poll has waited already).
    _idle_seconds: float = 0.0

    def poll_once(self) -> Any:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._label, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.poll_once() and self._idle_seconds:
                    self._stop.wait(self._idle_seconds)
            except Exception as error:  # moto restarting, a stack shutting down: keep the loop, say why
                if self._stop.is_set():
                    return
                if self._log is not None:
                    self._log(f"{self._label}: poll failed ({error!r}); retrying")
                self._stop.wait(1.0)


class SqsPoller(BackgroundPolling):
    """Feeds one function from one queue on a background thread until stop()."""

    def __init__(
        self,
        source: SqsSource,
        client: Any,
        invoke: Callable[[str, dict[str, Any]], Any],
        *,
        wait_seconds: int = 2,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self._client = client
        self._invoke = invoke
        self._wait_seconds = wait_seconds
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._label = f"sqs-{source.function}-{source.event_name}"
        self.batches = 0

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.source.batching_window_seconds
        while len(messages) < self.source.batch_size and not self._stop.is_set():
            # The first receive long-polls; later ones only top the batch up within the batching window.
            wait = self._wait_seconds if not messages else max(0, min(20, int(deadline - time.monotonic())))
            response = self._client.receive_message(
                QueueUrl=self.source.queue_url,
                MaxNumberOfMessages=min(SQS_MAX_MESSAGES, self.source.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            messages.extend(received)
            if not received or time.monotonic() >= deadline:
                break
        return messages

    def poll_once(self) -> BatchResult | None:
        """One receive-invoke-delete round; None when the queue had nothing."""
        messages = self._receive()
        if not messages:
            return None
        records = [lambda_record(message, self.source) for message in messages]
        outcome = self._invoke(self.source.function, {"Records": records})
        self.batches += 1
        failed = failed_message_ids(outcome, records, self.source.report_batch_item_failures)
        if failed is None:
            reason = (outcome.error or {}).get("errorType") or "invalid batchItemFailures response"
            if self._log is not None:
                self._log(
                    f"{self.source.function}: batch of {len(records)} failed ({reason}); every record returns "
                    "after the queue's visibility timeout"
                )
            return BatchResult(len(records), 0, tuple(record["messageId"] for record in records), reason)
        done = [record for record in records if record["messageId"] not in failed]
        for start in range(0, len(done), SQS_MAX_MESSAGES):
            chunk = done[start : start + SQS_MAX_MESSAGES]
            self._client.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[{"Id": str(index), "ReceiptHandle": r["receiptHandle"]} for index, r in enumerate(chunk)],
            )
        if failed and self._log is not None:
            self._log(
                f"{self.source.function}: {len(failed)} of {len(records)} records reported failed; they return "
                "after the queue's visibility timeout"
            )
        return BatchResult(len(records), len(done), tuple(sorted(failed)))
