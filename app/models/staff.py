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
    # An invited account is not active until its owner has set a password and enrolled
    # TOTP with the invitation, and a privileged role's grant is confirmed.
    activation_pending: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # A break-glass admin made on the command line ends at this instant.
    expires_at: dt.datetime | None = timestamp(nullable=True)


class StaffSession(SQLModel, table=True):
    """A login: the token is shown once; only its keyed hash is stored."""

    __tablename__ = "staff_sessions"

    id: str = Field(primary_key=True, max_length=40)
    staff_id: str = Field(foreign_key="staff_accounts.id", max_length=40, index=True)
    token_hash: str = Field(max_length=64, unique=True)
    token_key_id: str = Field(max_length=40)
    source_ip: str = Field(max_length=64, description="where the login came from")
    created_at: dt.datetime = timestamp()
    expires_at: dt.datetime = timestamp(index=True)  # the absolute end
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
    # A privileged grant (privacy_officer, admin) names the second admin who confirmed
    # the actor's proposal.
    confirmed_by: str | None = Field(default=None, max_length=80)
    changed_at: dt.datetime = timestamp(index=True)


class StaffRoleGrant(SQLModel, table=True):
    """A proposal to grant a privileged role, until a different admin confirms or rejects
    it (or it expires, or its proposer is offboarded). Kept like the permission history."""

    __tablename__ = "staff_role_grants"
    __table_args__ = (sa.Index("ix_staff_role_grants_status", "status", "proposed_at"),)

    id: str = Field(primary_key=True, max_length=40)
    staff_id: str = Field(foreign_key="staff_accounts.id", max_length=40, index=True)
    role: str = Field(max_length=20)
    old_role: str | None = Field(default=None, max_length=20)
    kind: str = Field(max_length=16, description="invitation or change")
    status: str = Field(max_length=16, description="pending, confirmed, rejected, cancelled")
    proposed_by: str = Field(max_length=80)
    proposed_at: dt.datetime = timestamp()
    expires_at: dt.datetime = timestamp()
    decided_by: str | None = Field(default=None, max_length=80)
    decided_at: dt.datetime | None = timestamp(nullable=True)
    reason: str | None = Field(default=None, max_length=500)


class StaffInvitation(SQLModel, table=True):
    """A one-time enrolment token for a new account: its owner sets their own password
    and enrols TOTP with it. Only the token's keyed hash is stored."""

    __tablename__ = "staff_invitations"

    id: str = Field(primary_key=True, max_length=40)
    staff_id: str = Field(foreign_key="staff_accounts.id", max_length=40, index=True)
    token_hash: str = Field(max_length=64, unique=True)
    token_key_id: str = Field(max_length=40)
    created_by: str = Field(max_length=80)
    created_at: dt.datetime = timestamp()
    expires_at: dt.datetime = timestamp()
    password_set_at: dt.datetime | None = timestamp(nullable=True)
    redeemed_at: dt.datetime | None = timestamp(nullable=True)
    redeemed_ip: str | None = Field(default=None, max_length=64)
    revoked_at: dt.datetime | None = timestamp(nullable=True)
    revoked_by: str | None = Field(default=None, max_length=80)


class StaffLoginAttempt(SQLModel, table=True):
    """One login attempt, for the throttles: per address and per (address, username).

    Both are keyed hashes, never the address or the name. An attempt counts from its
    start (``pending``), so concurrent guesses are counted before their passwords are
    even verified; a success stops counting, and so does an admin's unlock.
    """

    __tablename__ = "staff_login_attempts"
    __table_args__ = (
        sa.Index("ix_staff_login_attempts_ip", "ip_bucket", "at"),
        sa.Index("ix_staff_login_attempts_source", "source_bucket", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = timestamp(index=True)
    ip_bucket: str = Field(max_length=140)
    source_bucket: str = Field(max_length=140)
    staff_id: str | None = Field(default=None, max_length=40, index=True)
    outcome: str = Field(max_length=16, description="pending, failed, succeeded or cleared")
