"""The DynamoDB Streams event source mapping, played locally on moto's DynamoDB Streams.

One poller per DynamoDB event of every function in template.yaml (EventsFunction's TableChanges). It does
what Lambda's event source mapping does for a stream, with one shard (moto keeps one per table):

- records are Lambda-shaped (eventID, eventName, dynamodb with Keys, NewImage, OldImage, SequenceNumber,
  ApproximateCreationDateTime in epoch seconds, eventSourceARN);
- up to BatchSize records per invocation, in stream order, from StartingPosition;
- a function error or timeout retries the same batch; with ReportBatchItemFailures, a response naming a
  record retries from that record (the records before it are checkpointed), as Lambda does;
- after MaximumRetryAttempts retries of a batch, its OnFailure destination (an SQS queue) receives what
  Lambda sends there (the function, the condition and the shard's sequence range, never the records), and
  the poller moves past the batch.

Not emulated: BisectBatchOnFunctionError (a failing batch is retried whole), FilterCriteria (the function
ignores items no event is about by itself), parallelization factor, record age limits.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from local.defaults import LOCAL_REGION
from local.poller import BackgroundPolling
from local.template import CreatedResources


@dataclass(frozen=True)
class StreamSource:
    """One DynamoDB event of one function."""

    function: str
    event_name: str
    stream_arn: str
    batch_size: int
    starting_position: str
    maximum_retry_attempts: int
    report_batch_item_failures: bool
    on_failure_queue_url: str | None = None


def _stream_arn(value: Any, created: CreatedResources) -> str:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return created.attributes[(logical_id, attribute)]
    if isinstance(value, str):
        return value
    raise ValueError(f"unsupported Stream value {value!r}")


def _queue_url(value: Any, created: CreatedResources) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, _ = value["Fn::GetAtt"]
        return created.refs.get(logical_id)
    return None


def stream_sources(template: dict[str, Any], created: CreatedResources) -> list[StreamSource]:
    sources: list[StreamSource] = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") != "DynamoDB":
                continue
            properties = event.get("Properties") or {}
            on_failure = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            sources.append(
                StreamSource(
                    function=logical_id,
                    event_name=name,
                    stream_arn=_stream_arn(properties["Stream"], created),
                    batch_size=int(properties.get("BatchSize", 100)),
                    starting_position=str(properties.get("StartingPosition", "TRIM_HORIZON")),
                    maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", -1)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (properties.get("FunctionResponseTypes") or []),
                    on_failure_queue_url=_queue_url(on_failure, created) if on_failure else None,
                )
            )
    return sources


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record from GetRecords (boto3-parsed) in the shape Lambda hands to functions."""
    body = dict(record.get("dynamodb") or {})
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        body["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": LOCAL_REGION,
        "dynamodb": body,
        "eventSourceARN": stream_arn,
    }


def retry_position(outcome: Any, records: list[dict[str, Any]], report_failures: bool) -> int | None:
    """Index of the first record to process again; None when the batch succeeded."""
    if outcome.error is not None:
        return 0
    response = outcome.payload
    if not report_failures or not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures") or []
    if not failures:
        return None
    sequences = [str(record["dynamodb"].get("SequenceNumber")) for record in records]
    positions = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier not in sequences:
            return 0  # Lambda treats a malformed partial response as a failure of the whole batch
        positions.append(sequences.index(str(identifier)))
    return min(positions)


class StreamPoller(BackgroundPolling):
    """Feeds one function from one table stream: poll_once() for tests, start() for the local stack."""

    def __init__(
        self,
        source: StreamSource,
        streams_client: Any,
        sqs_client: Any,
        invoke: Callable[[str, dict[str, Any]], Any],
        *,
        interval_seconds: float = 0.5,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self._streams = streams_client
        self._sqs = sqs_client
        self._invoke = invoke
        self._idle_seconds = interval_seconds
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._label = f"stream-{source.function}-{source.event_name}"
        self._position: str | None = None  # sequence number of the next record to read (AT_SEQUENCE_NUMBER)
        self._pending: list[dict[str, Any]] = []  # records read but not yet checkpointed
        self._attempts = 0
        self.batches = 0
        self.given_up = 0

    def _iterator(self) -> str:
        shards = self._streams.describe_stream(StreamArn=self.source.stream_arn)["StreamDescription"]["Shards"]
        request: dict[str, Any] = {"StreamArn": self.source.stream_arn, "ShardId": shards[0]["ShardId"]}
        if self._position is None:
            request["ShardIteratorType"] = self.source.starting_position
        else:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=self._position)
        return str(self._streams.get_shard_iterator(**request)["ShardIterator"])

    def _read(self) -> list[dict[str, Any]]:
        if len(self._pending) < self.source.batch_size:
            response = self._streams.get_records(ShardIterator=self._iterator(), Limit=self.source.batch_size)
            for record in response.get("Records", []):
                self._pending.append(lambda_record(record, self.source.stream_arn))
                self._position = str(record["dynamodb"]["SequenceNumber"])
        return self._pending[: self.source.batch_size]

    def poll_once(self) -> int:
        """One read-invoke-checkpoint round; the number of records checkpointed (0 when none or all failed)."""
        records = self._read()
        if not records:
            return 0
        outcome = self._invoke(self.source.function, {"Records": records})
        self.batches += 1
        retry_from = retry_position(outcome, records, self.source.report_batch_item_failures)
        if retry_from is None:
            return self._checkpoint(len(records))
        done = self._checkpoint(retry_from) if retry_from else 0
        self._attempts += 1
        limit = self.source.maximum_retry_attempts
        if limit >= 0 and self._attempts > limit:
            return done + self._give_up(self._pending[: self.source.batch_size], outcome)
        if self._log is not None:
            self._log(f"{self.source.function}: stream batch retried from record {retry_from} (try {self._attempts})")
        return done

    def _checkpoint(self, count: int) -> int:
        del self._pending[:count]
        self._attempts = 0
        return count

    def _give_up(self, records: list[dict[str, Any]], outcome: Any) -> int:
        """Lambda's on-failure record for a stream batch: where the records are, not the records."""
        self.given_up += len(records)
        if self.source.on_failure_queue_url:
            note = {
                "requestContext": {
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": self._attempts,
                    "functionArn": f"arn:aws:lambda:{LOCAL_REGION}:000000000000:function:{self.source.function}",
                },
                "responseContext": {"functionError": (outcome.error or {}).get("errorType")},
                "DDBStreamBatchInfo": {
                    "shardId": "local",
                    "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                    "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                    "batchSize": len(records),
                    "streamArn": self.source.stream_arn,
                },
            }
            self._sqs.send_message(QueueUrl=self.source.on_failure_queue_url, MessageBody=json.dumps(note))
        if self._log is not None:
            self._log(f"{self.source.function}: gave up on {len(records)} stream records after retries")
        return self._checkpoint(len(records))

    def drain(self, max_rounds: int = 100) -> int:
        """Poll until the stream has nothing new (tests); the records checkpointed."""
        total = 0
        for _ in range(max_rounds):
            before = (self._position, len(self._pending))
            total += self.poll_once()
            if not self._pending and (self._position, 0) == (before[0], 0):
                return total
        return total
