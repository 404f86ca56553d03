"""The webhook's dead letter: parts DynamoDB refused for good, kept whole on a standard SQS queue.

One SQS message per part, the part's own JSON inside a small envelope that says what it was and why it
could not be stored. A part too large for one SQS message (1 MiB) travels gzip-compressed and base64
encoded (`part_gzip_base64`); WhatsApp's own limits keep real parts far below that. Only a part that
does not fit even then (random bytes of megabytes) keeps just its beginning, size and SHA-256.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whatsapp_crm.errors import QueueUnavailableError
from whatsapp_crm.ingest import UnstorablePart
from whatsapp_crm.sqs.queue import SqsQueue

# SQS's limit is 1 MiB per message; the envelope's own fields need a little of it.
MAX_MESSAGE_BYTES = 1024 * 1024 - 4096


def dead_letter_body(part: UnstorablePart) -> str:
    envelope: dict[str, Any] = {
        "kind": part.kind,
        "reason": part.reason,
        "phone_number_id": part.phone_number_id,
        "received_at": part.received_at,
    }
    whole = json.dumps({**envelope, "part": json.loads(part.raw_json)}, ensure_ascii=True, separators=(",", ":"))
    if len(whole) <= MAX_MESSAGE_BYTES:
        return whole
    raw = part.raw_json.encode("utf-8")
    packed = base64.b64encode(gzip.compress(raw, compresslevel=9)).decode("ascii")
    if len(packed) <= MAX_MESSAGE_BYTES:
        return json.dumps({**envelope, "part_gzip_base64": packed}, separators=(",", ":"))
    # Beyond what any WhatsApp part can be (the webhook takes bodies up to 4 MiB): keep what fits, and the
    # hash and size of the whole, rather than answering 500 for a week over one part.
    head = base64.b64encode(raw[: MAX_MESSAGE_BYTES * 3 // 4 - 1024]).decode("ascii")
    return json.dumps(
        {
            **envelope,
            "truncated": True,
            "part_bytes": len(raw),
            "part_sha256": hashlib.sha256(raw).hexdigest(),
            "part_head_base64": head,
        },
        separators=(",", ":"),
    )


def read_dead_letter(body: str) -> dict[str, Any]:
    """A dead letter's envelope with `part` always decoded (for people and tests)."""
    document: dict[str, Any] = json.loads(body)
    packed = document.pop("part_gzip_base64", None)
    if packed is not None:
        document["part"] = json.loads(gzip.decompress(base64.b64decode(packed)))
    return document


class SqsDeadLetters(SqsQueue):
    def set_aside(self, part: UnstorablePart) -> str:
        """Send the part; QueueUnavailableError if SQS did not take it (then the webhook answers 500)."""
        try:
            response = self.client.send_message(QueueUrl=self.queue_url, MessageBody=dead_letter_body(part))
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailableError(f"SQS refused the dead letter: {type(error).__name__}") from error
        return str(response.get("MessageId", ""))
