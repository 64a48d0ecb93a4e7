"""Role grants under four eyes: granting privacy_officer or admin is a proposal that a
different admin confirms or rejects.

A proposal comes with an invitation for a new account (``kind`` invitation) or promotes
an existing one (``kind`` change). Only its confirmation grants the role: it is written
in the permission history with both names, the proposer as ``actor`` and the second
admin as ``confirmed_by``. Neither the proposer nor the account's owner may confirm;
any admin may reject (the proposer's rejection is a withdrawal). A proposal lives
``SMSREG_STAFF_GRANT_HOURS`` (72 h); offboarding its proposer cancels it.

Lower roles (operator, auditor) need no second admin; their accounts still come only
by invitation, so nobody but the owner knows their password or second factor.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import AppError, Forbidden, InvalidInput, NotFound, problem_answer
from app.core.ids import new_id
from app.core.tx import Tx
from app.models.staff import StaffAccount, StaffInvitation, StaffRoleGrant
from app.staff import accounts, roles
from app.staff import grants_repository as grepo
from app.staff import repository as repo
from app.staff.auth import Staff
from app.staff.roles import Role

INVITATION = "invitation"
CHANGE = "change"


class GrantNotFound(NotFound):
    slug = "grant-not-found"
    title = "No such role grant proposal"


class GrantClosed(AppError):
    status = 409
    slug = "grant-not-pending"
    title = "The proposal is no longer pending (confirmed, rejected, cancelled or expired)"


class InvitationNotTakenUp(AppError):
    status = 409
    slug = "invitation-not-taken-up"
    title = "The invitation is not taken up yet: confirm once its owner has enrolled"


# What confirming a proposal answers with 409, for the OpenAPI document: any cause.
CONFIRM_CONFLICTS = problem_answer(
    "; or ".join(
        f"{cause.title if i == 0 else cause.title[0].lower() + cause.title[1:]} (`{cause.slug}`)"
        for i, cause in enumerate((GrantClosed, InvitationNotTakenUp, accounts.LastAdmin))
    )
)


class GrantPending(AppError):
    status = 409
    slug = "grant-pending"
    title = "The account has a pending proposal: confirm or reject it first"


class OwnProposal(Forbidden):
    slug = "grant-own-proposal"
    title = "A different admin must confirm: not the proposer, not the account's owner"


@dataclass(frozen=True)
class GrantView:
    """A proposal and its effective status (a pending one past its end is ``expired``)."""

    grant: StaffRoleGrant
    status: str


def view(grant: StaffRoleGrant, now: dt.datetime) -> GrantView:
    """A proposal as it stands at ``now``."""
    expired = grant.status == "pending" and grant.expires_at <= now
    return GrantView(grant=grant, status="expired" if expired else grant.status)


async def _new(
    tx: Tx, ctx: Context, *, actor: str, account: StaffAccount, role: Role, kind: str
) -> StaffRoleGrant:
    now = ctx.clock.now()
    if await grepo.pending_grant_for(tx, account.id, now=now) is not None:
        raise GrantPending(f"staff account {account.id} has a pending proposal")
    grant = StaffRoleGrant(
        id=new_id("grt"),
        staff_id=account.id,
        role=role.value,
        old_role=None if kind == INVITATION else account.role,
        kind=kind,
        status="pending",
        proposed_by=actor,
        proposed_at=now,
        expires_at=now + dt.timedelta(hours=ctx.settings.staff_grant_hours),
    )
    await grepo.insert_grant(tx, grant)
    await record_event(
        tx,
        Tag.STAFF_GRANT_PROPOSED,
        actor=actor,
        at=now,
        subject=account.id,
        details={"grant_id": grant.id, "role": role.value, "kind": kind},
    )
    return grant


async def propose_for_invitation(
    tx: Tx, ctx: Context, *, actor: str, account: StaffAccount
) -> StaffRoleGrant:
    """The proposal an invitation with a privileged role comes with."""
    return await _new(
        tx, ctx, actor=actor, account=account, role=Role(account.role), kind=INVITATION
    )


async def propose(
    tx: Tx, ctx: Context, *, staff: Staff, account_id: str, role: Role
) -> StaffRoleGrant:
    """Propose to promote an account to a privileged role (an admin; not for oneself)."""
    if role not in roles.PRIVILEGED:
        raise InvalidInput.field(
            "role", "needs no second admin: change it directly (PUT /v1/staff/{id}/role)"
        )
    if account_id == staff.id:
        raise accounts.OwnAccount("another admin must propose a role for this account")
    account = await accounts.held(tx, account_id)
    if account.disabled_at is not None:
        raise accounts.AccountDisabled(f"staff account {account_id} is disabled")
    if account.role == role.value:
        raise InvalidInput.field("role", "the account holds this role already")
    if account.activation_pending:
        raise InvalidInput.field("role", "the account is invited: revoke and invite anew")
    return await _new(tx, ctx, actor=staff.actor, account=account, role=role, kind=CHANGE)


async def _held_pending(tx: Tx, ctx: Context, grant_id: str) -> tuple[StaffRoleGrant, StaffAccount]:
    """A pending proposal and the account it names, both held until commit.

    The account first (its sessions, then it), then the proposal: the order in which
    disabling or demoting the account takes them, since those cancel its proposals, so
    the two wait for each other instead of deadlocking.
    """
    named = await grepo.get_grant(tx, grant_id)
    if named is None:
        raise GrantNotFound(f"no role grant proposal {grant_id}")
    account = await accounts.held_with_sessions(tx, named.staff_id)
    grant = await grepo.get_grant(tx, grant_id, for_update=True)
    if grant is None:  # a proposal is never deleted while it could be pending
        raise GrantNotFound(f"no role grant proposal {grant_id}")
    state = view(grant, ctx.clock.now()).status
    if state != "pending":
        raise GrantClosed(f"the proposal is {state}")
    return grant, account


async def confirm(tx: Tx, ctx: Context, *, staff: Staff, grant_id: str) -> GrantView:
    """Confirm a proposal: a different admin than its proposer, and not its subject.

    The role is granted now and written in the permission history with both names. An
    invitation's proposal is confirmed only once its owner has enrolled, so the second
    admin has someone to check with and sees where the enrolment came from; before, the
    inviting admin, who holds the token, could take the role up alone.
    """
    grant, account = await _held_pending(tx, ctx, grant_id)
    if staff.actor == grant.proposed_by or staff.id == grant.staff_id:
        raise OwnProposal("a different admin must confirm this proposal")
    if account.disabled_at is not None:
        raise accounts.AccountDisabled(f"staff account {account.id} is disabled")
    now = ctx.clock.now()
    if not await accounts.admin_who_can_act(tx, grant.proposed_by, now, since=grant.proposed_at):
        # Demoted, disabled or past a break-glass end since it proposed: the proposal no
        # longer has an admin behind it, whichever way that came about.
        raise GrantClosed("its proposer is no longer an admin who can act")
    if account.activation_pending and not await grepo.redeemed_invitations(tx, [account.id]):
        raise InvitationNotTakenUp(
            "confirm once the invited person has enrolled, and check with them first"
        )
    if account.role != (grant.old_role if grant.kind == CHANGE else grant.role):
        raise GrantClosed(f"the account's role changed since: it is {account.role} now")
    if grant.kind == CHANGE:
        if account.role == Role.ADMIN:
            await tx.lock("staff:admins")
            if await repo.other_active_admins(tx, account.id) == 0:
                raise accounts.LastAdmin("this account is the last active admin")
        await repo.update_account(tx, account.id, role=grant.role)
    await grepo.decide_grant(tx, grant.id, status="confirmed", by=staff.actor, at=now, reason=None)
    await accounts.record_permission(
        tx, account_id=account.id, change="grant" if grant.kind == INVITATION else "change",
        old_role=grant.old_role, new_role=grant.role, actor=grant.proposed_by, at=now,
        confirmed_by=staff.actor,
    )  # fmt: skip
    await record_event(
        tx,
        Tag.STAFF_GRANT_CONFIRMED,
        actor=staff.actor,
        at=now,
        subject=account.id,
        details={"grant_id": grant.id, "role": grant.role, "proposed_by": grant.proposed_by},
    )
    if account.activation_pending:  # enrolled (above): active from now
        await activate(tx, ctx, account_id=account.id, actor=staff.actor, now=now)
    closed = grant.model_copy(update={"status": "confirmed", "decided_by": staff.actor})
    return GrantView(grant=closed.model_copy(update={"decided_at": now}), status="confirmed")


async def reject(
    tx: Tx, ctx: Context, *, staff: Staff, grant_id: str, reason: str | None = None
) -> GrantView:
    """Reject (or, by its proposer, withdraw) a proposal. An invited account whose role
    was refused never becomes active: its invitation is revoked and it is disabled."""
    grant, _account = await _held_pending(tx, ctx, grant_id)
    now = ctx.clock.now()
    await close(tx, ctx, grant=grant, status="rejected", actor=staff.actor, now=now, reason=reason)
    closed = grant.model_copy(
        update={
            "status": "rejected",
            "decided_by": staff.actor,
            "decided_at": now,
            "reason": reason,
        }
    )
    return GrantView(grant=closed, status="rejected")


async def close(
    tx: Tx,
    ctx: Context,
    *,
    grant: StaffRoleGrant,
    status: str,
    actor: str,
    now: dt.datetime,
    reason: str | None = None,
) -> None:
    """End a pending proposal without granting (rejected, or cancelled when its proposer
    leaves or its invitation is revoked)."""
    if not await grepo.decide_grant(tx, grant.id, status=status, by=actor, at=now, reason=reason):
        return  # closed meanwhile
    await record_event(
        tx,
        Tag.STAFF_GRANT_REJECTED if status == "rejected" else Tag.STAFF_GRANT_CANCELLED,
        actor=actor,
        at=now,
        subject=grant.staff_id,
        details={"grant_id": grant.id, "role": grant.role, "proposed_by": grant.proposed_by},
    )
    if grant.kind != INVITATION:
        return
    account = await accounts.held_with_sessions(tx, grant.staff_id)
    if account.activation_pending and account.disabled_at is None:
        await repo.update_account(tx, account.id, disabled_at=now)
        for invitation in await grepo.open_invitations(tx, now=now, staff_id=account.id):
            await grepo.update_invitation(tx, invitation.id, revoked_at=now, revoked_by=actor)


async def activate(tx: Tx, ctx: Context, *, account_id: str, actor: str, now: dt.datetime) -> None:
    """Make an invited account active (its owner enrolled; a privileged role confirmed)."""
    await repo.update_account(tx, account_id, activation_pending=False)
    await record_event(tx, Tag.STAFF_ACTIVATED, actor=actor, at=now, subject=account_id)


async def enrolments(tx: Tx, grants: list[GrantView]) -> dict[str, StaffInvitation | None]:
    """For each invitation's proposal among ``grants``, by the proposal's id: the
    invitation its owner enrolled with (when and where from, for the confirming admin),
    or None while nobody has taken it up."""
    invited = [g.grant for g in grants if g.grant.kind == INVITATION]
    enrolled = await grepo.redeemed_invitations(tx, [grant.staff_id for grant in invited])
    return {grant.id: enrolled.get(grant.staff_id) for grant in invited}


async def get(tx: Tx, ctx: Context, grant_id: str) -> GrantView | None:
    """One proposal as it stands now, or None."""
    grant = await grepo.get_grant(tx, grant_id)
    return None if grant is None else view(grant, ctx.clock.now())


async def list_grants(
    tx: Tx, ctx: Context, *, status: str | None = "pending", limit: int = 100
) -> list[GrantView]:
    """Proposals, newest first; ``status`` pending lists only live ones."""
    now = ctx.clock.now()
    stored = "pending" if status == "expired" else status
    found = [view(g, now) for g in await grepo.list_grants(tx, status=stored, limit=limit)]
    return [g for g in found if status is None or g.status == status]
