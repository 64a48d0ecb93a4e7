"""Sliding-window send limits, kept in the database so every replica shares them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.types import timestamp


class RateLimitHit(SQLModel, table=True):
    __tablename__ = "rate_limit_hits"
    __table_args__ = (sa.Index("ix_rate_limit_hits_bucket_at", "bucket", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    # A keyed hash of what is limited (a number, a prefix, an IP): never the value itself.
    bucket: str = Field(max_length=140)
    # No index on "at" alone: the planner would pick it over (bucket, at) and scan a
    # whole day of hits. The purge job can afford a scan.
    at: dt.datetime = timestamp()
