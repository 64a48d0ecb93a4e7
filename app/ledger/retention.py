"""The ledger's retention purge: never an entry younger than three years.

An entry is kept at least ``SMSREG_LEDGER_RETENTION_DAYS`` (default 1,096, at least
1,095 by the settings) and never less than three calendar years, whichever is longer:
the cutoff is the earlier of the two. Only a prefix of the chain is purged (the oldest
entries, up to the first one still young), and never the newest entry, so the head
stays in the table.

Keeping the rest verifiable: before deleting, the purge signs an ``anchor`` checkpoint
at the last purged entry (its seq and hash). A verifier that finds the chain starting
at seq N+1 accepts it only if a validly signed anchor at seq N carries exactly the
prev_hash of entry N+1; without one, the missing start is reported as removed. A
database owner deleting young entries cannot forge that anchor without the signing key.

The database backs this up on its own: its triggers refuse the DELETE of any ledger
row recorded less than 1,095 days ago by the database's clock, whoever asks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.tx import Tx
from app.ledger import chain, checkpoints
from app.ledger import repository as repo
from app.ledger import requests_repository as requests

MIN_DAYS = 3 * 365


@dataclass(frozen=True)
class PurgeResult:
    """What a purge did (or, dry, would do)."""

    cutoff: dt.datetime
    purged: int
    through_seq: int | None
    anchor_id: int | None
    requests: int = 0  # disclosure requests deleted with their entries, or past the cutoff


def three_years_before(when: dt.datetime) -> dt.datetime:
    """The same instant three calendar years earlier (29 February -> 28 February)."""
    try:
        return when.replace(year=when.year - 3)
    except ValueError:
        return when.replace(year=when.year - 3, day=28)


def cutoff(ctx: Context) -> dt.datetime:
    """Entries recorded before this may be purged; never later than three years ago."""
    now = ctx.clock.now()
    days = max(ctx.settings.ledger_retention_days, MIN_DAYS)
    return min(now - dt.timedelta(days=days), three_years_before(now))


async def purge(tx: Tx, ctx: Context, *, actor: str, dry_run: bool = False) -> PurgeResult:
    """Delete the chain's oldest entries past retention, leaving a signed anchor."""
    await chain.lock(tx)
    limit = cutoff(ctx)
    head_seq, _ = await chain.head(tx)
    young = await repo.first_recorded_since(tx, when=limit)
    # Up to the first young entry, and never the head itself.
    through = min(young - 1 if young is not None else head_seq, head_seq - 1)
    first = await repo.first(tx)
    if first is None or through < first.seq:
        # No entry goes now: the requests of entries an earlier purge anchored may.
        anchor = await repo.latest_checkpoint(tx, kind=checkpoints.ANCHOR)
        anchored = None if anchor is None else anchor.seq
        gone = await requests.purge(tx, before=limit, anchored=anchored, dry_run=dry_run)
        return PurgeResult(cutoff=limit, purged=0, through_seq=None, anchor_id=None, requests=gone)
    if dry_run:
        count = await repo.count_through(tx, seq=through)
        # What the purge would delete with the entries through ``through``, and the rest.
        gone = await requests.purge(tx, before=limit, anchored=through, dry_run=True)
        return PurgeResult(
            cutoff=limit, purged=count, through_seq=through, anchor_id=None, requests=gone
        )
    anchor_hash = await repo.hash_at(tx, seq=through)
    if anchor_hash is None:  # the chain has a gap here: never sign over it
        raise RuntimeError(f"no ledger entry at seq {through} to anchor the purge to")
    now = ctx.clock.now()
    signed = await checkpoints.sign(
        tx, ctx, kind=checkpoints.ANCHOR, seq=through, head_hash=anchor_hash, now=now
    )
    count = await repo.purge_through(tx, seq=through)
    gone = await requests.purge(tx, before=limit, anchored=through)
    await record_event(
        tx,
        Tag.LEDGER_PURGED,
        actor=actor,
        at=now,
        subject=f"checkpoint:{signed.id}",
        details={
            "through_seq": through,
            "purged": count,
            "requests": gone,
            "cutoff": limit.isoformat(),
        },
    )
    return PurgeResult(
        cutoff=limit, purged=count, through_seq=through, anchor_id=signed.id, requests=gone
    )
