"""Rotation of the phone-encryption and blind-index keys: rewrite every row in batches.

New writes already use the active key id of each ring. A rotation moves the rows still
under an older key: each batch is its own short transaction, each row a guarded
compare-and-set (app/keys/repository/), so it runs beside the live service, and an
interrupted run loses at most its open batch. There is no progress table: a row not on
the active key id is exactly what remains, so running it again resumes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import phonenumbers
import sqlalchemy as sa

from app.core.context import Context
from app.core.crypto import CryptoError, subscriber_aad, verification_aad
from app.core.db import Database
from app.core.tx import Tx
from app.keys import repository as repo
from app.keys.repository import Block, Sealed

# The families whose rows are rewritten, and their tables in the order they are done.
# Pumping blocks come first for the index key: until re-indexed, a block in force is not
# matched by sends indexed under the new key.
TABLES = {
    "phone": ("subscribers", "verifications"),
    "index": ("pumping_blocks", "subscribers", "verifications"),
}
# PostgreSQL may pick a batch as the victim of a deadlock with a service transaction
# (both lock verification rows, in different orders), or refuse a subscriber's new index
# that a concurrent transaction took between the check and the write: the batch is
# simply run again (and the taken index is then reported as failed).
RETRIED_SQLSTATES = frozenset({"40P01", "40001", "23505"})
BATCH_ATTEMPTS = 3

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Batch:
    """What one batch (one transaction) did."""

    table: str
    seen: int = 0
    rewritten: int = 0
    # Changed by the running service between read and write: written under the active
    # key by that writer already, so nothing is left to do for them.
    raced: int = 0
    # Row ids that could not be rewritten: a number that does not decrypt, or (index)
    # a second subscriber for a number another subscriber already holds.
    failed: list[str] = field(default_factory=list)
    last_id: str = ""


@dataclass
class TableReport:
    """A table's totals over a run."""

    table: str
    before: int
    rewritten: int = 0
    raced: int = 0
    failed: list[str] = field(default_factory=list)
    after: int = 0


class Rewrite(Protocol):
    """Rewrite one row under the active key: True done, False raced, None failed."""

    def __call__(self, tx: Tx, ctx: Context, *, row: Any) -> Awaitable[bool | None]: ...


def retried(exc: BaseException) -> bool:
    """Whether a batch that raised ``exc`` is run again (see RETRIED_SQLSTATES)."""
    sqlstate = getattr(exc.orig, "sqlstate", None) if isinstance(exc, sa.exc.DBAPIError) else None
    return sqlstate in RETRIED_SQLSTATES


async def remaining(tx: Tx, ctx: Context, *, family: str) -> dict[str, int]:
    """Rows per table still under an older key of ``family`` (phone or index)."""
    if family == "phone":
        active = ctx.keys.phone.active_id
        return {
            t: await repo.phone_remaining(tx, table=t, active_id=active) for t in TABLES[family]
        }
    active = ctx.keys.index.active_id
    return {t: await repo.index_remaining(tx, table=t, active_id=active) for t in TABLES[family]}


async def run_batch(
    tx: Tx, ctx: Context, *, family: str, table: str, after: str, limit: int
) -> Batch:
    """Rewrite up to ``limit`` rows of ``table`` after id ``after``, in one transaction."""
    batch = Batch(table=table, last_id=after)
    rows: Sequence[Sealed | Block]
    rewrite: Rewrite
    if family == "phone":
        active = ctx.keys.phone.active_id
        rows = await repo.phone_batch(tx, table=table, active_id=active, after=after, limit=limit)
        rewrite = _REPHONE[table]
    elif table == "pumping_blocks":
        active = ctx.keys.index.active_id
        rows = await repo.block_batch(tx, active_id=active, after=after, limit=limit)
        rewrite = _REINDEX[table]
    else:
        active = ctx.keys.index.active_id
        rows = await repo.index_batch(tx, table=table, active_id=active, after=after, limit=limit)
        rewrite = _REINDEX[table]
    for row in rows:
        batch.seen += 1
        batch.last_id = row.id
        try:
            done = await rewrite(tx, ctx, row=row)
        except CryptoError:
            batch.failed.append(row.id)
            continue
        if done is None:
            batch.failed.append(row.id)
        elif done:
            batch.rewritten += 1
        else:
            batch.raced += 1
    return batch


async def _rephone_verification(tx: Tx, ctx: Context, *, row: Sealed) -> bool:
    aad = verification_aad(row.id)
    e164 = ctx.keys.decrypt(row.phone_ciphertext, key_id=row.phone_key_id, context=aad)
    key_id, ciphertext = ctx.keys.encrypt(e164, context=aad)
    return await repo.rewrite_verification_phone(tx, row=row, ciphertext=ciphertext, key_id=key_id)


async def _rephone_subscriber(tx: Tx, ctx: Context, *, row: Sealed) -> bool:
    aad = subscriber_aad(row.phone_index)
    e164 = ctx.keys.decrypt(row.phone_ciphertext, key_id=row.phone_key_id, context=aad)
    key_id, ciphertext = ctx.keys.encrypt(e164, context=aad)
    return await repo.rewrite_subscriber(
        tx, row=row, phone_index=row.phone_index, ciphertext=ciphertext, key_id=key_id
    )


async def _reindex_subscriber(tx: Tx, ctx: Context, *, row: Sealed) -> bool | None:
    e164 = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=subscriber_aad(row.phone_index)
    )
    phone_index = ctx.keys.blind_index(e164, kind="number")
    holder = await repo.subscriber_holding(tx, phone_index=phone_index)
    if holder is not None and holder != row.id:
        # Two subscribers for one number: never merged blindly (consents, redemptions and
        # the ledger name them). Left on the old index and reported by id.
        return None
    # The ciphertext is bound to the index, so it is sealed anew (under the active key).
    key_id, ciphertext = ctx.keys.encrypt(e164, context=subscriber_aad(phone_index))
    moved = await repo.rewrite_subscriber(
        tx, row=row, phone_index=phone_index, ciphertext=ciphertext, key_id=key_id
    )
    if not moved and await repo.subscriber_holding(tx, phone_index=phone_index) not in (
        None,
        row.id,
    ):
        return None  # the index was taken after the check above: a second subscriber
    return moved


async def _reindex_verification(tx: Tx, ctx: Context, *, row: Sealed) -> bool:
    e164 = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=verification_aad(row.id)
    )
    prefix_index = None
    if row.prefix_index is not None:
        prefix = prefix_of(e164, ctx.settings.prefix_digits)
        prefix_index = ctx.keys.blind_index(prefix, kind="prefix")
    return await repo.reindex_verification(
        tx,
        row=row,
        phone_index=ctx.keys.blind_index(e164, kind="number"),
        prefix_index=prefix_index,
    )


async def _reindex_block(tx: Tx, ctx: Context, *, row: Block) -> bool:
    # The block keeps its prefix in clear (a range of numbers, no one's number).
    prefix_index = ctx.keys.blind_index(row.prefix, kind="prefix")
    return await repo.reindex_block(tx, row=row, prefix_index=prefix_index)


def prefix_of(e164: str, digits: int) -> str:
    """A number's prefix as the send limits key it (``Phone.prefix``)."""
    country = str(phonenumbers.parse(e164, None).country_code)
    return f"+{country}{e164[len(country) + 1 :][:digits]}"


_REPHONE: dict[str, Rewrite] = {
    "verifications": _rephone_verification,
    "subscribers": _rephone_subscriber,
}
_REINDEX: dict[str, Rewrite] = {
    "pumping_blocks": _reindex_block,
    "subscribers": _reindex_subscriber,
    "verifications": _reindex_verification,
}


async def rotate(
    db: Database,
    ctx: Context,
    *,
    family: str,
    batch_size: int,
    pause: float,
    on_batch: Callable[[Batch], None] | None = None,
    sleep: Sleep = asyncio.sleep,
) -> list[TableReport]:
    """Rewrite every row of ``family`` not under its active key, batch by batch.

    ``on_batch`` is called after each committed batch (the progress bar; tests stop a
    run there). The pause between batches lets the service's writers in.
    """
    async with db.transaction() as tx:
        before = await remaining(tx, ctx, family=family)
    reports = [TableReport(table=table, before=count) for table, count in before.items()]
    for report in reports:
        after = ""
        while True:
            batch = await _with_retries(
                db, ctx, family=family, table=report.table, after=after, limit=batch_size,
                sleep=sleep,
            )  # fmt: skip
            report.rewritten += batch.rewritten
            report.raced += batch.raced
            report.failed += batch.failed
            after = batch.last_id
            if on_batch is not None:
                on_batch(batch)
            if batch.seen < batch_size:
                break
            if pause:
                await sleep(pause)
    async with db.transaction() as tx:
        left = await remaining(tx, ctx, family=family)
    for report in reports:
        report.after = left[report.table]
    return reports


async def _with_retries(
    db: Database, ctx: Context, *, family: str, table: str, after: str, limit: int, sleep: Sleep
) -> Batch:
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            async with db.transaction() as tx:
                return await run_batch(
                    tx, ctx, family=family, table=table, after=after, limit=limit
                )
        except sa.exc.DBAPIError as exc:
            if attempt == BATCH_ATTEMPTS or not retried(exc):
                raise
        await sleep(0.05 * attempt)
    raise AssertionError("unreachable")
