"""Every query on the ledger's own tables: entries, their subject index, checkpoints.

Entries, index rows and checkpoints are only inserted and read here; the one deletion,
the retention purge of the oldest entries, is :func:`purge_through`, and the database
refuses it for any entry younger than three years whoever asks (see the migration).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import sqlalchemy as sa

from app.core.tx import Tx
from app.models.ledger import LedgerCheckpoint, LedgerEntry, LedgerEntrySubject
from app.models.types import table

entries = table(LedgerEntry)
subjects = table(LedgerEntrySubject)
checkpoints = table(LedgerCheckpoint)
_e, _s, _c = entries.c, subjects.c, checkpoints.c
BATCH = 2000
# Beyond any sequence number, for an open-ended range.
NO_END = 2**62


class Link(NamedTuple):
    """Where an entry sits in the chain: its seq and one of its hashes."""

    seq: int
    hash: str


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(**row._mapping)


def _checkpoint(row: Any) -> LedgerCheckpoint:
    return LedgerCheckpoint(**row._mapping)


# -- entries ----------------------------------------------------------------------------


async def head(tx: Tx) -> Link | None:
    """The newest entry's seq and entry hash."""
    row = (
        await tx.execute(sa.select(_e.seq, _e.entry_hash).order_by(_e.seq.desc()).limit(1))
    ).one_or_none()
    return None if row is None else Link(row.seq, row.entry_hash)


async def first(tx: Tx) -> Link | None:
    """The oldest kept entry's seq and prev hash."""
    row = (
        await tx.execute(sa.select(_e.seq, _e.prev_hash).order_by(_e.seq).limit(1))
    ).one_or_none()
    return None if row is None else Link(row.seq, row.prev_hash)


async def insert_entry(tx: Tx, entry: LedgerEntry) -> None:
    """Insert an entry and its subject index rows."""
    await tx.execute(sa.insert(entries).values(entry.model_dump()))
    await tx.execute(
        sa.insert(subjects).values(
            [
                {"subject_id": subject, "seq": entry.seq, "recorded_at": entry.recorded_at}
                for subject in entry.subject_ids
            ]
        )
    )


async def entry_batch(tx: Tx, *, after: int, last: int, size: int = BATCH) -> list[LedgerEntry]:
    """Up to ``size`` entries with ``after < seq <= last``, in seq order (a keyset page)."""
    rows = await tx.execute(
        sa.select(entries).where(_e.seq > after, _e.seq <= last).order_by(_e.seq).limit(size)
    )
    return [_entry(row) for row in rows]


async def subject_index(tx: Tx, *, first_seq: int, last_seq: int) -> list[tuple[int, str]]:
    """The subject index rows (seq, subject id) of a seq range, in seq order."""
    rows = await tx.execute(
        sa.select(_s.seq, _s.subject_id)
        .where(_s.seq >= first_seq, _s.seq <= last_seq)
        .order_by(_s.seq, _s.subject_id)
    )
    return [(row.seq, row.subject_id) for row in rows]


async def seq_of_hash(tx: Tx, entry_hash: str) -> int | None:
    """Which stored entry has this hash."""
    found: int | None = await tx.scalar(sa.select(_e.seq).where(_e.entry_hash == entry_hash))
    return found


async def first_after(tx: Tx, *, seq: int) -> LedgerEntry | None:
    """The first entry after ``seq``."""
    batch = await entry_batch(tx, after=seq, last=NO_END, size=1)
    return batch[0] if batch else None


async def matching_range(
    tx: Tx,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    recipient_key: str | None,
    legal_basis: str | None,
    subject_id: str | None,
    last_seq: int | None = None,
) -> tuple[int, int] | None:
    """(lowest, highest) seq of the entries a filter selects, up to ``last_seq`` when
    given, or None if none does."""
    where: list[sa.ColumnElement[bool]] = []
    if last_seq is not None:
        where.append(_e.seq <= last_seq)
    if since is not None:
        where.append(_e.recorded_at >= since)
    if until is not None:
        where.append(_e.recorded_at < until)
    if recipient_key is not None:
        where.append(_e.recipient_key == recipient_key)
    if legal_basis is not None:
        where.append(_e.legal_basis == legal_basis)
    if subject_id is not None:
        where.append(
            sa.exists().where(_s.seq == _e.seq, _s.subject_id == subject_id),
        )
    row = (
        await tx.execute(
            sa.select(sa.func.min(_e.seq).label("lo"), sa.func.max(_e.seq).label("hi")).where(
                *where
            )
        )
    ).one()
    return None if row.lo is None else (int(row.lo), int(row.hi))


async def for_subject(tx: Tx, *, subject_id: str, after_seq: int, limit: int) -> list[LedgerEntry]:
    """The entries naming a subject, oldest first: found through the subject index, and
    each held to its own list of subjects (hashed with it), so a row added to the index
    by hand never shows a person a disclosure that does not name them."""
    found: list[LedgerEntry] = []
    while len(found) < limit:
        named = sa.select(_s.seq).where(_s.subject_id == subject_id, _s.seq > after_seq)
        rows = await tx.execute(
            sa.select(entries).where(_e.seq.in_(named)).order_by(_e.seq).limit(limit)
        )
        batch = [_entry(row) for row in rows]
        # Read on past the rows dropped: a page is never cut short by them.
        found += [entry for entry in batch if subject_id in entry.subject_ids]
        if len(batch) < limit:
            break
        after_seq = batch[-1].seq
    return found[:limit]


async def purge_through(tx: Tx, *, seq: int) -> int:
    """Delete the entries up to ``seq`` and their index rows; how many entries went."""
    count = await count_through(tx, seq=seq)
    await tx.execute(sa.delete(subjects).where(_s.seq <= seq))
    await tx.execute(sa.delete(entries).where(_e.seq <= seq))
    return count


async def count_through(tx: Tx, *, seq: int) -> int:
    """How many kept entries have a seq up to ``seq``."""
    return int(await tx.scalar(sa.select(sa.func.count()).where(_e.seq <= seq)))


async def first_recorded_since(tx: Tx, *, when: dt.datetime) -> int | None:
    """The lowest seq recorded at or after ``when``."""
    found: int | None = await tx.scalar(
        sa.select(sa.func.min(_e.seq)).where(_e.recorded_at >= when)
    )
    return found


async def hash_at(tx: Tx, *, seq: int) -> str | None:
    """The entry hash at ``seq``."""
    found: str | None = await tx.scalar(sa.select(_e.entry_hash).where(_e.seq == seq))
    return found


# -- checkpoints ------------------------------------------------------------------------


async def insert_checkpoint(tx: Tx, checkpoint: LedgerCheckpoint) -> int:
    """Insert a checkpoint; returns its id."""
    new_id = await tx.scalar(
        sa.insert(checkpoints).values(checkpoint.model_dump(exclude={"id"})).returning(_c.id)
    )
    return int(new_id)


async def latest_checkpoint(tx: Tx, *, kind: str) -> LedgerCheckpoint | None:
    """The newest checkpoint of a kind."""
    row = (
        await tx.execute(
            sa.select(checkpoints)
            .where(_c.kind == kind)
            .order_by(_c.seq.desc(), _c.id.desc())
            .limit(1)
        )
    ).one_or_none()
    return None if row is None else _checkpoint(row)


async def checkpoints_between(
    tx: Tx, *, first_seq: int = 0, last_seq: int = NO_END
) -> list[LedgerCheckpoint]:
    """Checkpoints in a seq range, in seq order (a few per day: small)."""
    rows = await tx.execute(
        sa.select(checkpoints)
        .where(_c.seq >= first_seq, _c.seq <= last_seq)
        .order_by(_c.seq, _c.id)
    )
    return [_checkpoint(row) for row in rows]


async def covering_checkpoint(tx: Tx, *, seq: int) -> LedgerCheckpoint | None:
    """The first head checkpoint at or after a seq."""
    row = (
        await tx.execute(
            sa.select(checkpoints)
            .where(_c.kind == "head", _c.seq >= seq)
            .order_by(_c.seq, _c.id)
            .limit(1)
        )
    ).one_or_none()
    return None if row is None else _checkpoint(row)


async def newest_entries(tx: Tx, *, limit: int) -> list[LedgerEntry]:
    """The newest entries, newest first."""
    rows = await tx.execute(sa.select(entries).order_by(_e.seq.desc()).limit(limit))
    return [_entry(row) for row in rows]


async def newest_checkpoints(tx: Tx, *, limit: int) -> list[LedgerCheckpoint]:
    """The newest checkpoints, newest first."""
    rows = await tx.execute(
        sa.select(checkpoints).order_by(_c.seq.desc(), _c.id.desc()).limit(limit)
    )
    return [_checkpoint(row) for row in rows]
