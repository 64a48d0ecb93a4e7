"""The first answer to a request with an Idempotency-Key, replayed for repeats."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Field, SQLModel

from app.models.types import json_column, timestamp


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_records"

    client_id: str = Field(foreign_key="api_keys.id", primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int
    response: dict[str, Any] = json_column()
    created_at: dt.datetime = timestamp(index=True)
