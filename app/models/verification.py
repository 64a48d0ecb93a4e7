"""One SMS verification: a number (encrypted), a purpose, and the state of its code."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from app.models.types import blob, partial_index, timestamp


class Verification(SQLModel, table=True):
    __tablename__ = "verifications"
    __table_args__ = (
        # One index per purge step (app/verification/retention.py), each holding only the
        # rows its step may delete: purging the unapproved never walks the approved ones
        # kept for six months. An approval moves its row from one to the other.
        partial_index(
            "ix_verifications_unapproved_created", "created_at", "id", where="status <> 'approved'"
        ),
        partial_index(
            "ix_verifications_approved_created", "created_at", "id", where="status = 'approved'"
        ),
        # Self-service verifications (data_subject), approved: kept only as long as
        # unverified ones, since they have no use once the session is open.
        partial_index(
            "ix_verifications_self_service_created",
            "created_at",
            "id",
            where="status = 'approved' AND purpose = 'data_subject'",
        ),
        # The verifications an approval linked to a subscriber: what its erasure deletes
        # (with those found by the number), and what the database looks through when a
        # subscriber row is deleted (the foreign key). Unlinked rows are not indexed.
        partial_index(
            "ix_verifications_subscriber", "subscriber_id", where="subscriber_id IS NOT NULL"
        ),
    )

    id: str = Field(primary_key=True, max_length=40)
    # No index on client_id: SQLite's planner would prefer it to phone_index and scan
    # every verification of a client on each start. Lookups by client go through the id.
    client_id: str = Field(foreign_key="api_keys.id", max_length=40)
    purpose: str = Field(max_length=32)
    locale: str | None = Field(default=None, max_length=16)
    phone_ciphertext: bytes = blob()
    phone_key_id: str = Field(max_length=40)
    phone_index: str = Field(max_length=120, index=True)
    # The keyed hash of the number's prefix (as in the prefix send limit): an approval
    # counts for its prefix in the pumping guard's conversion watch.
    prefix_index: str | None = Field(default=None, max_length=120)
    # The code is never stored: it is derived from this salt under a key kept outside
    # the database (see app/verification/codes.py).
    code_salt: bytes = blob()
    code_key_id: str = Field(max_length=40)
    code_length: int
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    max_attempts: int
    send_count: int = 1
    created_at: dt.datetime = timestamp()
    expires_at: dt.datetime = timestamp()
    last_sent_at: dt.datetime = timestamp()
    approved_at: dt.datetime | None = timestamp(nullable=True)
    subscriber_id: str | None = Field(default=None, foreign_key="subscribers.id", max_length=40)
