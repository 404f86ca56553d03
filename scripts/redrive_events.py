#!/usr/bin/env python3
"""Put the CRM events kept on EventsDeadLetterQueue back on the bus, once EventBridge takes them again.

    python scripts/redrive_events.py --queue-url <EventsDeadLetterQueueUrl output>            # redrive
    python scripts/redrive_events.py --queue-url <...> --bus-name <CrmEventBusName output>    # stream ranges too
    python scripts/redrive_events.py --queue-url <...> --dry-run                              # only list

Each kept event is a ready PutEvents entry (whatsapp_crm.outbox): it is put as it was, with the same
detail.id, and its message is deleted only when EventBridge accepted it. Lambda's note of a stream batch it
gave up on (the function crashed or timed out on every retry) names a range of the table's stream: with
--bus-name, that range is read again (the stream keeps records 24 hours) and its events published as
EventsFunction would (same detail.ids, default options: no text, no auto-reply statuses). Other letters (a
stream record that could not be mapped) are listed and left for a person: they name the table item to look
at. Uses the AWS credentials and region of the shell.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local.runtime import use_layers

use_layers()

import boto3

from local.stream_poller import lambda_record
from whatsapp_crm.eventbridge import EventBridgePublisher
from whatsapp_crm.outbox import entry_for_api, publish_changes
from whatsapp_crm.sqs.event_dead_letters import SqsEventDeadLetters
from whatsapp_crm.store.stream import change_from_record


def replay_range(streams: Any, events: Any, sqs: Any, queue_url: str, bus_name: str, info: dict[str, Any]) -> int:
    """Lambda's note of a stream batch: its records read again and their events published (or kept on the
    queue as entries). The events published; ValueError when the range is no longer on the stream."""
    end = int(info["endSequenceNumber"])
    iterator: str | None = streams.get_shard_iterator(
        StreamArn=info["streamArn"],
        ShardId=info["shardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        fresh = [record for record in page.get("Records", []) if int(record["dynamodb"]["SequenceNumber"]) <= end]
        records += [lambda_record(record, info["streamArn"]) for record in fresh]
        if not page.get("Records") or len(fresh) < len(page["Records"]):
            break
        iterator = page.get("NextShardIterator")
    if not records or int(records[-1]["dynamodb"]["SequenceNumber"]) != end:
        raise ValueError("the range is no longer (or not wholly) on the stream")
    report = publish_changes(
        [change_from_record(record) for record in records],
        bus_name=bus_name,
        publisher=EventBridgePublisher(events),
        dead_letters=SqsEventDeadLetters(queue_url, client=sqs),
    )
    if report.retry_from is not None:
        raise ValueError("EventBridge and the queue both refused; try again later")
    return report.published


def redrive(
    sqs: Any,
    events: Any,
    queue_url: str,
    *,
    dry_run: bool = False,
    rounds: int = 1000,
    bus_name: str | None = None,
    streams: Any = None,
) -> dict[str, int]:
    counts = {"redriven": 0, "refused": 0, "left_for_a_person": 0, "stream_events_republished": 0}
    for _ in range(rounds):
        # Letters left in place become visible again after this timeout, so one run sees each once.
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            letter = json.loads(message["Body"])
            info = letter.get("DDBStreamBatchInfo")
            if isinstance(info, dict) and bus_name and streams is not None and not dry_run:
                try:
                    counts["stream_events_republished"] += replay_range(streams, events, sqs, queue_url, bus_name, info)
                except ValueError as error:
                    counts["refused"] += 1
                    print(f"stream range {info.get('startSequenceNumber')}..{info.get('endSequenceNumber')}: {error}")
                    continue
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                continue
            if letter.get("kind") != "unpublished_event":
                counts["left_for_a_person"] += 1
                print(f"left: {json.dumps(letter, ensure_ascii=False)}")
                continue
            if dry_run:
                print(f"would put: {letter['entry']['DetailType']} {letter.get('detail_id')}")
                continue
            result = events.put_events(Entries=[entry_for_api(letter["entry"])])
            if result.get("FailedEntryCount"):
                counts["refused"] += 1
                print(f"refused again: {letter.get('detail_id')} {result['Entries'][0].get('ErrorCode')}")
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            counts["redriven"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--queue-url", required=True, help="the stack's EventsDeadLetterQueueUrl output")
    parser.add_argument(
        "--bus-name", help="the stack's CrmEventBusName output: replay the stream ranges Lambda gave up on"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be put back, change nothing")
    arguments = parser.parse_args(argv)
    counts = redrive(
        boto3.client("sqs"),
        boto3.client("events"),
        arguments.queue_url,
        dry_run=arguments.dry_run,
        bus_name=arguments.bus_name,
        streams=boto3.client("dynamodbstreams"),
    )
    print(json.dumps(counts))
    return 1 if counts["refused"] else 0


if __name__ == "__main__":
    sys.exit(main())
