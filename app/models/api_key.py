"""Service-client API keys. The raw key is shown once; only a keyed hash is stored."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from app.models.types import json_column, timestamp


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=40, description="readable start of the key, for lists")
    token_hash: str = Field(max_length=64, unique=True)
    token_key_id: str = Field(max_length=40)
    scopes: list[str] = json_column()
    created_by: str = Field(max_length=80)
    created_at: dt.datetime = timestamp()
    expires_at: dt.datetime = timestamp()
    revoked_at: dt.datetime | None = timestamp(nullable=True)
    last_used_at: dt.datetime | None = timestamp(nullable=True)
    # Rotation: the key this one replaced, and the key that replaced this one (whose
    # expiry was then cut to the end of the grace period).
    rotated_from: str | None = Field(default=None, max_length=40)
    rotated_to: str | None = Field(default=None, max_length=40)
    # The client a rotated key speaks for: the first key of its line (None: itself).
    # Verifications, idempotency keys and deliveries belong to the client, so they
    # survive a rotation.
    client_id: str | None = Field(default=None, max_length=40)
