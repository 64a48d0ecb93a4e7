"""The export's records and their two encodings, JSON Lines and CSV.

JSON Lines has one JSON object per line. CSV has one row per record, a
``record_type`` column and fixed columns; lists are canonical JSON in their cell,
null is an empty cell, header and end records put their fields as JSON in ``meta``,
and text cells are protected against formula injection reversibly
(app/core/csvsafe.py). The verifier reads both back (app/ledger/verify/readers.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import orjson

from app.core.csvsafe import cell
from app.ledger import canonical, chain
from app.models.ledger import LedgerCheckpoint, LedgerEntry

EXPORT_FORMAT = "smsreg-ledger-export/1"
NULLABLE = frozenset({"request_reference", "consent", *chain.OPTIONAL_FIELDS})
CSV_COLUMNS = (
    "record_type",
    "v",
    *chain.CONTENT_FIELDS,
    *chain.OPTIONAL_FIELDS,
    "prev_hash",
    "content_sha256",
    "entry_hash",
    "checkpoint_id",
    "kind",
    "head_hash",
    "created_at",
    "key_id",
    "signature",
    "algorithm",
    "public_key",
    "meta",
)
_CHUNK = 64 * 1024


def entry_record(entry: LedgerEntry) -> dict[str, Any]:
    """An entry as exported: its content, prev_hash and entry_hash."""
    return {
        "type": "entry",
        **chain.content_of(entry),
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
    }


def link_record(entry: LedgerEntry) -> dict[str, Any]:
    """An entry a filter left out: only what the chain needs."""
    return {
        "type": "link",
        "seq": entry.seq,
        "prev_hash": entry.prev_hash,
        "content_sha256": chain.content_hash(chain.content_of(entry)),
        "entry_hash": entry.entry_hash,
    }


def checkpoint_record(checkpoint: LedgerCheckpoint) -> dict[str, Any]:
    """A checkpoint as exported."""
    return {
        "type": "checkpoint",
        "id": checkpoint.id,
        "kind": checkpoint.kind,
        "seq": checkpoint.seq,
        "head_hash": checkpoint.head_hash,
        "created_at": canonical.timestamp(checkpoint.created_at),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


async def jsonl_lines(source: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """JSON Lines: one object per line."""
    async for record in source:
        yield orjson.dumps(record) + b"\n"


def csv_row(record: dict[str, Any]) -> list[str]:
    """One record as a CSV row in :data:`CSV_COLUMNS` order."""
    out = dict.fromkeys(CSV_COLUMNS, "")
    kind = record["type"]
    out["record_type"] = kind
    if kind == "entry":
        for name in ("v", *chain.CONTENT_FIELDS, *chain.OPTIONAL_FIELDS):
            value = record.get(name)
            if value is None:
                continue
            if name in chain.JSON_FIELDS:
                out[name] = cell(canonical.dumps(value).decode())
            elif isinstance(value, str):
                out[name] = cell(value)
            else:
                out[name] = str(value)
        out["prev_hash"], out["entry_hash"] = record["prev_hash"], record["entry_hash"]
    elif kind == "link":
        for name in ("seq", "prev_hash", "content_sha256", "entry_hash"):
            out[name] = str(record[name])
    elif kind == "checkpoint":
        out["checkpoint_id"] = str(record["id"])
        for name in ("kind", "seq", "head_hash", "created_at"):
            out[name] = str(record[name])
        # Base64 starts with "+" about once in 64 signatures: a formula to a spreadsheet.
        for name in ("key_id", "signature"):
            out[name] = cell(str(record[name]))
    elif kind == "key":
        out["algorithm"] = str(record["algorithm"])
        for name in ("key_id", "public_key"):
            out[name] = cell(str(record[name]))
    else:
        out["meta"] = orjson.dumps({k: v for k, v in record.items() if k != "type"}).decode()
    return list(out.values())


async def csv_lines(source: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """CSV: a header row, then one row per record."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    async for record in source:
        writer.writerow(csv_row(record))
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


async def chunked(lines: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Lines gathered into chunks of about 64 KiB, for the network or a file."""
    pending: list[bytes] = []
    size = 0
    async for line in lines:
        pending.append(line)
        size += len(line)
        if size >= _CHUNK:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)
