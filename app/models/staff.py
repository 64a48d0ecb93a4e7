"""Staff accounts, their sessions, and the history of the roles they were granted."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.types import timestamp


class StaffAccount(SQLModel, table=True):
    """A person on the staff: one role, an argon2id password hash, never deleted."""

    __tablename__ = "staff_accounts"

    id: str = Field(primary_key=True, max_length=40)
    username: str = Field(max_length=64, unique=True, description="lower case")
    display_name: str = Field(max_length=100)
    role: str = Field(max_length=20, description="privacy_officer, operator, auditor or admin")
    password_hash: str = Field(max_length=255, description="argon2id, with its parameters")
    password_changed_at: dt.datetime = timestamp()
    failed_logins: int = 0
    locked_until: dt.datetime | None = timestamp(nullable=True)
    disabled_at: dt.datetime | None = timestamp(nullable=True)
    created_by: str = Field(max_length=80)
    created_at: dt.datetime = timestamp()
    last_login_at: dt.datetime | None = timestamp(nullable=True)


class StaffSession(SQLModel, table=True):
    """A login: the token is shown once; only its keyed hash is stored."""

    __tablename__ = "staff_sessions"

    id: str = Field(primary_key=True, max_length=40)
    staff_id: str = Field(foreign_key="staff_accounts.id", max_length=40, index=True)
    token_hash: str = Field(max_length=64, unique=True)
    token_key_id: str = Field(max_length=40)
    source_ip: str = Field(max_length=64, description="where the login came from")
    created_at: dt.datetime = timestamp()
    expires_at: dt.datetime = timestamp()  # the absolute end
    last_seen_at: dt.datetime = timestamp()  # the idle timeout counts from here
    revoked_at: dt.datetime | None = timestamp(nullable=True)


class StaffPermissionChange(SQLModel, table=True):
    """A grant, change or revocation of a role: who, when, by whom. Kept 3 years."""

    __tablename__ = "staff_permission_history"
    __table_args__ = (sa.Index("ix_staff_permission_history_staff", "staff_id", "changed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    staff_id: str = Field(foreign_key="staff_accounts.id", max_length=40)
    change: str = Field(max_length=16, description="grant, change or revoke")
    old_role: str | None = Field(default=None, max_length=20)
    new_role: str | None = Field(default=None, max_length=20)
    actor: str = Field(max_length=80, description="staff:<id>, or cli")
    changed_at: dt.datetime = timestamp(index=True)
