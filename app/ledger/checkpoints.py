"""Signed checkpoints: the chain's head (seq, hash, time), signed with Ed25519.

Made on demand (``smsreg ledger checkpoint``, :func:`create`) and on a schedule (an
asyncio task in the app's lifespan, ``SMSREG_LEDGER_CHECKPOINT_INTERVAL_SECONDS``,
default one hour), skipped when nothing was appended since the last one. A checkpoint
bounds what a database owner could rewrite unseen: every entry up to it is pinned by a
signature the database does not hold the key to. Entries after the newest checkpoint
are only as safe as the database until the next one. Each checkpoint (and each purge
anchor) also goes to the configured witness (witness.py), so deleting the newest
entries together with their checkpoints is found too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Database
from app.core.tx import Tx
from app.ledger import chain, signing, witness
from app.ledger import repository as repo
from app.ledger import requests_repository as requests
from app.ledger.errors import (
    UNSIGNABLE,
    EmptyLedger,
    LedgerCut,
    LedgerRewritten,
    LedgerUncovered,
    UnbackedEntry,
    WitnessUnavailable,
)
from app.ledger.export_format import checkpoint_record
from app.models.ledger import LedgerCheckpoint, LedgerEntry

log = logging.getLogger("smsreg.ledger")
HEAD = "head"
ANCHOR = "anchor"


async def sign(
    tx: Tx, ctx: Context, *, kind: str, seq: int, head_hash: str, now: dt.datetime
) -> LedgerCheckpoint:
    """Sign and store a checkpoint of ``kind`` at ``seq``."""
    keys = signing.ring(ctx.settings)
    message = signing.checkpoint_message(
        kind=kind, seq=seq, head_hash=head_hash, created_at=now, key_id=keys.active_id
    )
    checkpoint = LedgerCheckpoint(
        kind=kind,
        seq=seq,
        head_hash=head_hash,
        created_at=now,
        key_id=keys.active_id,
        signature=keys.sign(message),
    )
    checkpoint.id = await repo.insert_checkpoint(tx, checkpoint)
    found = witness.configured(ctx.settings)
    if found is not None:
        # Before the commit: a witness that cannot keep it fails the checkpoint, loudly.
        # Written but then rolled back is harmless: it names entries already committed.
        try:
            await asyncio.to_thread(found.record, checkpoint_record(checkpoint))
        except OSError as exc:
            raise WitnessUnavailable(
                "the witness (SMSREG_LEDGER_WITNESS) could not be written "
                f"({exc.strerror or type(exc).__name__}): no checkpoint was made"
            ) from exc
    return checkpoint


async def create(
    tx: Tx,
    ctx: Context,
    *,
    actor: str = "system",
    force: bool = False,
    sign_uncovered: bool = False,
) -> LedgerCheckpoint | None:
    """Checkpoint the head; None when the ledger is empty or nothing is new (unless forced).

    A signature vouches for every entry up to the head, and so does the witness's copy
    of it: never over a ledger that is known cut or forged (:func:`_refuse_unsignable`).
    ``sign_uncovered`` is an operator's word that the entries a scheduled checkpoint
    should long have covered were checked (after an outage of the schedule, say)."""
    await chain.lock(tx)
    seq, head_hash = await chain.head(tx)
    if seq == 0:
        return None
    latest = await repo.latest_checkpoint(tx, kind=HEAD)
    # Before "nothing new": a tail cut back to the newest checkpoint is new too, and an
    # export (which signs the head first) must say so rather than look complete.
    await _refuse_unsignable(tx, ctx, seq=seq, latest=latest, sign_uncovered=sign_uncovered)
    if latest is not None and latest.seq == seq and not force:
        return None
    now = ctx.clock.now()
    checkpoint = await sign(tx, ctx, kind=HEAD, seq=seq, head_hash=head_hash, now=now)
    await record_event(
        tx,
        Tag.LEDGER_CHECKPOINTED,
        actor=actor,
        at=now,
        subject=f"checkpoint:{checkpoint.id}",
        details={"seq": seq, "head_hash": head_hash, "key_id": checkpoint.key_id},
    )
    return checkpoint


async def _hold_to_witness(tx: Tx, ctx: Context, *, seq: int) -> None:
    """Refuse to sign a head the configured witness contradicts: its newest checkpoint
    beyond the head (a tail cut with its checkpoints deleted from the database), or over
    an entry that now holds another hash (a rewrite, hashes recomputed). The signer put
    its signature, in the database and in the witness, on a history its own witness
    already said was not the one it had signed."""
    try:
        records = await asyncio.to_thread(witness.configured_records, ctx.settings)
    except (OSError, witness.UnreadableWitness) as exc:
        raise WitnessUnavailable(
            f"the witness (SMSREG_LEDGER_WITNESS) could not be read ({exc}): no checkpoint was made"
        ) from exc
    newest = max(records, key=lambda record: record["seq"], default=None)
    if newest is None:
        return
    if newest["seq"] > seq:
        cut = LedgerCut(
            f"{newest['label']} covers seq {newest['seq']}, and the ledger ends at seq "
            f"{seq}: entries were removed; no checkpoint was made"
        )
        cut.seq = seq + 1
        raise cut
    held = await repo.hash_at(tx, seq=newest["seq"])
    if held is not None and held != newest.get("head_hash"):  # None: purged since
        rewritten = LedgerRewritten(
            f"entry {newest['seq']} holds another hash than {newest['label']}: entries up to "
            "it were rewritten; no checkpoint was made"
        )
        rewritten.seq = newest["seq"]
        raise rewritten


async def _refuse_unsignable(
    tx: Tx, ctx: Context, *, seq: int, latest: LedgerCheckpoint | None, sign_uncovered: bool
) -> None:
    """Refuse to sign a head the database verifier would find broken: a signature would
    make a cut or a rewrite verify in every export from then on.

    - cut: the head is below the newest checkpoint (or the newest witnessed one), or a
      released request's entry is missing or records another request (LedgerCut);
    - rewritten: the entry at the newest witnessed checkpoint holds another hash
      (LedgerRewritten);
    - forged: an entry after the newest checkpoint that no release wrote (UnbackedEntry);
    - uncovered: with checkpoints on a schedule, an entry that two intervals should have
      covered and none does, as when its checkpoint was deleted with the entry rewritten
      (LedgerUncovered), unless ``sign_uncovered``.
    """
    covered = 0 if latest is None else latest.seq
    anchor = await repo.latest_checkpoint(tx, kind=ANCHOR)
    after = max(covered, 0 if anchor is None else anchor.seq)
    if seq < covered:
        cut = LedgerCut(
            f"the newest checkpoint covers seq {covered}, and the ledger ends at seq {seq}: "
            "entries were removed; no checkpoint was made"
        )
        cut.seq = seq + 1
        raise cut
    await _hold_to_witness(tx, ctx, seq=seq)
    # Every released request, those behind a purge anchor too: a purge takes the requests
    # of the entries it removes, so one left there names entries removed otherwise.
    unrecorded = await requests.first_unrecorded_release(tx, after_seq=0)
    if unrecorded is not None:
        cut = LedgerCut(
            f"disclosure request {unrecorded.request_id} was released as entry "
            f"{unrecorded.ledger_seq}, which "
            + ("is missing" if unrecorded.entry_request_id is None else "records another")
            + ": no checkpoint was made"
        )
        cut.seq = unrecorded.ledger_seq
        raise cut
    unbacked = await requests.first_unbacked_entry(tx, after_seq=covered)
    if unbacked is not None:
        refused = UnbackedEntry(
            f"entry {unbacked.seq} records disclosure request {unbacked.request_id}, which "
            "was not released as it: no checkpoint was made"
        )
        refused.seq = unbacked.seq
        raise refused
    overdue = None if sign_uncovered else await overdue_entry(tx, ctx, covered_to=after)
    if overdue is not None:
        uncovered = LedgerUncovered(
            f"entry {overdue.seq}, recorded at {overdue.recorded_at:%Y-%m-%d %H:%M:%S} UTC, "
            "is covered by no checkpoint while checkpoints are made every "
            f"{dt.timedelta(seconds=ctx.settings.ledger_checkpoint_interval_seconds)}: "
            "no checkpoint was made"
        )
        uncovered.seq = overdue.seq
        raise uncovered


def uncovered_allowance(ctx: Context) -> dt.timedelta | None:
    """How long an entry may go without a signed checkpoint while checkpoints are made on
    a schedule (two intervals and five minutes); None when they are not."""
    interval = ctx.settings.ledger_checkpoint_interval_seconds
    return None if interval <= 0 else dt.timedelta(seconds=2 * interval + 300)


async def overdue_entry(tx: Tx, ctx: Context, *, covered_to: int) -> LedgerEntry | None:
    """The first entry after ``covered_to`` if it is older than the schedule allows
    (:func:`uncovered_allowance`): its checkpoint may have been removed."""
    allowed = uncovered_allowance(ctx)
    if allowed is None:
        return None
    entry = await repo.first_after(tx, seq=covered_to)
    if entry is None or ctx.clock.now() - entry.recorded_at <= allowed:
        return None
    return entry


async def create_now(
    tx: Tx, ctx: Context, *, actor: str, sign_uncovered: bool = False
) -> LedgerCheckpoint:
    """Checkpoint the head now, even if nothing is new; EmptyLedger if there is no entry."""
    made = await create(tx, ctx, actor=actor, force=True, sign_uncovered=sign_uncovered)
    if made is None:
        raise EmptyLedger()
    return made


async def _first_wait(db: Database, ctx: Context) -> float:
    """How long a process just started waits for its first checkpoint: until an interval
    after the newest one, not a whole interval from its start. Restarts (a deploy, a
    crash loop) would otherwise put off the schedule again and again, until an entry went
    unsigned longer than checkpoints allow and every checkpoint was refused as if one had
    been deleted (:func:`overdue_entry`)."""
    interval = ctx.settings.ledger_checkpoint_interval_seconds
    try:
        async with db.transaction() as tx:
            latest = await repo.latest_checkpoint(tx, kind=HEAD)
    except Exception:  # noqa: BLE001 -- a busy database: the usual interval
        return interval
    if latest is None:
        return interval
    due = latest.created_at + dt.timedelta(seconds=interval) - ctx.clock.now()
    return min(interval, max(1.0, due.total_seconds()))


async def run_schedule(db: Database, ctx: Context) -> None:
    """Checkpoint every interval while the app runs (a task in the lifespan)."""
    interval = ctx.settings.ledger_checkpoint_interval_seconds
    if ctx.settings.ledger_witness is None:
        log.warning(
            "ledger checkpoints have no witness (SMSREG_LEDGER_WITNESS): a tail cut together "
            "with its checkpoints is found only by the released requests"
        )
    wait = await _first_wait(db, ctx)
    while True:
        await asyncio.sleep(wait)
        wait = interval
        try:
            async with db.transaction() as tx:
                made = await create(tx, ctx, actor="scheduler")
        except UNSIGNABLE as refused:
            log.error("ledger checkpoint refused: %s", refused.detail)
            continue
        except Exception:  # a busy database only delays the next checkpoint
            log.warning("ledger checkpoint skipped")
            continue
        if made is not None:
            log.info("ledger checkpoint", extra={"seq": made.seq, "key_id": made.key_id})
