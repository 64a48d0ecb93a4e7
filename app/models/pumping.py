"""Number prefixes blocked by the pumping guard (see app/verification/pumping.py)."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from app.models.types import timestamp


class PumpingBlock(SQLModel, table=True):
    __tablename__ = "pumping_blocks"

    id: str = Field(primary_key=True, max_length=40)
    # The keyed hash of the prefix, as in the prefix send limit: never the digits.
    prefix_index: str = Field(max_length=120, index=True)
    # The prefix itself (country code and first national digits, e.g. "+819012"): a
    # range of a million numbers is no one's number, and the fraud team needs to see it.
    prefix: str = Field(max_length=16)
    region: str = Field(max_length=8)
    blocked_at: dt.datetime = timestamp()
    ends_at: dt.datetime = timestamp()
    # What tripped the watch: sends and approvals in the window.
    sends: int
    approvals: int
    lifted_at: dt.datetime | None = timestamp(nullable=True)
    lifted_by: str | None = Field(default=None, max_length=80)
    lift_reason: str | None = Field(default=None, max_length=500)
