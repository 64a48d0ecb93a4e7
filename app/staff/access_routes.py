"""/v1/staff invitations, enrolment, role grants under four eyes, unlocking, and the review
of what a person granted.

Included before app.staff.routes: ``/v1/staff/grants`` and ``/v1/staff/invitations``
must be matched before ``/v1/staff/{staff_id}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from app.core.deps import ClientIp, CtxDep, DbDep, TxDep
from app.core.errors import InvalidInput
from app.core.http import NO_STORE, ONE_VALUE_EACH, JsonRoute
from app.core.openapi import problems
from app.staff import accounts, grants, invitations, lockout, login
from app.staff.access_schemas import (
    EnrolledPublic,
    EnrolmentConfirm,
    EnrolmentStart,
    EnrolmentStartedPublic,
    GrantCreate,
    GrantListPublic,
    GrantPublic,
    GrantRejection,
    GrantStatus,
    InvitationCreate,
    InvitationCreatedPublic,
    InvitationListPublic,
    InvitationPublic,
    UnlockPublic,
    UnlockRequest,
    grant_public,
    invitation_public,
    open_invitation_public,
)
from app.staff.auth import STAFF_PROBLEMS, STAFF_REFUSALS, StaffAdmin, StaffRead
from app.staff.new_account import NewAccount
from app.staff.paths import STAFF_ID, StaffId
from app.staff.schemas import StaffListPublic, StaffSummary, staff_public

router = APIRouter(prefix="/v1/staff", tags=["staff"], route_class=JsonRoute)
GrantId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^grt_[A-Za-z0-9_\-]+$")]
InvitationId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^inv_[A-Za-z0-9_\-]+$")]
ANONYMOUS: dict[str, Any] = {"security": [{}]}  # an empty requirement: no credential


# -- invitations -------------------------------------------------------------------------


@router.post(
    "/invitations",
    status_code=201,
    responses={
        **STAFF_PROBLEMS,
        409: accounts.UsernameTaken.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Invite a person (admin): a one-time token with which they take the account up",
)
async def invite(
    body: InvitationCreate, staff: StaffAdmin, tx: TxDep, ctx: CtxDep, response: Response
) -> InvitationCreatedPublic:
    new = NewAccount(username=body.username, display_name=body.display_name, role=body.role)
    made = await invitations.invite(tx, ctx, actor=staff.actor, new=new)
    response.headers.update(NO_STORE)
    now = ctx.clock.now()
    return InvitationCreatedPublic(
        token=made.token,
        invitation=invitation_public(made.invitation),
        account=staff_public(made.account),
        grant=None if made.grant is None else grant_public(grants.view(made.grant, now)),
    )


@router.get("/invitations", responses=STAFF_PROBLEMS, summary="Open invitations (admin)")
async def list_invitations(staff: StaffAdmin, tx: TxDep, ctx: CtxDep) -> InvitationListPublic:
    found = await invitations.list_open(tx, ctx)
    now = ctx.clock.now()
    return InvitationListPublic(invitations=[open_invitation_public(f, now) for f in found])


@router.delete(
    "/invitations/{invitation_id}",
    responses={**STAFF_PROBLEMS, 404: invitations.InvitationNotFound.openapi()},
    summary="Revoke an open invitation (admin): its account, never active, is disabled",
)
async def revoke_invitation(
    invitation_id: InvitationId, staff: StaffAdmin, tx: TxDep, ctx: CtxDep
) -> InvitationPublic:
    revoked = await invitations.revoke(tx, ctx, actor=staff.actor, invitation_id=invitation_id)
    return invitation_public(revoked)


# -- enrolment: the invited person, with the token ----------------------------------------


@router.post(
    "/enrolment",
    responses={
        401: invitations.InvalidInvitation.openapi(),
        422: InvalidInput.openapi(),
    },
    openapi_extra=ANONYMOUS,
    summary="Take an invitation up: set one's own password; a TOTP secret to enrol, shown once",
)
async def start_enrolment(
    body: EnrolmentStart, db: DbDep, ctx: CtxDep, response: Response
) -> EnrolmentStartedPublic:
    started = await login.set_invited_password(db, ctx, token=body.token, password=body.password)
    response.headers.update(NO_STORE)
    return EnrolmentStartedPublic(
        username=started.account.username,
        secret=started.enrolment.secret,
        provisioning_uri=started.enrolment.provisioning_uri,
    )


@router.post(
    "/enrolment/confirm",
    responses={
        401: invitations.InvalidInvitation.openapi(),
        409: invitations.PasswordFirst.openapi(),
        422: InvalidInput.openapi(),
    },
    openapi_extra=ANONYMOUS,
    summary="Finish an invitation: a first TOTP code; recovery codes, shown once",
)
async def confirm_enrolment(
    body: EnrolmentConfirm, tx: TxDep, ctx: CtxDep, ip: ClientIp, response: Response
) -> EnrolledPublic:
    done = await invitations.complete(tx, ctx, token=body.token, code=body.code, ip=ip)
    response.headers.update(NO_STORE)
    return EnrolledPublic(
        account=StaffSummary.model_validate(done.account),
        active=done.active,
        recovery_codes=done.recovery_codes,
    )


# -- role grants under four eyes ------------------------------------------------------------


@router.get(
    "/grants",
    dependencies=[ONE_VALUE_EACH],
    responses={**STAFF_PROBLEMS, 422: InvalidInput.openapi()},
    summary="Role grant proposals, newest first (admin, auditor)",
)
async def list_grants(
    staff: StaffRead,
    tx: TxDep,
    ctx: CtxDep,
    status: Annotated[GrantStatus | None, Query()] = "pending",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> GrantListPublic:
    found = await grants.list_grants(tx, ctx, status=status, limit=limit)
    enrolled = await grants.enrolments(tx, found)
    return GrantListPublic(grants=[grant_public(g, enrolled.get(g.grant.id)) for g in found])


@router.post(
    f"/{STAFF_ID}/grants",
    status_code=201,
    responses={
        **problems(
            *STAFF_REFUSALS, accounts.OwnAccount, accounts.StaffNotFound, grants.GrantPending
        ),
    },
    summary="Propose privacy_officer or admin for an account (admin; another admin confirms)",
)
async def propose_grant(
    staff_id: StaffId, body: GrantCreate, staff: StaffAdmin, tx: TxDep, ctx: CtxDep
) -> GrantPublic:
    made = await grants.propose(tx, ctx, staff=staff, account_id=staff_id, role=body.role)
    return grant_public(grants.view(made, ctx.clock.now()))


@router.post(
    "/grants/{grant_id}/confirm",
    responses={
        **problems(*STAFF_REFUSALS, grants.OwnProposal, grants.GrantNotFound),
        409: grants.CONFIRM_CONFLICTS,
    },
    summary="Confirm a proposal (an admin other than its proposer): the role is granted",
)
async def confirm_grant(
    grant_id: GrantId, staff: StaffAdmin, tx: TxDep, ctx: CtxDep
) -> GrantPublic:
    confirmed = await invitations.confirm_grant(tx, ctx, staff=staff, grant_id=grant_id)
    enrolled = await grants.enrolments(tx, [confirmed])
    return grant_public(confirmed, enrolled.get(confirmed.grant.id))


@router.post(
    "/grants/{grant_id}/reject",
    responses={
        **STAFF_PROBLEMS,
        404: grants.GrantNotFound.openapi(),
        409: grants.GrantClosed.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Reject (or, as its proposer, withdraw) a proposal (admin)",
)
async def reject_grant(
    grant_id: GrantId,
    staff: StaffAdmin,
    tx: TxDep,
    ctx: CtxDep,
    body: GrantRejection | None = None,
) -> GrantPublic:
    reason = body.reason if body is not None else None
    return grant_public(await grants.reject(tx, ctx, staff=staff, grant_id=grant_id, reason=reason))


# -- unlocking and review ----------------------------------------------------------------------


@router.post(
    f"/{STAFF_ID}/unlock",
    responses={
        **problems(*STAFF_REFUSALS, accounts.OwnAccount, accounts.StaffNotFound),
    },
    summary="Unlock an account with a reason (admin; not one's own): failed logins forgiven",
)
async def unlock(
    staff_id: StaffId, body: UnlockRequest, staff: StaffAdmin, tx: TxDep, ctx: CtxDep
) -> UnlockPublic:
    done = await lockout.unlock(tx, ctx, staff=staff, account_id=staff_id, reason=body.reason)
    return UnlockPublic(
        account=staff_public(done.account),
        was_locked=done.was_locked,
        failures_cleared=done.failures_cleared,
    )


@router.get(
    f"/{STAFF_ID}/granted",
    dependencies=[ONE_VALUE_EACH],
    responses={
        **STAFF_PROBLEMS,
        404: accounts.StaffNotFound.openapi(),
        422: InvalidInput.openapi(),
    },
    summary="Accounts this person created or granted a role to, for review (admin, auditor)",
)
async def granted(
    staff_id: StaffId,
    staff: StaffRead,
    tx: TxDep,
    ctx: CtxDep,
    days: Annotated[int | None, Query(ge=1, le=3660)] = None,
) -> StaffListPublic:
    found = await accounts.granted_by(tx, ctx, account_id=staff_id, days=days)
    return StaffListPublic(staff=[staff_public(account) for account in found])
