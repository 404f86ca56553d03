"""The media queue's records as MediaFunction's batch processor parses them (Powertools' SQS record model
with our ArchiveRequest as its JSON body).

A module of its own so that MediaFunction imports Powertools' batch utility and parser models (every AWS
event model Powertools has) only when a batch of the queue arrives, not for an upload or a link (cold start,
docs/performance.md).
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from whatsapp_crm.media_archive import ArchiveRequest


class MediaQueueRecord(SqsRecordModel):
    body: Json[ArchiveRequest]


def archive_processor() -> BatchProcessor:
    processor = BatchProcessor(event_type=EventType.SQS, model=MediaQueueRecord)
    # Report failures item by item even when all failed: Lambda's Errors metric then means a real crash.
    processor.raise_on_entire_batch_failure = False
    return processor
