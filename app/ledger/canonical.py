"""The one byte form every hash and signature of the ledger is taken over.

Canonical JSON, version 1:

- RFC 8259 JSON, UTF-8, no whitespace (separators ``,`` and ``:``);
- object keys sorted by code point; non-ASCII characters written as themselves;
  ``"`` ``\\`` and control characters escaped (``\\n``, ``\\t``, ``\\u001f``, ...);
- integers only (no floats); ``null`` for a missing optional value;
- timestamps as strings: ISO 8601 in UTC with microseconds and an explicit offset,
  ``2026-11-22T09:30:00.000000+00:00``.

This is exactly ``json.dumps(value, sort_keys=True, separators=(",", ":"),
ensure_ascii=False).encode("utf-8")`` in Python, so a verifier needs nothing but a
standard library; orjson produces the same bytes faster (a test holds them equal).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import orjson

UTC = dt.UTC


def dumps(value: Any) -> bytes:
    """The canonical bytes of a JSON value."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def timestamp(value: dt.datetime) -> str:
    """The canonical text of an aware timestamp."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are refused; use an aware UTC time")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_timestamp(text: str) -> dt.datetime:
    """Read a canonical timestamp back (any ISO 8601 with an offset is accepted)."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("a ledger timestamp must carry its offset")
    return value.astimezone(UTC)


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256."""
    return hashlib.sha256(data).hexdigest()
