"""Shared counters written by one writer per process, after the work they count commits.

Some counts are shared by every request: the sends to a country, to a number range, from
an address. Written in each request's own transaction, such a row is held from the
update to the commit, so every other request that counts into it waits for that commit,
disk sync included: on PostgreSQL, starts then went one at a time. Instead, a request
hands its counts to this buffer once its transaction has committed; one writer per
process adds them up and writes them (one statement for everything pending), again as
soon as the previous write is done. Under load one write carries many requests' counts;
when idle, a count is written at once.

Readers add what this process has not written yet, after reading the table. Which of
this process's writes a read already includes is known exactly: each write also records
how many writes its process has committed (its row in ``shared_count_writers``, in the
same transaction), and the reader reads that number in the same statement as the counts
(:attr:`CounterBuffer.writer` names the row). It then adds what is pending, and the
writes in flight or recently committed that its read did not see
(:meth:`CounterBuffer.unflushed`). Without that number, a write that committed while a
read was under way was missed by that reader, or, reading the buffer first, counted
twice. Another process sees this process's counts once they are written, a few
milliseconds later. A process that dies loses what it had not written: a velocity guard
may let a few more sends through, never fewer. Exact limits (a number's own) do not use
the buffer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
from collections import Counter, deque
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
# How long a committed write stays in memory for readers whose read began before it
# committed: far longer than the one statement between a read and its look here.
KEEP_WRITTEN_SECONDS = 30.0


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

    def __init__(self, db: Database, upsert: Upsert, progress: Sql[Any]) -> None:
        """``upsert`` adds counts; ``progress`` records this writer's committed writes
        (``:writer``, ``:writes``, ``:seen_at``)."""
        self._db = db
        self._upsert = upsert
        self._progress = progress
        self.writer = secrets.token_hex(16)
        self._pending = _Counts()
        self._writing = _Counts()
        self._committed = 0  # writes of this process known to have committed
        # Committed writes kept for late readers: (write number, when, counts).
        self._written: deque[tuple[int, float, _Counts]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._failures = 0

    def add_after_commit(self, tx: Tx, counts: Iterable[Key]) -> None:
        """Count these once ``tx`` has committed (never if it rolls back)."""
        keys = list(counts)
        tx.after_commit(lambda: self._add(keys))

    def _unseen(self, seen: int | None) -> list[_Counts]:
        """What a read that saw ``seen`` of this writer's writes (None: no row) lacks."""
        seen = seen or 0
        unseen = [self._pending]
        if self._writing and self._committed + 1 > seen:
            unseen.append(self._writing)
        for number, _, counts in reversed(self._written):
            if number <= seen:
                break
            unseen.append(counts)
        return unseen

    def unflushed(self, bucket: str, since: dt.datetime, *, seen: int | None) -> int:
        """What this process counted in a bucket after ``since`` that a read which saw
        ``seen`` of its writes (this writer's ``writes``, read with the counts) lacks."""
        return sum(counts.since(bucket, since) for counts in self._unseen(seen))

    @property
    def committed(self) -> int:
        """How many writes this process knows to have committed: taken before a read, a
        lower bound of the writes that read includes."""
        return self._committed

    def unflushed_between(
        self, first: str, after: str, since: dt.datetime, *, seen: int
    ) -> set[str]:
        """The buckets that sort from ``first`` (exclusive) to ``after`` (exclusive) in
        which this process counted after ``since``, from the writes a read that saw
        ``seen`` of them may lack. A set cannot count a bucket twice, so a lower bound
        will do: :attr:`committed`, taken before the read."""
        found: set[str] = set()
        for counts in self._unseen(seen):
            for name in counts.by_bucket:
                if first < name < after and name not in found and counts.since(name, since):
                    found.add(name)
        return found

    def _add(self, keys: list[Key]) -> None:
        self._pending.add(keys)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_all())

    async def _write_all(self) -> None:
        while self._pending:
            self._writing, self._pending = self._pending, _Counts()
            written = self._writing
            try:
                await self._write(written, self._committed + 1)
            except Exception as exc:  # the database is away: keep the counts, try later
                self._pending.merge(written)
                self._failures += 1
                log.warning("shared counts not written", extra={"error_type": type(exc).__name__})
                await asyncio.sleep(min(0.1 * 2**self._failures, 5.0))
                continue
            finally:
                self._writing = _Counts()
            self._committed += 1
            self._keep(written)
            self._failures = 0

    def _keep(self, written: _Counts) -> None:
        now = time.monotonic()
        self._written.append((self._committed, now, written))
        while self._written and self._written[0][1] < now - KEEP_WRITTEN_SECONDS:
            self._written.popleft()

    async def _write(self, counts: _Counts, number: int) -> None:
        items = sorted(counts.items())  # one order, so two writers never deadlock
        async with self._db.transaction() as tx:
            for start in range(0, len(items), BATCH):
                chunk = items[start : start + BATCH]
                params: dict[str, Any] = {}
                for i, ((bucket, at), n) in enumerate(chunk):
                    params[f"b{i}"], params[f"t{i}"], params[f"h{i}"] = bucket, at, n
                await tx.run(self._upsert(len(chunk)), params)
            latest = max(at for (_, at), _ in items)
            await tx.run(
                self._progress, {"writer": self.writer, "writes": number, "seen_at": latest}
            )

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
