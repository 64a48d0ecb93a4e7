"""What the auditors' endpoints call (the coordinator wires them behind staff sessions).

Both read from a snapshot, so a long verification or export never holds SQLite's write
lock, and both leave an audit event saying who did it (in a short transaction of its
own: the read itself writes nothing).
"""

from __future__ import annotations

from collections.abc import Iterator

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Database, Tx
from app.ledger import export, verify


def _record(tx: Tx, ctx: Context, *, tag: Tag, actor: str, details: dict[str, object]) -> None:
    record_event(tx, tag, actor=actor, at=ctx.clock.now(), details=details)


def verify_ledger(db: Database, ctx: Context, *, actor: str) -> verify.Report:
    """Verify the database's chain; the report never holds a number (entries hold none)."""
    report = verify.verify_snapshot(db, ctx)
    db.call(
        _record,
        ctx,
        tag=Tag.LEDGER_VERIFIED,
        actor=actor,
        details={
            "ok": report.ok,
            "entries": report.entries,
            "problem": report.as_dict()["problem"],
        },
    )
    return report


def export_ledger(
    db: Database, ctx: Context, *, actor: str, filters: export.Filters, fmt: export.Format
) -> Iterator[bytes]:
    """A streamed export; bad filters are refused before anything is recorded or sent."""
    chunks = export.stream(db, ctx, filters, fmt)
    db.call(
        _record,
        ctx,
        tag=Tag.LEDGER_EXPORTED,
        actor=actor,
        details={"format": fmt, "filters": filters.validated().describe()},
    )
    return chunks
