"""/console/staff: accounts, invitations, role grants under four eyes, disable, offboard.

The admins' pages over app.staff's services, with the API's role sets: admins act,
auditors read. A privileged role (privacy officer, admin) is only ever proposed here;
a different admin confirms it. An invitation's token is shown once, on the page that
made it; offboarding shows each door it closed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from app.console.auth import ConsoleForm, ConsoleRoles
from app.console.web import Confirm, ConsoleRoute, checked, confirmed, staff_page
from app.core.deps import CtxDep, TxDep
from app.staff import accounts, grants, invitations, lockout, offboarding
from app.staff.access_schemas import (
    GrantCreate,
    GrantRejection,
    InvitationCreate,
    UnlockRequest,
)
from app.staff.auth import Staff
from app.staff.new_account import NewAccount
from app.staff.roles import PRIVILEGED, STAFF_ADMIN, STAFF_READ, Role

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

ReaderPage = Annotated[Staff, Depends(ConsoleRoles(STAFF_READ))]
AdminForm = Annotated[Staff, Depends(ConsoleForm(STAFF_ADMIN))]
StaffId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^stf_[A-Za-z0-9_\-]+$")]
GRANT_ID = r"^grt_[A-Za-z0-9_\-]+$"
INVITATION_ID = r"^inv_[A-Za-z0-9_\-]+$"
GrantId = Annotated[str, Path(min_length=5, max_length=40, pattern=GRANT_ID)]
InvitationId = Annotated[str, Path(min_length=5, max_length=40, pattern=INVITATION_ID)]
Short = Annotated[str, Form(max_length=200)]
BACK = "/console/staff"


def back(query: str = "") -> Response:
    """After an action: the staff page again (a reload does not repeat the action), with
    ``query`` naming what it is to say was done."""
    return RedirectResponse(BACK + query, status_code=303)


@router.get("/staff")
async def staff_list(
    request: Request,
    staff: ReaderPage,
    tx: TxDep,
    ctx: CtxDep,
    grant: Annotated[str | None, Query(max_length=40, pattern=GRANT_ID)] = None,
    invitation: Annotated[str | None, Query(max_length=40, pattern=INVITATION_ID)] = None,
) -> Response:
    admin = staff.role in STAFF_ADMIN
    # What a confirmation, a rejection or a revocation just did, as it stands (never what
    # a link claims): a proposal decided, an invitation revoked; else nothing is said.
    decided = await grants.get(tx, ctx, grant) if grant else None
    revoked = await invitations.get(tx, invitation) if invitation and admin else None
    everyone = await accounts.list_accounts(tx, ctx)
    pending = await grants.list_grants(tx, ctx, status="pending")
    now = ctx.clock.now()
    context = {
        "accounts": everyone,
        "standings": {a.id: accounts.standing(a, now) for a in everyone},
        "now": now,  # a break-glass admin's end: to come, or past
        # Grants name accounts by id and actors as staff:<id>: shown by username.
        "names": {f"staff:{a.id}": a.username for a in everyone}
        | {a.id: a.username for a in everyone},
        "grants": pending,
        # An invitation's proposal: enrolled when and from where, or not taken up yet
        # (it cannot be confirmed before).
        "enrolments": await grants.enrolments(tx, pending),
        "invitations": await invitations.list_open(tx, ctx) if admin else [],
        "admin": admin,
        "decided": decided if decided and decided.status in ("confirmed", "rejected") else None,
        "revoked": revoked if revoked and revoked.revoked_at else None,
        # Least privilege first: the role a form offers before anyone chooses.
        "roles": [
            role.value for role in (Role.OPERATOR, Role.AUDITOR, Role.PRIVACY_OFFICER, Role.ADMIN)
        ],
    }
    return staff_page(request, ctx, staff, "staff.html", context)


@router.post("/staff/invitations")
async def invite(
    request: Request,
    staff: AdminForm,
    tx: TxDep,
    ctx: CtxDep,
    username: Short,
    display_name: Short,
    role: Short,
) -> Response:
    body = checked(
        InvitationCreate, {"username": username, "display_name": display_name, "role": role}
    )
    new = NewAccount(username=body.username, display_name=body.display_name, role=body.role)
    made = await invitations.invite(tx, ctx, actor=staff.actor, new=new)
    return staff_page(request, ctx, staff, "invited.html", {"made": made})


@router.post("/staff/invitations/{invitation_id}/revoke")
async def revoke_invitation(
    invitation_id: InvitationId, staff: AdminForm, tx: TxDep, ctx: CtxDep
) -> Response:
    await invitations.revoke(tx, ctx, actor=staff.actor, invitation_id=invitation_id)
    return back(f"?invitation={invitation_id}")


@router.post("/staff/{staff_id}/role")
async def change_role(
    staff_id: StaffId, staff: AdminForm, tx: TxDep, ctx: CtxDep, role: Short
) -> Response:
    # One form for every role, as the API has two routes: operator and auditor are
    # given at once; privacy officer and admin are only proposed (four eyes).
    body = checked(GrantCreate, {"role": role})
    if body.role in PRIVILEGED:
        await grants.propose(tx, ctx, staff=staff, account_id=staff_id, role=body.role)
    else:
        await invitations.change_role(tx, ctx, staff=staff, account_id=staff_id, role=body.role)
    return back()


@router.post("/staff/{staff_id}/unlock")
async def unlock(
    staff_id: StaffId, staff: AdminForm, tx: TxDep, ctx: CtxDep, reason: Short
) -> Response:
    body = checked(UnlockRequest, {"reason": reason})
    await lockout.unlock(tx, ctx, staff=staff, account_id=staff_id, reason=body.reason)
    return back()


@router.post("/staff/grants/{grant_id}/confirm")
async def confirm(grant_id: GrantId, staff: AdminForm, tx: TxDep, ctx: CtxDep) -> Response:
    await invitations.confirm_grant(tx, ctx, staff=staff, grant_id=grant_id)
    return back(f"?grant={grant_id}")


@router.post("/staff/grants/{grant_id}/reject")
async def reject(
    grant_id: GrantId, staff: AdminForm, tx: TxDep, ctx: CtxDep, reason: Short = ""
) -> Response:
    body = checked(GrantRejection, {"reason": reason or None})
    await grants.reject(tx, ctx, staff=staff, grant_id=grant_id, reason=body.reason)
    return back(f"?grant={grant_id}")


@router.post("/staff/{staff_id}/disable")
async def disable(
    staff_id: StaffId, staff: AdminForm, tx: TxDep, ctx: CtxDep, confirm: Confirm = None
) -> Response:
    confirmed(confirm)
    await invitations.disable_account(tx, ctx, staff=staff, account_id=staff_id)
    return back()


@router.post("/staff/{staff_id}/offboard")
async def offboard(
    request: Request,
    staff_id: StaffId,
    staff: AdminForm,
    tx: TxDep,
    ctx: CtxDep,
    confirm: Confirm = None,
) -> Response:
    confirmed(confirm)
    done = await offboarding.offboard(tx, ctx, staff=staff, account_id=staff_id)
    return staff_page(request, ctx, staff, "offboarded.html", {"done": done})
