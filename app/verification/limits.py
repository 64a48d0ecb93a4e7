"""Sliding-window send limits shared by every worker and replica through the database."""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass

from app.core.context import Context
from app.core.db import Tx, xact_lock
from app.core.errors import RateLimited
from app.verification.phone import Phone


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` sends per ``window`` for one bucket."""

    name: str
    bucket: str
    limit: int
    window: dt.timedelta


def send_limits(ctx: Context, *, phone: Phone, ip: str) -> list[Limit]:
    """The limits one SMS send is subject to, with buckets as keyed hashes."""
    s, keys = ctx.settings, ctx.keys
    number = keys.blind_index(phone.e164, kind="number")
    prefix = keys.blind_index(phone.prefix(s.prefix_digits), kind="prefix")
    client = keys.blind_index(ip, kind="ip")
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    return [
        Limit("number_hour", f"n:{number}", s.sends_per_number_hour, hour),
        Limit("number_day", f"n:{number}", s.sends_per_number_day, day),
        Limit("ip_hour", f"i:{client}", s.sends_per_ip_hour, hour),
        Limit("prefix_hour", f"p:{prefix}", s.sends_per_prefix_hour, hour),
    ]


def enforce(tx: Tx, limits: list[Limit], *, now: dt.datetime) -> None:
    """Raise RateLimited if any limit is reached; otherwise count one send against each."""
    buckets = sorted({limit.bucket for limit in limits})
    for bucket in buckets:  # sorted, so two transactions never lock in opposite orders
        xact_lock(tx, f"limit:{bucket}")
    # Every window in one statement: one index range scan per bucket.
    row = tx.one(_count_sql(len(limits)), _count_params(limits, now))
    if row is None:  # an aggregate always answers one row
        raise RuntimeError("count query returned nothing")
    for i, limit in enumerate(limits):
        if (row[f"hits{i}"] or 0) >= limit.limit:
            retry = math.ceil((row[f"oldest{i}_at"] + limit.window - now).total_seconds())
            raise RateLimited(
                f"send limit '{limit.name}' reached; try again later",
                retry_after=retry,
                limit=limit.name,
            )
    tx.executemany(
        "INSERT INTO rate_limit_hits (bucket, at) VALUES (:bucket, :at)",
        [{"bucket": bucket, "at": now} for bucket in buckets],
    )


@functools.lru_cache(maxsize=8)
def _count_sql(n: int) -> str:
    columns = ", ".join(
        f"sum(CASE WHEN bucket = :b{i} AND at > :s{i} THEN 1 ELSE 0 END) AS hits{i}, "
        f"min(CASE WHEN bucket = :b{i} AND at > :s{i} THEN at END) AS oldest{i}_at"
        for i in range(n)
    )
    wanted = ", ".join(f":b{i}" for i in range(n))
    return (
        f"SELECT {columns} FROM rate_limit_hits "  # noqa: S608 (placeholders only)
        f"WHERE bucket IN ({wanted}) AND at > :since"
    )


def _count_params(limits: list[Limit], now: dt.datetime) -> dict[str, object]:
    params: dict[str, object] = {"since": now - max(limit.window for limit in limits)}
    for i, limit in enumerate(limits):
        params[f"b{i}"] = limit.bucket
        params[f"s{i}"] = now - limit.window
    return params


def purge(tx: Tx, *, now: dt.datetime, keep: dt.timedelta) -> int:
    """Delete hits older than any window needs."""
    return tx.execute("DELETE FROM rate_limit_hits WHERE at <= :cutoff", {"cutoff": now - keep})
