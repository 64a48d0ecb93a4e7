"""A number's exact send limits (its send window), and the shared counts' upsert."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple

from app.core.sql import Json, Sql
from app.core.tx import Tx


class Hit(NamedTuple):
    """One send counted in a limit bucket."""

    bucket: str
    at: dt.datetime


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def micros(at: dt.datetime) -> int:
    """An instant as microseconds since the Unix epoch (how send_windows keeps sends)."""
    return (at - _EPOCH) // _MICROSECOND


class SendWindow(NamedTuple):
    """One send to a number, as its exact limits see it: the number's bucket, and each
    limit as the most sends allowed after an instant. The write that records the send
    checks and extends the bucket's row in one statement (:func:`record_start`)."""

    bucket: str
    now: dt.datetime
    # Sends after ``since`` (microseconds) stay in the row: the widest window.
    since: int
    # (after, most): at most ``most`` sends after ``after`` (microseconds).
    limits: tuple[tuple[int, int], ...]
    # When this send leaves the widest window (the purge removes the row then).
    keep_until: dt.datetime

    def allows(self, sent: Sequence[int]) -> bool:
        """Whether one more send fits every limit, given the sends already in the row."""
        return all(sum(1 for t in sent if t > after) < most for after, most in self.limits)

    def extended(self, sent: Sequence[int]) -> list[int]:
        """The row's sends once this one is added, older ones trimmed."""
        return [t for t in sent if t > self.since] + [micros(self.now)]

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "w_bucket": self.bucket,
            "w_now": micros(self.now),
            "w_since": self.since,
            "w_until": self.keep_until,
        }
        for i, (after, most) in enumerate(self.limits):
            params[f"w_after{i}"], params[f"w_most{i}"] = after, most
        return params


class Counted(NamedTuple):
    """Whether a send was counted (its number's limits allowed it), and the sends the
    number's row held, for a refusal's Retry-After."""

    counted: bool
    sent_at: Annotated[list[int] | None, Json]


def window_upsert(limits: int) -> str:
    # The conflict takes the row's lock and sees its latest version, so two sends to one
    # number are checked one after the other, each against the other's count.
    fits = " AND ".join(
        f"(SELECT count(*) FROM unnest(w.sent_at) AS t WHERE t > :w_after{i}) < :w_most{i}"  # noqa: S608
        for i in range(limits)
    )
    return (  # fixed text: only the number of limits varies
        "INSERT INTO send_windows AS w (bucket, sent_at, expires_at) "  # noqa: S608
        "VALUES (:w_bucket, ARRAY[CAST(:w_now AS bigint)], :w_until) "
        "ON CONFLICT (bucket) DO UPDATE SET sent_at = ARRAY(SELECT t FROM unnest(w.sent_at) "
        "AS t WHERE t > :w_since ORDER BY t) || CAST(:w_now AS bigint), "
        f"expires_at = excluded.expires_at WHERE {fits} RETURNING bucket"
    )


# Refused, the statement reads the row as it was when it began: a refusal's Retry-After
# may be a few milliseconds stale when two sends race, never its decision.
COUNTED = (
    "SELECT EXISTS (SELECT 1 FROM sent), "
    "(SELECT sent_at FROM send_windows WHERE bucket = :w_bucket)"
)


@functools.cache
def _count_send_postgres(limits: int) -> Sql[Counted]:
    return Sql(f"WITH sent AS ({window_upsert(limits)}) {COUNTED}", Counted)  # noqa: S608


class _Sent(NamedTuple):
    sent_at: Annotated[list[int], Json]


_WINDOW_SQLITE = Sql("SELECT sent_at FROM send_windows WHERE bucket = :bucket", _Sent)
_SAVE_WINDOW_SQLITE = Sql(
    "INSERT INTO send_windows (bucket, sent_at, expires_at) VALUES (:bucket, :sent, :until) "
    "ON CONFLICT (bucket) DO UPDATE SET sent_at = excluded.sent_at, "
    "expires_at = excluded.expires_at"
)


async def count_send_sqlite(tx: Tx, window: SendWindow) -> Counted:
    # Every SQLite transaction holds the database's write lock: read, decide, write.
    row = await tx.fetch_one(_WINDOW_SQLITE, {"bucket": window.bucket})
    sent = row.sent_at if row is not None else []
    if not window.allows(sent):
        return Counted(counted=False, sent_at=sent)
    params = {"bucket": window.bucket, "sent": window.extended(sent), "until": window.keep_until}
    await tx.run(_SAVE_WINDOW_SQLITE, params)
    return Counted(counted=True, sent_at=sent)


async def count_send(tx: Tx, window: SendWindow) -> Counted:
    """Count one send to a number if its limits allow it (a resend: the rest of what it
    writes follows in the same transaction)."""
    if tx.sqlite:
        return await count_send_sqlite(tx, window)
    found = await tx.fetch_one(_count_send_postgres(len(window.limits)), window.params())
    if found is None:  # a SELECT without FROM answers one row
        raise RuntimeError("send count returned nothing")
    return found


_COUNT_HITS = (
    "INSERT INTO rate_limit_hits (bucket, at, hits) VALUES {values} "
    "ON CONFLICT (bucket, at) DO UPDATE SET hits = rate_limit_hits.hits + excluded.hits"
)


@functools.cache
def shared_counts_sql(n: int) -> Sql[Any]:
    """Add n rows of counts at once (``:b0, :t0, :h0`` ...): the shared counters' writer
    (app.core.counters) uses it for the address, prefix and country buckets."""
    return Sql(_COUNT_HITS.format(values=", ".join(f"(:b{i}, :t{i}, :h{i})" for i in range(n))))


SHARED_COUNT_PROGRESS = Sql(
    "INSERT INTO shared_count_writers (writer, writes, seen_at) "
    "VALUES (:writer, :writes, :seen_at) "
    "ON CONFLICT (writer) DO UPDATE SET writes = excluded.writes, seen_at = excluded.seen_at"
)
# Read in the same statement as shared counts (``:writer``): how many of its own
# process's writes the read includes (app.core.counters).
WRITES_SEEN = "(SELECT writes FROM shared_count_writers WHERE writer = :writer)"
