"""Request and response shapes of /v1/staff: never a password, a hash or a stored token."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import NO_CONTROL_CHARACTERS
from app.credentials.passwords import MAX_PASSWORD_LENGTH
from app.models.staff import StaffAccount, StaffPermissionChange
from app.staff.roles import Role
from app.staff.sessions import Me, NewSession

Restriction = Literal["password_expired", "totp_enrolment_required"]


# A username as typed at login: no control characters (PostgreSQL refuses a NUL in text,
# which was a 500); an account's own name is narrower (app/staff/new_account.py).
TYPED_USERNAME = NO_CONTROL_CHARACTERS


class LoginRequest(BaseModel):
    """A username and password, for a session."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, pattern=TYPED_USERNAME, examples=["hanako"])
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    totp: str | None = Field(
        None, min_length=1, max_length=16, description="the TOTP code, once TOTP is enrolled"
    )
    recovery_code: str | None = Field(
        None, min_length=1, max_length=32, description="instead of totp: a one-time code"
    )


class SessionPublic(BaseModel):
    """A session's deadlines: it ends at ``expires_at``, or sooner when idle."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    created_at: dt.datetime
    expires_at: dt.datetime = Field(description="the absolute end (12 h at most)")
    idle_expires_at: dt.datetime = Field(description="the end if no request comes before it")


class StaffSummary(BaseModel):
    """Who a session belongs to."""

    model_config = ConfigDict(from_attributes=True)

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
    failed_logins: int = Field(description="wrong second-factor codes since the last login")
    activation_pending: bool = Field(
        False,
        description="invited and not active yet: its owner has not enrolled, or a "
        "privileged role waits for a second admin's confirmation",
    )
    expires_at: dt.datetime | None = Field(
        None, description="a break-glass admin's end (null: the account does not expire)"
    )


class PermissionChangePublic(BaseModel):
    """One grant, change or revocation of a role."""

    model_config = ConfigDict(from_attributes=True)

    change: Literal["grant", "change", "revoke", "offboard", "break_glass"]
    old_role: Role | None
    new_role: Role | None
    actor: str = Field(
        description="staff:<id> of the admin (a privileged grant's proposer), or cli"
    )
    confirmed_by: str | None = Field(
        None, description="staff:<id> of the second admin who confirmed a privileged grant"
    )
    changed_at: dt.datetime


class StaffDetailPublic(StaffPublic):
    """An account with its permission history, oldest first."""

    permission_history: list[PermissionChangePublic]


class StaffListPublic(BaseModel):
    """Every staff account, disabled ones included."""

    staff: list[StaffPublic]


class RoleChange(BaseModel):
    """The role to give an account."""

    model_config = ConfigDict(extra="forbid")

    role: Role


class PasswordChange(BaseModel):
    """Change one's own password, proving the current one."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    new_password: str = Field(
        min_length=1,
        max_length=MAX_PASSWORD_LENGTH,
        description="at least SMSREG_PASSWORD_MIN_LENGTH characters (12 by default), not a "
        "common or easily guessed one, and not holding the username (422 otherwise)",
    )


class SessionsRevokedPublic(BaseModel):
    """How many live sessions an admin ended."""

    staff_id: str
    sessions_ended: int


def staff_public(account: StaffAccount) -> StaffPublic:
    """An account as admins and auditors see it (never its password hash)."""
    return StaffPublic.model_validate(account)


def detail_public(account: StaffAccount, history: list[StaffPermissionChange]) -> StaffDetailPublic:
    """An account with its permission history."""
    return StaffDetailPublic(
        **staff_public(account).model_dump(),
        permission_history=[PermissionChangePublic.model_validate(h) for h in history],
    )


def session_public(new: NewSession | Me) -> SessionPublic:
    """A session's deadlines."""
    return SessionPublic(
        id=new.session.id,
        created_at=new.session.created_at,
        expires_at=new.session.expires_at,
        idle_expires_at=new.idle_expires_at,
    )


def new_session_public(new: NewSession) -> NewSessionPublic:
    """A fresh login: the token, shown this once."""
    return NewSessionPublic(
        token=new.token,
        session=session_public(new),
        staff=StaffSummary.model_validate(new.staff),
        restrictions=list(new.staff.restrictions),
        password_expires_at=new.password_expires_at,
    )


def me_public(me: Me) -> MePublic:
    """The signed-in account and its current session."""
    account = me.account
    return MePublic(
        id=account.id,
        username=account.username,
        display_name=account.display_name,
        role=Role(account.role),
        password_changed_at=account.password_changed_at,
        last_login_at=account.last_login_at,
        session=session_public(me),
        restrictions=list(me.restrictions),
        password_expires_at=me.password_expires_at,
    )
