"""The first answer to a request with an Idempotency-Key, replayed for repeats."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Field, SQLModel

from app.models.types import json_column, partial_index, timestamp


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_records"
    __table_args__ = (
        # A number's erasure deletes the stored answers of its verifications; without
        # this it read every answer of the day. (Its ids grow with time: a start writes
        # its entry on the index's last page.)
        partial_index(
            "ix_idempotency_records_verification",
            "verification_id",
            where="verification_id IS NOT NULL",
        ),
    )

    client_id: str = Field(foreign_key="api_keys.id", primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int
    response: dict[str, Any] = json_column()
    # The verification the stored answer is about (its ``id``). Not a foreign key: the
    # record may outlive it by a purge's order, and is only ever looked up by it.
    verification_id: str | None = Field(default=None, max_length=40)
    created_at: dt.datetime = timestamp(index=True)
