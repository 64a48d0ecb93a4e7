"""Permission dependencies, named for what they allow.

A permission dependency only reads the bearer API key and names the scope the route
needs; the route's unit of work then checks both first, in the same transaction as the
action (:func:`as_client`). One transaction per request instead of two: measured, the
separate authentication transaction was ~60 us of a ~500 us check. The key is still
looked up in the database on every request, so a revoked key stops working at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param

from app.core.context import Context
from app.core.db import Tx
from app.core.errors import AUTHENTICATE_FIRST, Forbidden, Unauthenticated
from app.staff import api_keys, roles, sessions
from app.staff.accounts import Staff
from app.staff.api_keys import Client
from app.staff.passwords import PASSWORD_EXPIRED, PasswordExpired
from app.staff.roles import Role
from app.staff.scopes import Scope
from app.staff.totp import TOTP_ENROLMENT_REQUIRED, TotpEnrolmentRequired

T = TypeVar("T")
# The refusal a restricted session gets on any other route (403, naming what to fix).
_RESTRICTED: dict[str, type[Forbidden]] = {
    PASSWORD_EXPIRED: PasswordExpired,
    TOTP_ENROLMENT_REQUIRED: TotpEnrolmentRequired,
}


@dataclass(frozen=True)
class Caller:
    """A request's API key and the scope its route needs, not yet checked."""

    token: str
    scope: Scope

    def authorize(self, tx: Tx, ctx: Context) -> Client:
        """The live client behind the key, or Unauthenticated / Forbidden."""
        client = api_keys.authenticate(tx, ctx, token=self.token)
        if self.scope.value not in client.scopes:
            raise Forbidden(f"this API key lacks the '{self.scope.value}' scope")
        return client


def as_client(
    tx: Tx, ctx: Context, *, caller: Caller, action: Callable[..., T], **kwargs: Any
) -> T:
    """Authorize the caller, then run ``action(tx, ctx, client=..., **kwargs)``: one unit.

    For ``db.run(as_client, ctx, caller=..., action=service.check, ...)``.
    """
    return action(tx, ctx, client=caller.authorize(tx, ctx), **kwargs)


class _ApiKey(SecurityBase):
    """The bearer API key of a request, for a route that needs ``scope``.

    The security scheme itself is the dependency (not a sub-dependency of one), which
    saves FastAPI a dependency level per request; the OpenAPI scheme is the same.
    """

    def __init__(self, scope: Scope) -> None:
        self.model = HTTPBearerModel(description="an API key (`smsreg_sk_...`)")
        self.scheme_name = "HTTPBearer"
        self.scope = scope

    async def __call__(self, request: Request) -> Caller:
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("send 'Authorization: Bearer <API key>'")
        caller = Caller(token=token, scope=self.scope)
        # If the request then fails validation, the key is checked before that is
        # answered, as when it was checked here: callers without a valid key learn
        # nothing about their input (see app.core.errors).
        request.scope[AUTHENTICATE_FIRST] = caller.authorize
        return caller


VerificationsWrite = Annotated[Caller, Depends(_ApiKey(Scope.VERIFICATIONS_WRITE))]


# -- staff sessions --------------------------------------------------------------------
# The same shape as the API keys above: the dependency only reads the bearer token and
# names the roles the route allows; the session and the role are checked first thing in
# the action's own transaction (as_staff), so a revoked session or a changed role
# applies to the very next request. Unauthenticated -> 401, another role -> 403.


@dataclass(frozen=True)
class StaffCaller:
    """A request's staff session token and the roles its route allows, not yet checked."""

    token: str
    roles: frozenset[Role]
    # Whether a restricted session (expired password, TOTP still to enrol) may use the
    # route: only the routes that fix the restriction, read /me or log out.
    restricted_ok: bool = False

    def authorize(self, tx: Tx, ctx: Context) -> Staff:
        """The live staff member behind the session, or Unauthenticated / Forbidden."""
        staff = sessions.authenticate(tx, ctx, token=self.token)
        if staff.restrictions and not self.restricted_ok:
            raise _RESTRICTED[staff.restrictions[0]]()
        if staff.role not in self.roles:
            raise Forbidden(f"the {staff.role.value} role may not do this")
        return staff


def as_staff(
    tx: Tx, ctx: Context, *, caller: StaffCaller, action: Callable[..., T], **kwargs: Any
) -> T:
    """Authorize the staff caller, then run ``action(tx, ctx, staff=..., **kwargs)``: one unit.

    For ``db.run(as_staff, ctx, caller=..., action=service.reveal, ...)``.
    """
    return action(tx, ctx, staff=caller.authorize(tx, ctx), **kwargs)


class StaffSessionScheme(SecurityBase):
    """The bearer staff session of a request, for a route that allows ``roles``."""

    def __init__(self, allowed: frozenset[Role], *, restricted_ok: bool = False) -> None:
        self.model = HTTPBearerModel(
            description="a staff session token (`smsreg_ss_...`) from POST /v1/staff/sessions"
        )
        self.scheme_name = "StaffSession"
        self.roles = allowed
        self.restricted_ok = restricted_ok

    async def __call__(self, request: Request) -> StaffCaller:
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("send 'Authorization: Bearer <staff session token>'")
        caller = StaffCaller(token=token, roles=self.roles, restricted_ok=self.restricted_ok)
        request.scope[AUTHENTICATE_FIRST] = caller.authorize  # as for API keys above
        return caller


AnyStaff = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.ALL_ROLES))]
# One's own credentials: also for a restricted session (issue 6), which may do only this.
OwnCredentials = Annotated[
    StaffCaller, Depends(StaffSessionScheme(roles.ALL_ROLES, restricted_ok=True))
]
SubscriberRead = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.SUBSCRIBER_READ))]
PhoneReveal = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.PHONE_REVEAL))]
AccessLogRead = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.ACCESS_LOG_READ))]
StaffAdmin = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.STAFF_ADMIN))]
StaffRead = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.STAFF_READ))]
PumpingRead = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.PUMPING_READ))]
PumpingAdmin = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.PUMPING_ADMIN))]
DisclosureRequester = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.DISCLOSURE_REQUEST))]
DisclosureDecider = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.DISCLOSURE_DECIDE))]
DisclosureReader = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.DISCLOSURE_READ))]
LedgerAuditor = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.LEDGER_AUDIT))]
SubjectRequests = Annotated[StaffCaller, Depends(StaffSessionScheme(roles.SUBJECT_REQUESTS))]
