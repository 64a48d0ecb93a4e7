"""Audit events: what happened, by whom, to which record. Never a number or a code."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Field, SQLModel

from app.models.types import json_column, timestamp


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    # No index on tag alone: nine values, so it could never narrow a search much, and
    # every index costs each audited action one more page written at commit.
    tag: str = Field(max_length=60)
    actor: str = Field(max_length=80)
    subject: str | None = Field(default=None, max_length=60, index=True)
    at: dt.datetime = timestamp(index=True)
    details: dict[str, Any] = json_column()
