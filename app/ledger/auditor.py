"""The auditors' tools as routes call them: verify the chain, export it.

Each leaves an audit event saying who did it, in the caller's transaction. A
verification reads in that transaction too; an export is streamed after it has
committed, each batch read in a short unit of its own (app/ledger/reading.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Database
from app.core.tx import Tx
from app.ledger import checkpoints, export, verify, witness
from app.ledger import repository as repo
from app.ledger.audit_schemas import ExportQuery
from app.ledger.errors import UNSIGNABLE
from app.ledger.reading import in_tx
from app.models.ledger import LedgerCheckpoint, LedgerEntry

log = logging.getLogger("smsreg.ledger")


@dataclass(frozen=True)
class Recent:
    """The newest entries and checkpoints, newest first."""

    entries: list[LedgerEntry]
    checkpoints: list[LedgerCheckpoint]


async def recent(tx: Tx, ctx: Context, *, limit: int) -> Recent:
    """The ledger's newest entries and checkpoints (entries name subjects by id only)."""
    return Recent(
        entries=await repo.newest_entries(tx, limit=limit),
        checkpoints=await repo.newest_checkpoints(tx, limit=limit),
    )


async def verify_ledger(tx: Tx, ctx: Context, *, actor: str) -> verify.Report:
    """Verify the database's chain, held to the configured witness; the report never
    holds a number (entries hold none)."""
    try:
        pins = verify.Pins(witnessed=witness.configured_records(ctx.settings))
        unreadable = None
    except (OSError, witness.UnreadableWitness) as exc:
        pins, unreadable = verify.Pins(), f"the configured witness could not be read: {exc}"
    report = await verify.verify_database(in_tx(tx), ctx, pins)
    if unreadable is not None:
        report.notes.append(unreadable)
    await record_event(
        tx,
        Tag.LEDGER_VERIFIED,
        actor=actor,
        at=ctx.clock.now(),
        details={
            "ok": report.ok,
            "entries": report.entries,
            "problem": report.as_dict()["problem"],
        },
    )
    return report


def export_file(ctx: Context, query: ExportQuery) -> tuple[str, str]:
    """An export's media type and its Content-Disposition: the file named by when it was
    made and whether it is filtered (every download had one name, whatever it held)."""
    filtered = "-filtered" if any(query.describe().values()) else ""
    name = f"smsreg-ledger-{ctx.clock.now():%Y%m%dT%H%M%SZ}{filtered}.{query.format}"
    media_type = "application/x-ndjson" if query.format == "jsonl" else "text/csv; charset=utf-8"
    return media_type, f'attachment; filename="{name}"'


@dataclass(frozen=True)
class Export:
    """An export's chunks (read when iterated), and the headers its answer carries."""

    chunks: AsyncIterator[bytes]
    headers: dict[str, str]


# The answer's header when entries are left out because one of them cannot be signed:
# that entry's seq (a number: the rest of the reason names a request id an insider
# wrote, which is no header value).
HELD_BACK = "Ledger-Held-Back"


@dataclass(frozen=True)
class HeldBack:
    """Why an export ends before the head: the entry the head could not be signed over
    (one no release wrote, the first missing, the first long uncovered), and why."""

    seq: int
    reason: str


async def sign_head(tx: Tx, ctx: Context, *, actor: str) -> HeldBack | None:
    """Sign the head before an export, as every export does; when the head cannot be
    signed (an entry no release wrote, a cut, an entry long uncovered: see
    app.ledger.checkpoints), say so instead: the export then runs to the newest signed
    head, and what is after it is left out, as ever, rather than every export refused
    because of one entry kept for years."""
    try:
        await checkpoints.create(tx, ctx, actor=actor)
    except UNSIGNABLE as refused:
        log.error(
            "ledger export held back the tail", extra={"seq": refused.seq, "problem": refused.slug}
        )
        reason = f"{refused.detail}; run `smsreg ledger verify`"
        return HeldBack(seq=refused.seq or 0, reason=reason)
    return None


async def export_ledger(
    tx: Tx, ctx: Context, *, db: Database, actor: str, query: ExportQuery
) -> Export:
    """Sign the head, record who exports what, and return the export.

    The head is signed first, as ``smsreg ledger export`` does: every entry in the file
    is then under a signed checkpoint, so an entry changed in the file after the export
    (its hashes recomputed) no longer verifies. Nothing is signed when nothing is new.
    """
    held = await sign_head(tx, ctx, actor=actor)
    details: dict[str, object] = {"format": query.format, "filters": query.describe()}
    if held is not None:
        details["held_back"] = held.seq
    await record_event(tx, Tag.LEDGER_EXPORTED, actor=actor, at=ctx.clock.now(), details=details)
    return Export(
        chunks=export.stream(db, ctx, query, held_back=None if held is None else held.reason),
        headers={} if held is None else {HELD_BACK: str(held.seq)},
    )
