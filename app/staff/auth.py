"""Who a staff caller is: the bearer session, checked in the request's own transaction.

Each alias names what a route allows (``PhoneReveal``, ``StaffAdmin``), from the role
sets in app.staff.roles. The session and the account's role are read on every request,
so a revoked session, a disabled account or a changed role applies to the very next
request. No or a bad session answers 401; another role 403; a restricted session (an
expired password, TOTP still to enrol) answers 403 naming what to fix, except on the
routes that fix it.

The routes that hash a password (argon2, ~100 ms) must hold no transaction meanwhile:
their aliases (``OwnPassword``, ``StaffCreator``) check the session in a short
transaction of its own, and the route checks it again with :func:`reauthenticate` in
the transaction that writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials

from app.core.context import Context
from app.core.deps import CtxDep, DbDep, TxDep
from app.core.errors import AppError, Forbidden, Unauthenticated
from app.core.http import OneBearer
from app.core.openapi import problems
from app.core.tx import Tx
from app.credentials import passwords
from app.staff import repository as repo
from app.staff import roles
from app.staff.roles import Role

TOKEN_PREFIX = "smsreg_ss_"  # noqa: S105 (a label, not a secret)
MAX_TOKEN_LENGTH = 200
TOTP_ENROLMENT_REQUIRED = "totp_enrolment_required"


class TotpEnrolmentRequired(Forbidden):
    slug = "totp-enrolment-required"
    title = "This role needs a second factor: enrol TOTP first (POST /v1/staff/me/totp)"
    commit = True  # the session's use still counts (see RoleForbidden)


class RoleForbidden(Forbidden):
    # A refused request is still a use of the session: its idle timeout counts from it.
    # Nothing but that use is written before the staff dependency refuses.
    commit = True


# The refusal a restricted session gets on any other route (403, naming what to fix).
_RESTRICTED: dict[str, type[Forbidden]] = {
    passwords.PASSWORD_EXPIRED: passwords.PasswordExpired,
    TOTP_ENROLMENT_REQUIRED: TotpEnrolmentRequired,
}
# What every staff route answers before its own problems: no or a bad session (401),
# another role (403), and, on all but the routes a restricted session may use (those
# list AUTH_PROBLEMS instead), what that session must fix first (403).
STAFF_REFUSALS: tuple[type[AppError], ...] = (Unauthenticated, Forbidden, *_RESTRICTED.values())
STAFF_PROBLEMS = problems(*STAFF_REFUSALS)


@dataclass(frozen=True)
class Staff:
    """An authenticated staff member: what the rest of a request needs to know."""

    id: str
    username: str
    display_name: str
    role: Role
    session_id: str
    # What the session may only do until it is resolved (password_expired,
    # totp_enrolment_required); empty for a full session.
    restrictions: tuple[str, ...] = ()

    @property
    def actor(self) -> str:
        """How audit rows and histories name this person."""
        return f"staff:{self.id}"


def totp_required(ctx: Context, role: str) -> bool:
    """Whether a role must have a second factor."""
    return role in ctx.settings.totp_required_roles


def restrictions(
    ctx: Context,
    *,
    role: str,
    password_changed_at: dt.datetime,
    totp_enrolled: bool,
    now: dt.datetime,
) -> tuple[str, ...]:
    """What a session may only fix until it is fixed: a password past its maximum age, a
    role that needs TOTP without one enrolled. Worked out on every request, so a password
    expiring or a role changing applies to live sessions at once too."""
    found = []
    if passwords.is_expired(ctx.settings, password_changed_at, now):
        found.append(passwords.PASSWORD_EXPIRED)
    if totp_required(ctx, role) and not totp_enrolled:
        found.append(TOTP_ENROLMENT_REQUIRED)
    return tuple(found)


def idle_deadline(ctx: Context, last_seen_at: dt.datetime) -> dt.datetime:
    """When a session seen last at ``last_seen_at`` ends for want of use."""
    return last_seen_at + dt.timedelta(minutes=ctx.settings.session_idle_minutes)


def _idle_since(ctx: Context, now: dt.datetime) -> dt.datetime:
    """A session unseen since this instant has ended for want of use."""
    return now - dt.timedelta(minutes=ctx.settings.session_idle_minutes)


async def authenticate(tx: Tx, ctx: Context, *, token: str) -> Staff:
    """The live staff member behind a session token, or Unauthenticated (one answer for
    every failure: unknown, revoked, expired, idle too long, account disabled).

    An API key (``smsreg_sk_``) is never a session: the prefix differs, and the hash is
    looked up among sessions only.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("invalid or expired staff session")
    # Hashed under every key still in the ring, so a rotated token key keeps sessions.
    ring = ctx.keys.token
    raw = token.encode()
    now = ctx.clock.now()
    # The session's row first, its rights read after: see repo.use_session.
    used = await repo.use_session(
        tx,
        now=now,
        seen_since=_idle_since(ctx, now),
        hashes=[ring.mac(raw, key_id=kid).hex() for kid in ring.keys],
    )
    row = None if used is None else await repo.session_by_id(tx, used)
    if row is None or not _live(ctx, row, now=now):
        raise Unauthenticated("invalid or expired staff session")
    return _staff(ctx, row, now=now)


async def reauthenticate(
    tx: Tx, ctx: Context, *, staff: Staff, allowed: frozenset[Role], restricted_ok: bool = False
) -> Staff:
    """Check a signed-in member again in a later transaction (after a password was hashed
    outside one): the session still live, the account enabled, the role still allowed."""
    now = ctx.clock.now()
    used = await repo.use_session(
        tx, now=now, seen_since=_idle_since(ctx, now), session_id=staff.session_id
    )
    row = None if used is None else await repo.session_by_id(tx, used)
    if row is None or not _live(ctx, row, now=now):
        raise Unauthenticated("invalid or expired staff session")
    return _admit(_staff(ctx, row, now=now), allowed=allowed, restricted_ok=restricted_ok)


def account_usable(
    *,
    disabled_at: dt.datetime | None,
    pending: bool,
    expires_at: dt.datetime | None,
    now: dt.datetime,
) -> bool:
    """Whether an account may act: enabled, active (an invitation taken up, a privileged
    grant confirmed), and not past its end (a break-glass admin)."""
    return disabled_at is None and not pending and (expires_at is None or expires_at > now)


def _live(ctx: Context, row: repo.SessionOfStaff, *, now: dt.datetime) -> bool:
    return (
        row.revoked_at is None
        and account_usable(
            disabled_at=row.disabled_at,
            pending=row.activation_pending,
            expires_at=row.account_expires_at,
            now=now,
        )
        and row.expires_at > now
        and idle_deadline(ctx, row.last_seen_at) > now
    )


def _staff(ctx: Context, row: repo.SessionOfStaff, *, now: dt.datetime) -> Staff:
    return Staff(
        id=row.staff_id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        session_id=row.session_id,
        restrictions=restrictions(
            ctx,
            role=row.role,
            password_changed_at=row.password_changed_at,
            totp_enrolled=row.totp_confirmed_at is not None,
            now=now,
        ),
    )


bearer = OneBearer(
    scheme_name="StaffSession",
    description="a staff session token (`smsreg_ss_...`) from POST /v1/staff/sessions",
    auto_error=False,
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


class StaffRoles:
    """The dependency for staff routes: the signed-in member, if their role may."""

    def __init__(self, allowed: frozenset[Role], *, restricted_ok: bool = False) -> None:
        self.allowed = allowed
        # Whether a restricted session may use the route: only the routes that fix the
        # restriction, read /me or log out.
        self.restricted_ok = restricted_ok

    async def __call__(self, credentials: Credentials, tx: TxDep, ctx: CtxDep) -> Staff:
        return await self.admit(tx, ctx, credentials)

    async def admit(
        self, tx: Tx, ctx: Context, credentials: HTTPAuthorizationCredentials | None
    ) -> Staff:
        """The signed-in member, if their session is live and their role may."""
        if credentials is None:
            raise Unauthenticated("send 'Authorization: Bearer <staff session token>'")
        staff = await authenticate(tx, ctx, token=credentials.credentials)
        return _admit(staff, allowed=self.allowed, restricted_ok=self.restricted_ok)


class StaffRolesApart(StaffRoles):
    """The same check in a short transaction of its own, for a route that must hold none
    while it hashes a password; the route checks again with :func:`reauthenticate`."""

    async def __call__(  # type: ignore[override]
        self, credentials: Credentials, db: DbDep, ctx: CtxDep
    ) -> Staff:
        async with db.transaction() as tx:
            return await self.admit(tx, ctx, credentials)


def _admit(staff: Staff, *, allowed: frozenset[Role], restricted_ok: bool) -> Staff:
    if staff.restrictions and not restricted_ok:
        raise _RESTRICTED[staff.restrictions[0]]()
    if staff.role not in allowed:
        raise RoleForbidden(f"the {staff.role.value} role may not do this")
    return staff


AnyStaff = Annotated[Staff, Depends(StaffRoles(roles.ALL_ROLES))]
# One's own credentials: also for a restricted session, which may do only this.
OwnCredentials = Annotated[Staff, Depends(StaffRoles(roles.ALL_ROLES, restricted_ok=True))]
SubscriberRead = Annotated[Staff, Depends(StaffRoles(roles.SUBSCRIBER_READ))]
PhoneReveal = Annotated[Staff, Depends(StaffRoles(roles.PHONE_REVEAL))]
AccessLogRead = Annotated[Staff, Depends(StaffRoles(roles.ACCESS_LOG_READ))]
StaffAdmin = Annotated[Staff, Depends(StaffRoles(roles.STAFF_ADMIN))]
StaffRead = Annotated[Staff, Depends(StaffRoles(roles.STAFF_READ))]
PumpingRead = Annotated[Staff, Depends(StaffRoles(roles.PUMPING_READ))]
PumpingAdmin = Annotated[Staff, Depends(StaffRoles(roles.PUMPING_ADMIN))]
DisclosureRequester = Annotated[Staff, Depends(StaffRoles(roles.DISCLOSURE_REQUEST))]
DisclosureDecider = Annotated[Staff, Depends(StaffRoles(roles.DISCLOSURE_DECIDE))]
DisclosureReader = Annotated[Staff, Depends(StaffRoles(roles.DISCLOSURE_READ))]
LedgerAuditor = Annotated[Staff, Depends(StaffRoles(roles.LEDGER_AUDIT))]
LedgerExporter = Annotated[Staff, Depends(StaffRoles(roles.LEDGER_EXPORT))]
SubjectRequests = Annotated[Staff, Depends(StaffRoles(roles.SUBJECT_REQUESTS))]
SubjectRequestsRead = Annotated[Staff, Depends(StaffRoles(roles.SUBJECT_REQUESTS_READ))]
# The two routes that hash a password, checked outside the request's transaction: one's
# own password change, and an admin creating an account.
OwnPassword = Annotated[Staff, Depends(StaffRolesApart(roles.ALL_ROLES, restricted_ok=True))]
StaffCreator = Annotated[Staff, Depends(StaffRolesApart(roles.STAFF_ADMIN))]
