"""Retention: what a purge step is, and the keyed batch every step deletes by.

Each area declares the purge steps of its own tables in its ``retention.py``; the
``smsreg purge`` command (app/retention) runs them all, batch by batch, each batch in
its own short transaction.

A step names the index it walks, and its due rows are that index's predicate: the
index's leading column is the step's ``time`` (a row is due once it is before the
cutoff), and a partial index's condition is repeated as the step's ``where`` with its
constant written out (:func:`literal`). So a step reads only rows it deletes, never the
rows the schedule keeps. A batch never rescans what an earlier batch went past either:
it walks the index in key order from a cursor (the key of the last row it selected),
selects the keys of up to ``limit`` due rows after it, and deletes exactly the due rows
up to the last key. So each batch costs about its own rows, however far the run has got
and however many dead index entries the batches before it left behind (PostgreSQL keeps
them until VACUUM); a run stopped halfway has committed its batches, and the next run
starts where the due rows begin. tests/retention/test_plans.py holds every step to its
index on both databases.

The delete of a batch is bounded by its keys alone where the key begins with the time:
its last key is due, so every row up to it is, and the cutoff said again would be a
second upper bound on the same column. SQLite uses one of two such bounds, and it took
the cutoff: each batch walked the index from its cursor to the cutoff, every due row
still left, and at a million subscribers a batch of 1,000 approved verifications took
130 ms instead of 17.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.core.config import Settings
from app.core.tx import Tx

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


def _no_dependents(_batch: sa.ColumnElement[bool]) -> Sequence[sa.Delete]:
    return ()


@dataclass(frozen=True)
class PurgeStep:
    """One kind of row the schedule deletes: its name in the report, how long it is
    kept, the table, the index walked (its columns, ending in a unique key), the column
    whose value before the cutoff makes a row due, and the condition of a partial
    index (the rows it may delete at all)."""

    kind: str
    keep: Callable[[Settings], dt.timedelta]
    table: sa.Table
    index: str
    key: tuple[sa.ColumnElement[Any], ...]
    time: sa.ColumnElement[Any]
    where: sa.ColumnElement[bool] | None = None
    # The statements that delete what refers to a batch's rows (given the batch's
    # condition), run first.
    dependents: Callable[[sa.ColumnElement[bool]], Sequence[sa.Delete]] = _no_dependents
    # "sqlite" or "postgresql" for a step that walks its table one way on one database
    # and another way on the other; None: both.
    database: str | None = None

    def runs_on(self, database: str) -> bool:
        """Whether the step runs on this database ("sqlite" or "postgresql")."""
        return self.database in (None, database)

    def due(self, before: dt.datetime) -> sa.ColumnElement[bool]:
        """The rows due before an instant."""
        due = self.time < before
        return due if self.where is None else sa.and_(self.where, due)

    def select(self, *, before: dt.datetime, after: Cursor | None, limit: int) -> sa.Select[Any]:
        """The keys of the next ``limit`` due rows after ``after``, in index order."""
        return (
            sa.select(*self.key)
            .where(self.due(before), *self._after(after))
            .order_by(*self.key)
            .limit(limit)
        )

    def batch(
        self, *, before: dt.datetime, after: Cursor | None, last: Cursor
    ) -> sa.ColumnElement[bool]:
        """The due rows after ``after`` up to and including ``last`` (a due row's key)."""
        if self.key[0] is self.time:  # up to a due time, every row is due
            rows = [] if self.where is None else [self.where]
        else:
            rows = [self.due(before)]
        return sa.and_(*rows, *self._after(after), up_to_key(self.key, last))

    def _after(self, after: Cursor | None) -> list[sa.ColumnElement[bool]]:
        return [] if after is None else [after_key(self.key, after)]

    async def run(
        self, tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
    ) -> PurgeBatch:
        """Delete up to ``limit`` due rows after ``after``: one batch."""
        keys = (await tx.execute(self.select(before=before, after=after, limit=limit))).all()
        if not keys:
            return PurgeBatch(selected=0, deleted=0, cursor=after)
        last = tuple(keys[-1])
        batch = self.batch(before=before, after=after, last=last)
        for statement in self.dependents(batch):
            await tx.execute(statement)
        deleted = await tx.execute(sa.delete(self.table).where(batch))
        return PurgeBatch(selected=len(keys), deleted=deleted.rowcount, cursor=last)


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


def literal(value: str) -> sa.ColumnElement[Any]:
    """A constant written into the statement, not bound: a partial index's condition is
    proved from the query's text, and a plan made for any value of a bound parameter
    (PostgreSQL's generic plan of a prepared statement) cannot prove it."""
    return sa.literal_column(f"'{value}'")
