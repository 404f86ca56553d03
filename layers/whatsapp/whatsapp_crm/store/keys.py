"""Key layout of the single conversations table. docs/table-design.md explains each access pattern.

item              PK                     SK            GSI1PK              GSI1SK
lead              LEAD#<wa_id>           LEAD          LEADS               <last_message_at>#<wa_id>
message           MSG#<wamid>            MSG           THREAD#<wa_id>      <timestamp>#<wamid>
reply claim       MSG#<wamid>            REPLY         -                   -
hourly counters   STATS#<yyyy-mm-ddThh>  SHARD#<n>     -                   -
template          TEMPLATES              T#<name>#<lang> -                 -
template sync     TEMPLATES              SYNC          -                   -
media file        MEDIA#<media_id>       MEDIA         -                   -
"""

from __future__ import annotations

import zlib

LEAD_SK = "LEAD"
MESSAGE_SK = "MSG"
REPLY_CLAIM_SK = "REPLY"
LEADS_BY_ACTIVITY = "LEADS"
GSI1 = "GSI1"
STATS_SHARDS = 8
TTL_ATTRIBUTE = "expires_at"
MEDIA_SK = "MEDIA"
TEMPLATES_PK = "TEMPLATES"
TEMPLATE_SK_PREFIX = "T#"
TEMPLATE_SYNC_SK = "SYNC"


def lead_pk(wa_id: str) -> str:
    return f"LEAD#{wa_id}"


def message_pk(wamid: str) -> str:
    return f"MSG#{wamid}"


def thread_pk(wa_id: str) -> str:
    return f"THREAD#{wa_id}"


def thread_sk(timestamp: str, wamid: str) -> str:
    return f"{timestamp}#{wamid}"


def leads_sk(last_message_at: str, wa_id: str) -> str:
    return f"{last_message_at}#{wa_id}"


def stats_pk(iso_timestamp: str) -> str:
    """Hourly bucket: `2026-11-25T21:45:53Z` -> `STATS#2026-11-25T21`."""
    return f"STATS#{iso_timestamp[:13]}"


# Formatted once: every webhook event names a shard.
_SHARD_NAMES = tuple(f"SHARD#{shard}" for shard in range(STATS_SHARDS))


def stats_shard(discriminator: str) -> str:
    """Spread one hour's counter writes over several items so no single item becomes hot."""
    return _SHARD_NAMES[zlib.crc32(discriminator.encode("utf-8")) % STATS_SHARDS]


def template_sk(name: str, language: str) -> str:
    return f"{TEMPLATE_SK_PREFIX}{name}#{language}"


def template_name_prefix(name: str) -> str:
    """Every language of one template (names are [a-z0-9_]+, so no name is a prefix of another's key)."""
    return f"{TEMPLATE_SK_PREFIX}{name}#"


def media_pk(media_id: str) -> str:
    return f"MEDIA#{media_id}"
