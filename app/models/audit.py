"""Audit events: what happened, by whom, to which record. Never a number or a code."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Field, SQLModel

from app.models.types import json_column, partial_index, timestamp

# The events of a verification or of an SMS (tags of app.audit.events.Tag): part of that
# record, and purged with such records after ``verification_retention_days``
# (app/verification/retention.py). They are nearly every event written; the rest
# (staff, disclosures, consents, subjects, redemptions) are kept.
RECORD_TAGS = (
    "sms:cancelled",
    "sms:expired",
    "sms:failed",
    "sms:sent",
    "sms:unknown",
    "verification:approved",
    "verification:check_failed",
    "verification:resent",
    "verification:started",
)
RECORD_EVENTS = "tag IN (" + ", ".join(f"'{tag}'" for tag in RECORD_TAGS) + ")"


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    # The purge's walk of the record events, oldest first; no other query reads events by
    # time, so events kept for good cost no entry in a time index.
    __table_args__ = (partial_index("ix_audit_events_records_at", "at", "id", where=RECORD_EVENTS),)

    id: int | None = Field(default=None, primary_key=True)
    # No index on tag alone: nine values, so it could never narrow a search much, and
    # every index costs each audited action one more page written at commit.
    tag: str = Field(max_length=60)
    actor: str = Field(max_length=80)
    subject: str | None = Field(default=None, max_length=60, index=True)
    at: dt.datetime = timestamp()
    details: dict[str, Any] = json_column()
