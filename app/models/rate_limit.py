"""Sliding-window send limits, kept in the database so every replica shares them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

from app.models.types import postgresql_only, timestamp


class RateLimitHit(SQLModel, table=True):
    __tablename__ = "rate_limit_hits"
    # Small rows, always read by (bucket, at) ranges: on SQLite the table is that key's
    # B-tree, so counting one send writes one page per bucket, not a row page as well.
    __table_args__ = (
        # For PostgreSQL's purge alone (app/verification/retention.py). Counts are read
        # by bucket and time, which the primary key answers; tests/retention/test_plans.py
        # holds the planners to it. SQLite's purge walks the primary key instead, and
        # without this index neither a send nor a purged row writes a page of it (at
        # 200,000 subscribers the purge of a day's counts took 11 s instead of 31 s).
        postgresql_only(sa.Index("ix_rate_limit_hits_at", "at")),
        {"sqlite_with_rowid": False},
    )

    # A keyed hash of what is limited (a number, a prefix, an IP): never the value itself.
    bucket: str = Field(primary_key=True, max_length=140)
    at: dt.datetime = timestamp(primary_key=True)
    # Sends counted in the same bucket at the same instant share a row.
    hits: int = 1


class SendWindow(SQLModel, table=True):
    """An exact limit's recent sends: one row per number, checked and extended by the
    send's own write in one statement (app/verification/repository/windows.py), so the row's
    lock is what serialises two sends to one number."""

    __tablename__ = "send_windows"
    __table_args__ = (
        # For PostgreSQL's purge. On SQLite the table is its key's B-tree and the purge
        # walks it in key order (app/verification/retention.py): each send writes one
        # B-tree instead of three (table, key, this index), and the purge rewrites each
        # page once instead of a page of the key's index for nearly every row (at
        # 200,000 subscribers, 2.5 s instead of 14 s).
        postgresql_only(sa.Index("ix_send_windows_expires_at", "expires_at")),
        {"sqlite_with_rowid": False},
    )

    # A keyed hash of the number: never the value itself.
    bucket: str = Field(primary_key=True, max_length=140)
    # The sends inside the widest window, oldest first, as microseconds since the Unix
    # epoch: a bigint array on PostgreSQL, a JSON array on SQLite.
    sent_at: list[int] = Field(
        sa_column=sa.Column(
            sa.JSON().with_variant(postgresql.ARRAY(sa.BigInteger()), "postgresql"),
            nullable=False,
        )
    )
    # When the newest send leaves the widest window: the purge removes the row then.
    expires_at: dt.datetime = timestamp()


class SharedCountWriter(SQLModel, table=True):
    """How many writes of shared counts each process has committed (app/core/counters.py).

    A reader of the counts reads its own process's row in the same statement, so it knows
    exactly which of the writes it still holds in memory its read already includes.
    """

    __tablename__ = "shared_count_writers"

    # Random per process, chosen at start: no host name or process id.
    writer: str = Field(primary_key=True, max_length=40)
    writes: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    # The latest instant counted: a writer idle for a day is purged.
    seen_at: dt.datetime = timestamp(index=True)
