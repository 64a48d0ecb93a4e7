"""A staff member's second factor: a TOTP secret (encrypted) and one-time recovery codes."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from app.models.types import blob, timestamp


class StaffTotp(SQLModel, table=True):
    """One TOTP secret per account (RFC 6238), encrypted like a phone number.

    Pending until its first valid code confirms it; only a confirmed one is asked for
    at login.
    """

    __tablename__ = "staff_totp"

    staff_id: str = Field(primary_key=True, foreign_key="staff_accounts.id", max_length=40)
    secret_ciphertext: bytes = blob()
    secret_key_id: str = Field(max_length=40, description="the phone key that encrypts it")
    created_at: dt.datetime = timestamp()
    confirmed_at: dt.datetime | None = timestamp(nullable=True)
    # The last 30-second step whose code was accepted: a code of that step or an
    # earlier one is refused, so a code cannot be replayed within its window.
    last_used_step: int | None = None


class StaffRecoveryCode(SQLModel, table=True):
    """A one-time recovery code, stored only as a keyed hash (the token key ring)."""

    __tablename__ = "staff_recovery_codes"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: str = Field(foreign_key="staff_accounts.id", max_length=40, index=True)
    code_hash: str = Field(max_length=64)
    key_id: str = Field(max_length=40, description="the token key the hash was made with")
    created_at: dt.datetime = timestamp()
    used_at: dt.datetime | None = timestamp(nullable=True)
