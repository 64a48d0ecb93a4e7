"""Exports for auditors: CSV or JSON Lines, filtered, streamed, verifiable offline.

An export is a sequence of records, in this order:

1. ``header``: format ``smsreg-ledger-export/1``, when, the filters, whether the export
   is ``complete`` (no filter: the whole kept chain), the seq range, the head's seq;
2. ``key``: every public key of the ledger's signing ring (key id, Ed25519, base64);
3. ``checkpoint``: every checkpoint from just before the range to its end, with its
   signature;
4. ``entry`` for each entry the filters select (every field, its prev_hash and
   entry_hash) and ``link`` for each entry in the range they do not (seq, prev_hash,
   content_sha256, entry_hash: enough to recompute the chain, nothing of the content);
5. ``end``: how many entries and links were written.

What an export proves (``smsreg ledger verify --file``):

- complete export: the chain from its start (genesis, or the signed anchor a purge
  left) to the newest signed head is intact, nothing changed, removed or reordered, and
  every signed checkpoint matches; entries after that head are left out (a note says
  so), since nothing in the file could prove them;
- filtered export: the range runs from the first selected entry to the first
  checkpoint at or after the last one (entries after the newest signed head are left
  out, as above), so every selected entry is proven unchanged and in its place in the
  signed chain. It does NOT prove that the filter was applied
  honestly: an entry the exporter hid would appear as a link, whose content is not
  shown. Only a complete export (or the database) can show that.

The encodings are in export_format.py. Exports are read in keyset batches
(reading.py): memory stays flat whatever the size.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from app.core.context import Context
from app.core.db import Database
from app.core.tx import Tx
from app.ledger import canonical, signing
from app.ledger import repository as repo
from app.ledger.audit_schemas import ExportQuery
from app.ledger.export_format import (
    EXPORT_FORMAT,
    checkpoint_record,
    chunked,
    csv_lines,
    entry_record,
    jsonl_lines,
    link_record,
)
from app.ledger.reading import Reader, in_units
from app.models.ledger import LedgerCheckpoint, LedgerEntry


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


@dataclass(frozen=True)
class _Plan:
    head_seq: int
    span: tuple[int, int] | None
    checkpoints: list[LedgerCheckpoint]
    note: str | None


async def _plan(tx: Tx, *, query: ExportQuery, held_back: str | None = None) -> _Plan:
    """The range to export and the checkpoints that go with it, read in one unit."""
    head = await repo.head(tx)
    head_seq = 0 if head is None else head.seq
    note = None
    # Up to the newest signed head, never past it: an entry after it would be proven by
    # nothing in the file (one appended between the export's own checkpoint and this
    # read, or after the last scheduled one).
    first = await repo.first(tx)
    signed = await repo.latest_checkpoint(tx, kind="head")
    upto = 0 if signed is None or first is None or signed.seq < first.seq else signed.seq
    if head_seq > upto:
        start = upto + 1 if upto else (1 if first is None else first.seq)
        note = (
            f"entries from seq {start} on are under no signed checkpoint yet, so they are "
            "left out: the next export (which signs the head first) holds them"
            if held_back is None
            else f"entries from seq {start} on are left out: no checkpoint can be signed "
            f"over them ({held_back})"
        )
    if not query.selective:
        span = None if not upto or first is None else (first.seq, upto)
        head_seq = upto
    else:
        span = None
        if upto:
            span = await repo.matching_range(
                tx,
                since=query.since,
                until=query.until,
                recipient_key=query.recipient_key,
                legal_basis=query.basis,
                subject_id=query.subject,
                last_seq=upto,
            )
        if span is not None:
            cover = await repo.covering_checkpoint(tx, seq=span[1])
            span = (span[0], span[1] if cover is None else cover.seq)  # cover: at most upto
    found: list[LedgerCheckpoint] = []
    if span is not None:
        # The checkpoints from just before the range to its end (a complete export's end
        # is the newest signed head; one signed since this unit began is the next's).
        found = await repo.checkpoints_between(tx, first_seq=span[0] - 1, last_seq=span[1])
    return _Plan(head_seq=head_seq, span=span, checkpoints=found, note=note)


def _matcher(query: ExportQuery) -> Callable[[LedgerEntry], bool]:
    since, until, key = query.since, query.until, query.recipient_key
    basis, subject = query.basis, query.subject

    def matches(entry: LedgerEntry) -> bool:
        if since is not None and entry.recorded_at < since:
            return False
        if until is not None and entry.recorded_at >= until:
            return False
        if key is not None and entry.recipient_key != key:
            return False
        if basis is not None and entry.legal_basis != basis:
            return False
        return subject is None or subject in entry.subject_ids

    return matches


async def records(
    read: Reader, ctx: Context, query: ExportQuery, summary: Summary, held_back: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Every record of an export, in order (see the module's description); ``held_back``
    says why the head could not be signed, if it could not."""
    plan = await read(functools.partial(_plan, query=query, held_back=held_back))
    if plan.note is not None:
        summary.notes.append(plan.note)
    lo, hi = plan.span if plan.span is not None else (None, None)
    summary.first_seq, summary.last_seq = lo, hi
    summary.complete = not query.selective
    header: dict[str, Any] = {
        "type": "header",
        "format": EXPORT_FORMAT,
        "generated_at": canonical.timestamp(ctx.clock.now()),
        "filters": query.describe(),
        "complete": summary.complete,
        "first_seq": lo,
        "last_seq": hi,
        "head_seq": plan.head_seq,
    }
    if held_back is not None:
        # In the file too, not only in the answer's header: an auditor handed the file
        # (or saving it from a browser) learns that entries were left out, and why.
        header["held_back"] = (
            plan.note or f"no checkpoint can be signed over the head ({held_back})"
        )
    yield header
    for key_id, public in sorted(signing.ring(ctx.settings).public_raw().items()):
        yield {
            "type": "key",
            "key_id": key_id,
            "algorithm": signing.ALGORITHM,
            "public_key": public,
        }
    for checkpoint in plan.checkpoints:
        summary.checkpoints += 1
        yield checkpoint_record(checkpoint)
    if lo is not None and hi is not None:
        matches = _matcher(query)
        after = lo - 1
        while True:
            batch = await read(functools.partial(repo.entry_batch, after=after, last=hi))
            for entry in batch:
                if matches(entry):
                    summary.entries += 1
                    yield entry_record(entry)
                else:
                    summary.links += 1
                    yield link_record(entry)
            if len(batch) < repo.BATCH:
                break
            after = batch[-1].seq
    yield {"type": "end", "entries": summary.entries, "links": summary.links}


def render(
    read: Reader,
    ctx: Context,
    query: ExportQuery,
    summary: Summary | None = None,
    held_back: str | None = None,
) -> AsyncIterator[bytes]:
    """An export as chunks of bytes."""
    source = records(read, ctx, query, summary or Summary(), held_back)
    return chunked(jsonl_lines(source) if query.format == "jsonl" else csv_lines(source))


def stream(
    db: Database, ctx: Context, query: ExportQuery, *, held_back: str | None = None
) -> AsyncIterator[bytes]:
    """An export as chunks of bytes, each batch read in a short unit of its own (for a
    streamed answer, which is sent after the request's own unit has ended)."""
    return render(in_units(db), ctx, query, held_back=held_back)


async def write(
    db: Database, ctx: Context, query: ExportQuery, out: BinaryIO, *, held_back: str | None = None
) -> Summary:
    """Write an export to a binary file; returns what it holds."""
    summary = Summary()
    async for chunk in render(in_units(db), ctx, query, summary, held_back):
        out.write(chunk)
    return summary
