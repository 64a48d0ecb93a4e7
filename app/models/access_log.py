"""The access log: every staff read of a subscriber and every reveal. Never the number."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.types import timestamp


class AccessLogEntry(SQLModel, table=True):
    """Who looked at which subscriber, when (to the second), from where, how and why.

    No foreign keys on purpose: the record must outlive an erased subscriber, and it
    names the staff member as they were at the time (username and role copied).
    """

    __tablename__ = "access_log"
    __table_args__ = (
        sa.Index("ix_access_log_staff", "staff_id", "id"),
        sa.Index("ix_access_log_subscriber", "subscriber_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    accessed_at: dt.datetime = timestamp(index=True)
    staff_id: str = Field(max_length=40)
    staff_username: str = Field(max_length=64)
    staff_role: str = Field(max_length=20)
    source_ip: str = Field(max_length=64)
    # None for a search by number that found no one (the search is still recorded).
    subscriber_id: str | None = Field(default=None, max_length=40)
    action: str = Field(
        max_length=32,
        description="what was done: AccessAction in app/registry/schemas.py",
    )
    reason: str | None = Field(default=None, max_length=500)
