"""The one JSON decoder of the service: the webhook reads Meta's bodies with it, and the responder reads
the queue records the webhook wrote with it, so both agree on what is parseable (one decoder, one limit).

pydantic's JSON parser (jiter) decodes in about 60% of json's time, and refuses everything json would
refuse or have to repair: invalid UTF-8, NaN/Infinity, lone surrogate escapes, integers over 4300 digits,
and nesting deeper than 200. So what it accepts json would decode to the same document, and everything
else takes json's path, which enforces the same depth limit: a document nested deeper than MAX_DEPTH is
refused whichever parser read it. A queue record is one level shallower than the body it came from, so
everything the webhook accepted the responder reads back.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic_core import from_json

# jiter's own limit (200 nested arrays/objects), applied to json's path too.
MAX_DEPTH = 200


class MalformedPayloadError(ValueError):
    """Not strict JSON the service can read. `reason` is safe to return to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reject_constant(name: str) -> Any:
    raise MalformedPayloadError(f"body is not strict JSON ({name} is not allowed)")


# Built once: json.loads with any keyword argument constructs a new decoder (and scanner) per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)

# A surrogate can only enter through a `\uD800`-`\uDFFF` escape (strict UTF-8 has none); Meta escapes
# every emoji as a surrogate pair, which json.loads joins, so only a lone half survives the parse.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)


def _children(node: dict[str, Any] | list[Any]) -> list[Any]:
    return list(node.values()) if isinstance(node, dict) else node


def deeper_than(document: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels (iterative: the document may be very deep)."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            pending.extend((child, depth + 1) for child in _children(node) if isinstance(child, dict | list))
    return False


def _replace_lone_surrogates(document: dict[str, Any]) -> None:
    """U+FFFD for every lone surrogate, in keys and values: DynamoDB and SQS only carry valid UTF-8."""
    pending: list[dict[str, Any] | list[Any]] = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for key in [key for key in node if _LONE_SURROGATE.search(key)]:
                node[_without_lone_surrogates(key)] = node.pop(key)
            slots: Any = node.items()
        else:
            slots = enumerate(node)
        for slot, value in list(slots):
            if isinstance(value, str):
                if _LONE_SURROGATE.search(value):
                    node[slot] = _without_lone_surrogates(value)
            elif isinstance(value, dict | list):
                pending.append(value)


def _decode_with_json(data: bytes | str) -> Any:
    """The reference decoder: Python's json, with its precise errors, and lone surrogates repaired."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        document = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise MalformedPayloadError("body is not valid UTF-8") from None
    except json.JSONDecodeError:
        raise MalformedPayloadError("body is not valid JSON") from None
    except MalformedPayloadError:
        raise  # NaN/Infinity, refused with its own reason
    except ValueError:
        # Python refuses integers of more than 4300 digits (CVE-2020-10735); no WhatsApp field has one.
        raise MalformedPayloadError("body holds a number too long to read") from None
    except RecursionError:
        raise MalformedPayloadError("body nests too deeply") from None
    if deeper_than(document, MAX_DEPTH):
        raise MalformedPayloadError(f"body nests deeper than {MAX_DEPTH} levels")
    if isinstance(document, dict) and _SURROGATE_ESCAPE.search(text):
        _replace_lone_surrogates(document)
    return document


def decode_json(data: bytes | str) -> Any:
    """Strict JSON (UTF-8, no NaN/Infinity, at most MAX_DEPTH levels), lone surrogates made U+FFFD.

    Raises MalformedPayloadError. A lone UTF-16 surrogate (half an emoji) becomes U+FFFD: it cannot be
    stored, and refusing the body would make Meta redeliver it for a week.
    """
    try:
        return from_json(data, allow_inf_nan=False, cache_strings="keys")
    except ValueError:
        return _decode_with_json(data)
