"""Retention: delete what the schedule says is no longer needed, in short batches.

The schedule is each area's own (its ``retention.py``: what is deleted, after how long,
through which index); this module runs the steps in turn and records one audit event
``retention:purged`` with the counts. Every period is a setting.

Each batch is its own short transaction, so the service keeps running and SQLite's
write lock is never held for long. On SQLite the purge also leaves the lock to the
service after each batch for at least as long as the batch held it: the database has one
write lock, and a server waiting for it retries only every few tens of milliseconds, so
batches back to back would leave it almost none (starts fell to one a second during a
purge at a million subscribers). That time first goes to copying the batch out of the
write-ahead log into the database file (a passive checkpoint, which needs no lock), then
to a rest for what is left; the purge's own commits never copy (SQLite's automatic
checkpoint, run inside the commit, counted as time the lock was held and was rested
again).
Run it from cron (``smsreg purge``); it is idempotent, and an interrupted run simply
continues on the next.

The disclosure ledger is purged on its own schedule and with its own checks (a signed
anchor, three years at least) by ``smsreg ledger purge``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Database
from app.core.retention import Cursor, PurgeBatch, PurgeStep
from app.delivery import retention as delivery
from app.registry import retention as registry
from app.staff import retention as staff
from app.subject import retention as subject
from app.verification import retention as verification

BATCH = 1000
MIN_REST_SECONDS = 0.005  # on SQLite, between batches
ACTOR = "system:retention"
SCHEDULE: tuple[PurgeStep, ...] = (
    *verification.STEPS,
    *delivery.STEPS,
    *registry.STEPS,
    *staff.STEPS,
    *subject.STEPS,
)
DORMANT = "dormant_subscribers"


@dataclass
class PurgeReport:
    """Rows deleted per kind."""

    deleted: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int) -> None:
        """Count ``n`` more rows of ``kind``."""
        self.deleted[kind] = self.deleted.get(kind, 0) + n


class _RollBack(Exception):
    """Ends a dry run's batch: its transaction rolls back."""


async def _batch(
    db: Database,
    step: PurgeStep,
    *,
    before: dt.datetime,
    after: Cursor | None,
    limit: int,
    dry_run: bool,
) -> PurgeBatch:
    done: PurgeBatch | None = None
    try:
        async with db.transaction() as tx:
            done = await step.run(tx, before=before, after=after, limit=limit)
            if dry_run:
                raise _RollBack()
    except _RollBack:
        pass
    assert done is not None  # noqa: S101 (set before the only way here)
    return done


async def _rest(db: Database, held: float) -> None:
    # On SQLite the write lock's other half belongs to the service. The batch's
    # write-ahead log is copied into the database file first (its fsync takes most of a
    # batch's commit at a million subscribers): the service holds the write lock
    # meanwhile if it wants it. Then a rest for what is left of the time the batch held
    # the lock.
    if not db.sqlite:
        return
    began = time.monotonic()
    await db.checkpoint(truncate=False)
    copied = time.monotonic() - began
    await asyncio.sleep(max(held - copied, MIN_REST_SECONDS))


def cutoffs(ctx: Context, now: dt.datetime) -> dict[str, dt.datetime]:
    """The instant before which each kind of row is deleted."""
    return {step.kind: now - step.keep(ctx.settings) for step in SCHEDULE}


async def purge(
    db: Database,
    ctx: Context,
    *,
    batch: int = BATCH,
    progress: Callable[[str, int], None] | None = None,
    dry_run: bool = False,
) -> PurgeReport:
    """Apply the whole schedule once; each batch commits on its own (with ``dry_run``
    each is rolled back instead: the report says what would go). Dormant subscribers are
    erased only when ``dormant_erasure`` is on."""
    now = ctx.clock.now()
    report = PurgeReport()
    async with db.manual_checkpoints():  # each batch is copied in its rest instead
        await _apply(
            db, ctx, now=now, report=report, batch=batch, progress=progress, dry_run=dry_run
        )
    if dry_run:
        return report
    async with db.transaction() as tx:
        await record_event(
            tx, Tag.RETENTION_PURGED, actor=ACTOR, at=now, details=dict(report.deleted)
        )
    return report


async def _apply(
    db: Database,
    ctx: Context,
    *,
    now: dt.datetime,
    report: PurgeReport,
    batch: int,
    progress: Callable[[str, int], None] | None,
    dry_run: bool,
) -> None:
    for step in SCHEDULE:
        if not step.runs_on(db.dialect):
            continue
        before = now - step.keep(ctx.settings)
        cursor: Cursor | None = None
        while True:
            began = time.monotonic()
            done = await _batch(db, step, before=before, after=cursor, limit=batch, dry_run=dry_run)
            await _rest(db, time.monotonic() - began)
            report.add(step.kind, done.deleted)
            if progress is not None and done.deleted:
                progress(step.kind, done.deleted)
            if done.selected < batch:
                break
            cursor = done.cursor
    if ctx.settings.dormant_erasure:
        rest = functools.partial(_rest, db)
        erased = await subject.erase_dormant(db, ctx, batch=batch, dry_run=dry_run, rest=rest)
        report.add(DORMANT, erased)
