"""Request and response shapes of /v1/staff: never a password, a hash or a stored token."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.staff.accounts import MAX_PASSWORD_LENGTH
from app.staff.roles import Role

Restriction = Literal["password_expired", "totp_enrolment_required"]


class LoginRequest(BaseModel):
    """A username and password, for a session."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, examples=["hanako"])
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    totp: str | None = Field(
        None, min_length=1, max_length=16, description="the TOTP code, once TOTP is enrolled"
    )
    recovery_code: str | None = Field(
        None, min_length=1, max_length=32, description="instead of totp: a one-time code"
    )


class SessionPublic(BaseModel):
    """A session's deadlines: it ends at ``expires_at``, or sooner when idle."""

    id: str
    created_at: dt.datetime
    expires_at: dt.datetime = Field(description="the absolute end (12 h at most)")
    idle_expires_at: dt.datetime = Field(description="the end if no request comes before it")


class StaffSummary(BaseModel):
    """Who a session belongs to."""

    id: str
    username: str
    display_name: str
    role: Role


class NewSessionPublic(BaseModel):
    """A fresh session. The token is shown this once; send it as a bearer token."""

    token: str = Field(description="`smsreg_ss_...`; stored only as a keyed hash")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (the scheme name)
    session: SessionPublic
    staff: StaffSummary
    restrictions: list[Restriction] = Field(
        default_factory=list,
        description="non-empty: the session may only fix these (change the password, "
        "enrol TOTP), read /v1/staff/me and log out; other routes answer 403",
    )
    password_expires_at: dt.datetime | None = Field(
        None, description="when the password passes its maximum age (null: never)"
    )


class MePublic(StaffSummary):
    """The signed-in account and its current session."""

    password_changed_at: dt.datetime
    last_login_at: dt.datetime | None
    session: SessionPublic
    restrictions: list[Restriction] = Field(default_factory=list)
    password_expires_at: dt.datetime | None = None


class StaffPublic(StaffSummary):
    """A staff account as admins and auditors see it."""

    created_at: dt.datetime
    created_by: str
    password_changed_at: dt.datetime
    last_login_at: dt.datetime | None
    disabled_at: dt.datetime | None
    locked_until: dt.datetime | None = Field(description="set while a lockout runs")
    failed_logins: int = Field(description="wrong passwords since the last login or lock")


class PermissionChangePublic(BaseModel):
    """One grant, change or revocation of a role."""

    change: Literal["grant", "change", "revoke", "offboard"]
    old_role: Role | None
    new_role: Role | None
    actor: str = Field(description="staff:<id> of the admin, or cli")
    changed_at: dt.datetime


class StaffDetailPublic(StaffPublic):
    """An account with its permission history, oldest first."""

    permission_history: list[PermissionChangePublic]


class StaffListPublic(BaseModel):
    """Every staff account, disabled ones included."""

    staff: list[StaffPublic]


class StaffCreate(BaseModel):
    """A new staff account. The admin passes the first password on to its owner, who
    should change it (PUT /v1/staff/me/password)."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, examples=["hanako"])
    display_name: str = Field(min_length=1, max_length=100, examples=["Hanako Yamada"])
    role: Role
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class RoleChange(BaseModel):
    """The role to give an account."""

    model_config = ConfigDict(extra="forbid")

    role: Role


class PasswordChange(BaseModel):
    """Change one's own password, proving the current one."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    new_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class SessionsRevokedPublic(BaseModel):
    """How many live sessions an admin ended."""

    staff_id: str
    sessions_ended: int
