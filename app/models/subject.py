"""Data subjects: their short sessions, and every request they make (or staff record for
them), with its due date and, for an erasure, the receipt."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.types import json_column, timestamp


class SubjectSession(SQLModel, table=True):
    """A subject's session, opened by proving control of the number by SMS.

    No foreign key to the subscriber: an erasure deletes the sessions with it, and the
    token is only ever stored as its keyed hash.
    """

    __tablename__ = "subject_sessions"

    id: str = Field(primary_key=True, max_length=40)
    subscriber_id: str = Field(max_length=40, index=True)
    token_hash: str = Field(max_length=64, unique=True)
    token_key_id: str = Field(max_length=40)
    # The approved verification it was opened with: each opens one session at most.
    verification_id: str = Field(max_length=40, unique=True)
    created_at: dt.datetime = timestamp()
    expires_at: dt.datetime = timestamp(index=True)  # the purge walks it
    revoked_at: dt.datetime | None = timestamp(nullable=True)


class SubjectRequest(SQLModel, table=True):
    """One request of a data subject: made on the self-service pages (done at once) or
    received by phone or letter and recorded by an operator (open until done).

    ``subscriber_id`` is the pseudonymous subject id; it outlives an erasure, as the
    ledger's does. No number is ever stored here.
    """

    __tablename__ = "subject_requests"
    __table_args__ = (
        sa.Index("ix_subject_requests_status_due", "status", "due_at"),
        # A closed request is kept from when it was answered: the purge walks this.
        sa.Index(
            "ix_subject_requests_done",
            "done_at",
            "id",
            sqlite_where=sa.text("status != 'open'"),
            postgresql_where=sa.text("status != 'open'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=40)
    subscriber_id: str | None = Field(default=None, max_length=40, index=True)
    kind: str = Field(max_length=32, description="RequestKind in app/subject/schemas.py")
    channel: str = Field(max_length=16, description="self_service, phone, letter, email, ...")
    reason: str | None = Field(default=None, max_length=500)
    status: str = Field(max_length=16, description="open, done or refused")
    received_at: dt.datetime = timestamp(index=True)
    due_at: dt.datetime = timestamp()
    recorded_by: str = Field(max_length=80)
    done_at: dt.datetime | None = timestamp(nullable=True)
    done_by: str | None = Field(default=None, max_length=80)
    note: str | None = Field(default=None, max_length=500)
    # An erasure's receipt: what was erased (counts) and what is kept and why.
    receipt: dict[str, Any] | None = json_column(nullable=True)
