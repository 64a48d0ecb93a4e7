"""Retention: what a purge step is, and the keyed batch every step deletes by.

Each area declares the purge steps of its own tables in its ``retention.py``; the
``smsreg purge`` command (app/retention) runs them all, batch by batch, each batch in
its own short transaction.

A batch never rescans what an earlier batch went past: a step walks one index in order
from a cursor (the key of the last row it selected), selects the keys of up to
``limit`` due rows after it, and deletes exactly the due rows up to the last key. So
each batch costs about its own rows, however far the run has got and however many
dead index entries the batches before it left behind (PostgreSQL keeps them until
VACUUM).
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa

from app.core.config import Settings
from app.core.db import Tx

# The key of the last row a batch selected: where the next batch of the step starts.
Cursor = tuple[Any, ...]
Compare = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class PurgeBatch:
    """What one batch of a step did."""

    # Due rows found (fewer than the limit: the step is done for this run).
    selected: int
    deleted: int
    cursor: Cursor | None


class BatchFn(Protocol):
    """Delete one batch of a step's due rows (recorded before ``before``) after ``after``."""

    def __call__(
        self, tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
    ) -> Awaitable[PurgeBatch]: ...


class PurgeStep(NamedTuple):
    """One kind of row the schedule deletes: its name in the report, how long it is kept,
    and how one batch is deleted."""

    kind: str
    keep: Callable[[Settings], dt.timedelta]
    run: BatchFn


def _lexical(
    key: Sequence[sa.ColumnElement[Any]], values: Cursor, *, strict: Compare, last: Compare
) -> sa.ColumnElement[bool]:
    # (k0, k1, ...) compared with (v0, v1, ...) in key order, spelt out term by term:
    # row values compare alike on SQLite and PostgreSQL only in recent versions, and
    # this form lets each side bind its value with its column's type.
    terms = []
    for i, column in enumerate(key):
        compare = last if i == len(key) - 1 else strict
        equal = [key[j] == values[j] for j in range(i)]
        terms.append(sa.and_(*equal, compare(column, values[i])))
    return sa.or_(*terms)


def after_key(key: Sequence[sa.ColumnElement[Any]], values: Cursor) -> sa.ColumnElement[bool]:
    """Rows whose key sorts after ``values``; the leading bound lets the index seek."""
    return sa.and_(
        key[0] >= values[0],
        _lexical(key, values, strict=operator.gt, last=operator.gt),
    )


def up_to_key(key: Sequence[sa.ColumnElement[Any]], values: Cursor) -> sa.ColumnElement[bool]:
    """Rows whose key sorts at or before ``values``."""
    return sa.and_(
        key[0] <= values[0],
        _lexical(key, values, strict=operator.lt, last=operator.le),
    )


async def delete_batch(
    tx: Tx,
    *,
    table: sa.Table,
    key: Sequence[sa.ColumnElement[Any]],
    due: sa.ColumnElement[bool],
    after: Cursor | None,
    limit: int,
    dependents: Callable[[sa.ColumnElement[bool]], Sequence[sa.Delete]] = lambda _: (),
) -> PurgeBatch:
    """Delete up to ``limit`` rows of ``table`` that are ``due``, in ``key`` order after
    ``after``; ``key`` is an index's columns ending in a unique key.

    ``dependents`` gives the statements that delete what refers to the batch's rows
    (given the batch's condition), run first.
    """
    bounds = [due] if after is None else [due, after_key(key, after)]
    found = await tx.execute(sa.select(*key).where(*bounds).order_by(*key).limit(limit))
    keys = found.all()
    if not keys:
        return PurgeBatch(selected=0, deleted=0, cursor=after)
    last = tuple(keys[-1])
    batch = sa.and_(*bounds, up_to_key(key, last))
    for statement in dependents(batch):
        await tx.execute(statement)
    deleted = await tx.execute(sa.delete(table).where(batch))
    return PurgeBatch(selected=len(keys), deleted=deleted.rowcount, cursor=last)
