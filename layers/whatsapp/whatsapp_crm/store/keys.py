"""Key layout of the single conversations table. docs/table-design.md explains each access pattern.

item              PK                        SK              GSI1PK                 GSI1SK
lead              LEAD#<wa_id>              LEAD            -                      -
conversation      LEAD#<wa_id>              CONV#<number>   LEADS#<n>              <last activity>#<wa_id>#<number>
message           MSG#<wamid>               MSG             THREAD#<number>#<wa_id> <timestamp>#<wamid>
reply record      MSG#<wamid>               REPLY           -                -
hourly counters   STATS#<yyyy-mm-ddThh>#<n> STATS           -                -
template          TEMPLATES                 T#<name>#<lang> -                -
template sync     TEMPLATES                 SYNC            -                -
media file        MEDIA#<media_id>          MEDIA           -                -

A lead (opt-out, meeting request: one business) and its conversations, one per business number it wrote
to or was written from (window, unread, timeline, cool-downs), share the partition `LEAD#<wa_id>`: one
Query reads them all. `<number>` is the business phone_number_id. The index is GSI2 (attributes
GSI1PK/GSI1SK), projecting only what the thread lookups filter on. `<n>` is a shard: a hash of the lead
(LEADS) or of the event (STATS), so no partition takes every write.
"""

from __future__ import annotations

import zlib

LEAD_SK = "LEAD"
CONVERSATION_SK_PREFIX = "CONV#"
MESSAGE_SK = "MSG"
REPLY_CLAIM_SK = "REPLY"
# The leads listing's partitions: an answered message moves its lead's entry once (a delete and a put),
# so 16 shards keep each under 1,000 index writes a second up to ~8,000 new messages a second.
LEADS_PREFIX = "LEADS#"
LEAD_SHARDS = 16
# GSI2 replaced GSI1 (projection ALL -> INCLUDE) in the table redesign; the key attributes kept their names.
GSI1 = "GSI2"
STATS_SK = "STATS"
STATS_SHARDS = 16
TTL_ATTRIBUTE = "expires_at"
MEDIA_SK = "MEDIA"
TEMPLATES_PK = "TEMPLATES"
TEMPLATE_SK_PREFIX = "T#"
TEMPLATE_SYNC_SK = "SYNC"


def _shard(discriminator: str, shards: int) -> int:
    return zlib.crc32(discriminator.encode("utf-8")) % shards


def lead_pk(wa_id: str) -> str:
    return f"LEAD#{wa_id}"


def message_pk(wamid: str) -> str:
    return f"MSG#{wamid}"


def conversation_sk(phone_number_id: str) -> str:
    return f"{CONVERSATION_SK_PREFIX}{phone_number_id}"


def conversation_number(sort_key: str) -> str | None:
    """The business number of a conversation item's sort key; None for any other item of the partition."""
    return sort_key[len(CONVERSATION_SK_PREFIX) :] if sort_key.startswith(CONVERSATION_SK_PREFIX) else None


def thread_pk(phone_number_id: str, wa_id: str) -> str:
    """One conversation's messages: the lead's with one business number."""
    return f"THREAD#{phone_number_id}#{wa_id}"


def legacy_thread_pk(wa_id: str) -> str:
    """A thread key written before issue 14 (every number's messages together); scripts/migrate_table.py
    rewrites them."""
    return f"THREAD#{wa_id}"


def thread_sk(timestamp: str, wamid: str) -> str:
    return f"{timestamp}#{wamid}"


# Formatted once: every inbound message names its lead's shard.
_LEADS_SHARD_NAMES = tuple(f"{LEADS_PREFIX}{shard:02d}" for shard in range(LEAD_SHARDS))


def leads_pk(wa_id: str) -> str:
    """The listing partition of one lead: always the same for a lead, spread evenly over the leads."""
    return _LEADS_SHARD_NAMES[_shard(wa_id, LEAD_SHARDS)]


def leads_partitions() -> tuple[str, ...]:
    """Every listing partition: a page merges them newest first."""
    return _LEADS_SHARD_NAMES


def leads_sk(last_message_at: str, wa_id: str, phone_number_id: str) -> str:
    """Unique per conversation (a lead's two conversations may move in the same second): a page cursor
    that says "older than this" skips none."""
    return f"{last_message_at}#{wa_id}#{phone_number_id}"


def stats_hour(iso_timestamp: str) -> str:
    """Hourly bucket: `2026-11-25T21:45:53Z` -> `2026-11-25T21`."""
    return iso_timestamp[:13]


def stats_pk(hour: str, shard: int) -> str:
    """One counter item of an hour: `STATS#2026-11-25T21#07`, a partition of its own."""
    return f"STATS#{hour}#{shard:02d}"


def stats_shard(discriminator: str) -> int:
    """Spread one hour's counter writes over several partitions so no single one becomes hot."""
    return _shard(discriminator, STATS_SHARDS)


def template_sk(name: str, language: str) -> str:
    return f"{TEMPLATE_SK_PREFIX}{name}#{language}"


def template_name_prefix(name: str) -> str:
    """Every language of one template (names are [a-z0-9_]+, so no name is a prefix of another's key)."""
    return f"{TEMPLATE_SK_PREFIX}{name}#"


def media_pk(media_id: str) -> str:
    return f"MEDIA#{media_id}"
