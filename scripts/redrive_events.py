#!/usr/bin/env python3
"""Put the CRM events kept on EventsDeadLetterQueue back on the bus, once EventBridge takes them again.

    python scripts/redrive_events.py --queue-url <EventsDeadLetterQueueUrl output>            # redrive
    python scripts/redrive_events.py --queue-url <...> --dry-run                              # only list

Each kept event is a ready PutEvents entry (whatsapp_crm.outbox): it is put as it was, with the same
detail.id, and its message is deleted only when EventBridge accepted it. Other letters (a stream record
that could not be mapped, Lambda's note of a batch it gave up on) are listed and left for a person: they
name the table item or the stream range to look at. Uses the AWS credentials and region of the shell.
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

from whatsapp_crm.outbox import entry_for_api


def redrive(sqs: Any, events: Any, queue_url: str, *, dry_run: bool = False, rounds: int = 1000) -> dict[str, int]:
    counts = {"redriven": 0, "refused": 0, "left_for_a_person": 0}
    for _ in range(rounds):
        # Letters left in place become visible again after this timeout, so one run sees each once.
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            letter = json.loads(message["Body"])
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
    parser.add_argument("--dry-run", action="store_true", help="list what would be put back, change nothing")
    arguments = parser.parse_args(argv)
    counts = redrive(boto3.client("sqs"), boto3.client("events"), arguments.queue_url, dry_run=arguments.dry_run)
    print(json.dumps(counts))
    return 1 if counts["refused"] else 0


if __name__ == "__main__":
    sys.exit(main())
