"""Exports for auditors: CSV or JSON Lines, filtered, streamed, verifiable offline.

An export is a sequence of records, in this order:

1. ``header``: format ``smsreg-ledger-export/1``, when, the filters, whether the export
   is ``complete`` (no filter: the whole kept chain), the seq range, the head's seq;
2. ``key``: every public key of the ledger's signing ring (key id, Ed25519, base64);
3. ``checkpoint``: every checkpoint from just before the range to its end (for a
   complete export: every later one too), with its signature;
4. ``entry`` for each entry the filters select (every field, its prev_hash and
   entry_hash) and ``link`` for each entry in the range they do not (seq, prev_hash,
   content_sha256, entry_hash: enough to recompute the chain, nothing of the content);
5. ``end``: how many entries and links were written.

What an export proves (``smsreg ledger verify --file``):

- complete export: the chain from its start (genesis, or the signed anchor a purge
  left) to its end is intact, nothing changed, removed or reordered, and every signed
  checkpoint matches; entries after the newest checkpoint are pinned by nothing but
  the export itself;
- filtered export: the range runs from the first selected entry to the first
  checkpoint at or after the last one, so every selected entry is proven unchanged
  and in its place in the signed chain. It does NOT prove that the filter was applied
  honestly: an entry the exporter hid would appear as a link, whose content is not
  shown. Only a complete export (or the database) can show that.

JSON Lines has one JSON object per line. CSV has one row per record, a
``record_type`` column and fixed columns; lists are canonical JSON in their cell,
null is an empty cell, header and end records put their fields as JSON in ``meta``,
and text cells are protected against formula injection reversibly (cells.py).
Exports are built from a read snapshot in keyset batches: memory stays flat whatever
the size.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import orjson

from app.core.context import Context
from app.core.db import Database, Row, Tx
from app.core.errors import InvalidInput
from app.ledger import canonical, chain, signing
from app.ledger import repository as repo
from app.ledger.cells import cell
from app.ledger.workflow import LEGAL_BASES, recipient_key

EXPORT_FORMAT = "smsreg-ledger-export/1"
Format = Literal["jsonl", "csv"]
FORMATS = ("jsonl", "csv")
NULLABLE = frozenset({"request_reference", "consent"})
CSV_COLUMNS = (
    "record_type",
    "v",
    *chain.CONTENT_FIELDS,
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
_SUBJECT_ID = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Filters:
    """What an export selects; every filter is optional."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    recipient: str | None = None
    legal_basis: str | None = None
    subject_id: str | None = None

    def validated(self) -> Filters:
        """These filters, or InvalidInput naming the bad one."""
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InvalidInput.field(name, "must carry a UTC offset", location="query")
        if self.since and self.until and self.since >= self.until:
            raise InvalidInput.field("until", "must be after since", location="query")
        if self.legal_basis is not None and self.legal_basis not in LEGAL_BASES:
            raise InvalidInput.field(
                "basis", f"must be one of {list(LEGAL_BASES)}", location="query"
            )
        if self.recipient is not None and not 1 <= len(self.recipient.strip()) <= 200:
            raise InvalidInput.field("recipient", "must be 1 to 200 characters", location="query")
        if self.subject_id is not None and not _SUBJECT_ID.match(self.subject_id):
            raise InvalidInput.field("subject", "is not a subscriber id", location="query")
        return self

    @property
    def selective(self) -> bool:
        """Whether any filter is set."""
        return any(
            value is not None
            for value in (self.since, self.until, self.recipient, self.legal_basis, self.subject_id)
        )

    @property
    def recipient_key(self) -> str | None:
        """The recipient filter as entries store it."""
        return None if self.recipient is None else recipient_key(self.recipient)

    def describe(self) -> dict[str, Any]:
        """The filters as the header states them."""
        return {
            "since": None if self.since is None else canonical.timestamp(self.since),
            "until": None if self.until is None else canonical.timestamp(self.until),
            "recipient": self.recipient_key,
            "legal_basis": self.legal_basis,
            "subject_id": self.subject_id,
        }

    def matcher(self) -> Callable[[Row], bool]:
        """A test of one stored row against the filters."""
        since, until, key = self.since, self.until, self.recipient_key
        basis = self.legal_basis
        quoted = None if self.subject_id is None else f'"{self.subject_id}"'

        def matches(row: Row) -> bool:
            if since is not None and row["recorded_at"] < since:
                return False
            if until is not None and row["recorded_at"] >= until:
                return False
            if key is not None and row["recipient_key"] != key:
                return False
            if basis is not None and row["legal_basis"] != basis:
                return False
            # subject_ids is canonical JSON: a quoted id matches exactly that id.
            return quoted is None or quoted in row["subject_ids"]

        return matches


@dataclass
class Summary:
    """What an export wrote."""

    entries: int = 0
    links: int = 0
    checkpoints: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    complete: bool = False
    notes: list[str] = field(default_factory=list)


def entry_record(row: Row) -> dict[str, Any]:
    """An entry as exported: its content, prev_hash and entry_hash."""
    return {
        "type": "entry",
        **chain.content_of(row),
        "prev_hash": row["prev_hash"],
        "entry_hash": row["entry_hash"],
    }


def link_record(row: Row) -> dict[str, Any]:
    """An entry a filter left out: only what the chain needs."""
    return {
        "type": "link",
        "seq": int(row["seq"]),
        "prev_hash": row["prev_hash"],
        "content_sha256": chain.content_hash(chain.content_of(row)),
        "entry_hash": row["entry_hash"],
    }


def checkpoint_record(row: Row) -> dict[str, Any]:
    """A checkpoint as exported."""
    return {
        "type": "checkpoint",
        "id": int(row["id"]),
        "kind": row["kind"],
        "seq": int(row["seq"]),
        "head_hash": row["head_hash"],
        "created_at": canonical.timestamp(row["created_at"]),
        "key_id": row["key_id"],
        "signature": row["signature"],
    }


def records(tx: Tx, ctx: Context, filters: Filters, summary: Summary) -> Iterator[dict[str, Any]]:
    """Every record of an export, in order (see the module's description)."""
    filters = filters.validated()
    head = repo.head(tx)
    head_seq = 0 if head is None else int(head["seq"])
    complete = not filters.selective
    if complete:
        first = repo.first(tx)
        lo: int | None = None if first is None else int(first["seq"])
        hi: int | None = head_seq if first is not None else None
    else:
        lo, hi = repo.matching_range(
            tx,
            since=filters.since,
            until=filters.until,
            recipient_key=filters.recipient_key,
            legal_basis=filters.legal_basis,
            subject_id=filters.subject_id,
        )
    if lo is not None and hi is not None and not complete:
        cover = repo.covering_checkpoint(tx, seq=hi)
        if cover is None:
            summary.notes.append(
                f"no checkpoint covers seq {hi} yet: the newest selected entries are "
                "proven only by the export itself"
            )
        else:
            hi = int(cover["seq"])
    summary.first_seq, summary.last_seq, summary.complete = lo, hi, complete
    yield {
        "type": "header",
        "format": EXPORT_FORMAT,
        "generated_at": canonical.timestamp(ctx.clock.now()),
        "filters": filters.describe(),
        "complete": complete,
        "first_seq": lo,
        "last_seq": hi,
        "head_seq": head_seq,
    }
    for key_id, public in sorted(signing.ring(ctx.settings).public_raw().items()):
        yield {
            "type": "key",
            "key_id": key_id,
            "algorithm": signing.ALGORITHM,
            "public_key": public,
        }
    if lo is not None and hi is not None:
        # A complete export carries later checkpoints too, so a cut tail shows.
        for checkpoint in repo.checkpoints(tx, first_seq=lo - 1, last_seq=None if complete else hi):
            summary.checkpoints += 1
            yield checkpoint_record(checkpoint)
        matches = filters.matcher()
        for batch in repo.entry_batches(tx, first_seq=lo, last_seq=hi):
            for row in batch:
                if matches(row):
                    summary.entries += 1
                    yield entry_record(row)
                else:
                    summary.links += 1
                    yield link_record(row)
    yield {"type": "end", "entries": summary.entries, "links": summary.links}


def jsonl_lines(source: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """JSON Lines: one object per line."""
    for record in source:
        yield orjson.dumps(record) + b"\n"


def csv_row(record: dict[str, Any]) -> list[str]:
    """One record as a CSV row in :data:`CSV_COLUMNS` order."""
    out = dict.fromkeys(CSV_COLUMNS, "")
    kind = record["type"]
    out["record_type"] = kind
    if kind == "entry":
        for name in ("v", *chain.CONTENT_FIELDS):
            value = record[name]
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
        for name in ("kind", "seq", "head_hash", "created_at", "key_id", "signature"):
            out[name] = str(record[name])
    elif kind == "key":
        for name in ("key_id", "algorithm", "public_key"):
            out[name] = str(record[name])
    else:
        out["meta"] = orjson.dumps({k: v for k, v in record.items() if k != "type"}).decode()
    return list(out.values())


def csv_lines(source: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """CSV: a header row, then one row per record."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in source:
        writer.writerow(csv_row(record))
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


def _chunked(lines: Iterator[bytes]) -> Iterator[bytes]:
    pending: list[bytes] = []
    size = 0
    for line in lines:
        pending.append(line)
        size += len(line)
        if size >= _CHUNK:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def render(
    tx: Tx, ctx: Context, filters: Filters, fmt: Format, summary: Summary | None = None
) -> Iterator[bytes]:
    """An export as chunks of bytes, from an open (snapshot) transaction."""
    if fmt not in FORMATS:
        raise InvalidInput.field("format", "must be jsonl or csv", location="query")
    source = records(tx, ctx, filters, summary or Summary())
    return _chunked(jsonl_lines(source) if fmt == "jsonl" else csv_lines(source))


def stream(db: Database, ctx: Context, filters: Filters, fmt: Format) -> Iterator[bytes]:
    """An export as chunks of bytes, read from its own snapshot (for a streamed answer).

    Filters are checked before the first chunk, so bad input is refused up front.
    """
    filters.validated()
    if fmt not in FORMATS:
        raise InvalidInput.field("format", "must be jsonl or csv", location="query")

    def chunks() -> Iterator[bytes]:
        with repo.snapshot(db) as tx:
            yield from render(tx, ctx, filters, fmt)

    return chunks()


def write(db: Database, ctx: Context, filters: Filters, fmt: Format, out: BinaryIO) -> Summary:
    """Write an export to a binary file; returns what it holds."""
    filters.validated()
    summary = Summary()
    with repo.snapshot(db) as tx:
        for chunk in render(tx, ctx, filters, fmt, summary):
            out.write(chunk)
    return summary
