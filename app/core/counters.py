"""Shared counters written by one writer per process, after the work they count commits.

Some counts are shared by every request: the sends to a country, to a number range, from
an address. Written in each request's own transaction, such a row is held from the
update to the commit, so every other request that counts into it waits for that commit,
disk sync included: on PostgreSQL, starts then went one at a time. Instead, a request
hands its counts to this buffer once its transaction has committed; one writer per
process adds them up and writes them (one statement for everything pending), again as
soon as the previous write is done. Under load one write carries many requests' counts;
when idle, a count is written at once.

Readers add what this process has not written yet (:meth:`CounterBuffer.unflushed`),
after reading the table, so a process does not undercount itself, except in one narrow
race: a write that commits after a reader read the table and is taken off the buffer
before that reader looks at it is missed by that reader, once. Reading the buffer first
instead counts such a write twice, which refused sequential requests below their limit;
an exact read would need the writer's progress in the same snapshot as the counts.
Another process sees this process's counts once they are written, a few milliseconds
later. A process that dies loses what it had not written: a
velocity guard may let a few more sends through, never fewer. Exact limits (a number's
own) do not use the buffer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import anyio

from app.core.db import Database
from app.core.sql import Sql
from app.core.tx import Tx

log = logging.getLogger("smsreg.counters")
Key = tuple[str, dt.datetime]  # (bucket, the instant or slot it is counted at)
# The statement that adds n (bucket, at, hits) rows: :b0, :t0, :h0, ...
Upsert = Callable[[int], Sql[Any]]
BATCH = 200


class _Counts:
    """Counts by bucket, then by the instant counted at: a reader of one bucket walks its
    own few minute slots, never everything pending (which grows while the database is
    away)."""

    def __init__(self) -> None:
        self.by_bucket: dict[str, Counter[dt.datetime]] = {}

    def __bool__(self) -> bool:
        return bool(self.by_bucket)

    def add(self, keys: Iterable[Key]) -> None:
        for bucket, at in keys:
            slots = self.by_bucket.get(bucket)
            if slots is None:
                slots = self.by_bucket[bucket] = Counter()
            slots[at] += 1

    def merge(self, other: _Counts) -> None:
        for bucket, slots in other.by_bucket.items():
            mine = self.by_bucket.get(bucket)
            if mine is None:
                self.by_bucket[bucket] = Counter(slots)
            else:
                mine.update(slots)

    def since(self, bucket: str, since: dt.datetime) -> int:
        slots = self.by_bucket.get(bucket)
        return sum(n for at, n in slots.items() if at > since) if slots else 0

    def items(self) -> list[tuple[Key, int]]:
        return [
            ((bucket, at), n) for bucket, slots in self.by_bucket.items() for at, n in slots.items()
        ]

    def total(self) -> int:
        return sum(n for slots in self.by_bucket.values() for n in slots.values())


class CounterBuffer:
    """Counts waiting for this process's single writer; see the module docstring."""

    def __init__(self, db: Database, upsert: Upsert) -> None:
        self._db = db
        self._upsert = upsert
        self._pending = _Counts()
        self._writing = _Counts()
        self._writer: asyncio.Task[None] | None = None
        self._failures = 0

    def add_after_commit(self, tx: Tx, counts: Iterable[Key]) -> None:
        """Count these once ``tx`` has committed (never if it rolls back)."""
        keys = list(counts)
        tx.after_commit(lambda: self._add(keys))

    def unflushed(self, bucket: str, since: dt.datetime) -> int:
        """What this process counted in a bucket after ``since`` and has not written yet."""
        return self._pending.since(bucket, since) + self._writing.since(bucket, since)

    def unflushed_between(self, first: str, after: str, since: dt.datetime) -> dict[str, int]:
        """Per bucket, what this process counted after ``since`` in the buckets that sort
        from ``first`` (exclusive) to ``after`` (exclusive), and has not written yet."""
        found: Counter[str] = Counter()
        for counted in (self._pending, self._writing):
            for name in counted.by_bucket:
                if first < name < after:
                    found[name] += counted.since(name, since)
        return {name: n for name, n in found.items() if n}

    def _add(self, keys: list[Key]) -> None:
        self._pending.add(keys)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_all())

    async def _write_all(self) -> None:
        while self._pending:
            self._writing, self._pending = self._pending, _Counts()
            try:
                await self._write(self._writing)
            except Exception as exc:  # the database is away: keep the counts, try later
                self._pending.merge(self._writing)
                self._failures += 1
                log.warning("shared counts not written", extra={"error_type": type(exc).__name__})
                await asyncio.sleep(min(0.1 * 2**self._failures, 5.0))
                continue
            finally:
                self._writing = _Counts()
            self._failures = 0

    async def _write(self, counts: _Counts) -> None:
        items = sorted(counts.items())  # one order, so two writers never deadlock
        async with self._db.transaction() as tx:
            for start in range(0, len(items), BATCH):
                chunk = items[start : start + BATCH]
                params: dict[str, Any] = {}
                for i, ((bucket, at), n) in enumerate(chunk):
                    params[f"b{i}"], params[f"t{i}"], params[f"h{i}"] = bucket, at, n
                await tx.run(self._upsert(len(chunk)), params)

    async def flush(self) -> None:
        """Write everything counted so far (at shutdown, and in tests)."""
        if self._pending and (self._writer is None or self._writer.done()):
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
        if self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])  # a cancelled caller leaves the writer running

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is pending, giving up after ``timeout`` seconds (the database is away)."""
        with anyio.move_on_after(timeout):
            await self.flush()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            log.warning("shared counts lost at shutdown", extra={"count": self._pending.total()})
