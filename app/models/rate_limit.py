"""Sliding-window send limits, kept in the database so every replica shares them."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from app.models.types import timestamp


class RateLimitHit(SQLModel, table=True):
    __tablename__ = "rate_limit_hits"
    # Small rows, always read by (bucket, at) ranges: on SQLite the table is that key's
    # B-tree, so counting one send writes one page per bucket, not a row page as well.
    __table_args__ = {"sqlite_with_rowid": False}

    # A keyed hash of what is limited (a number, a prefix, an IP): never the value itself.
    bucket: str = Field(primary_key=True, max_length=140)
    at: dt.datetime = timestamp(primary_key=True)
    # Sends counted in the same bucket at the same instant share a row.
    hits: int = 1
    # No index on "at" alone: the planner would pick it over (bucket, at) and scan a
    # whole day of hits. The purge job can afford a scan.
