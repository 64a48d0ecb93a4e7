"""Invitations: a new account is taken up by its owner, who alone knows its password and
second factor.

An admin invites a person (username, name, role): the account is made inactive, with
an unusable password, and a one-time token (``smsreg_inv_...``, shown once, stored as a
keyed hash) is handed to the person, out of band. With it, anonymously, they

1. set their own password (:func:`check_token`, the hash made outside any transaction,
   then :func:`set_password`), which starts a TOTP enrolment: its secret is shown once;
2. confirm the TOTP with a first code (:func:`complete`): the token is used up, the
   recovery codes are shown once, and the account becomes active, unless its role is
   privileged and the second admin has not confirmed the grant yet
   (app.staff.grants; the account becomes active at that confirmation).

Until then the account can do nothing: it cannot log in. An invitation expires after
``SMSREG_STAFF_INVITATION_HOURS`` (72 h) and can be revoked; revoking it, or rejecting
its grant, disables the account, which was never active.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import AppError, NotFound, Unauthenticated
from app.core.ids import new_id
from app.core.tx import Tx
from app.credentials import passwords, totp
from app.credentials.totp import Enrolment
from app.models.staff import StaffAccount, StaffInvitation, StaffRoleGrant
from app.staff import accounts, grants, roles
from app.staff import grants_repository as grepo
from app.staff import repository as repo
from app.staff.auth import Staff
from app.staff.new_account import NewAccount
from app.staff.roles import Role

TOKEN_PREFIX = "smsreg_inv_"  # noqa: S105 (a label, not a secret)
MAX_TOKEN_LENGTH = 200
MAX_IP_LENGTH = 64


class InvalidInvitation(Unauthenticated):
    slug = "invalid-invitation"
    title = "The invitation is unknown, used, revoked or expired"
    taken_up = False  # used: its account was made (a page can say to sign in)


class InvitationNotFound(NotFound):
    slug = "invitation-not-found"
    title = "No such open invitation"


class PasswordFirst(AppError):
    status = 409
    slug = "invitation-password-first"
    title = "Set a password with the invitation first"


@dataclass(frozen=True)
class NewInvitation:
    """A fresh invitation: the only moment the raw token exists."""

    token: str
    invitation: StaffInvitation
    account: StaffAccount
    grant: StaffRoleGrant | None


@dataclass(frozen=True)
class OpenInvitation:
    """An invitation still open, with its account and the grant it waits for, if any."""

    invitation: StaffInvitation
    account: StaffAccount
    grant: StaffRoleGrant | None


@dataclass(frozen=True)
class Enrolled:
    """A finished enrolment: the recovery codes, shown once, and whether the account is
    active (a privileged role may still wait for the second admin)."""

    account: StaffAccount
    recovery_codes: list[str]
    active: bool


async def invite(tx: Tx, ctx: Context, *, actor: str, new: NewAccount) -> NewInvitation:
    """Make an inactive account and its invitation; a privileged role also gets a grant
    proposal. ``actor``: ``staff:<id>`` of the admin (or ``cli``)."""
    now = ctx.clock.now()
    account = StaffAccount(
        id=new_id("stf"),
        username=new.username,
        display_name=new.display_name,
        role=new.role.value,
        # Verifying against a hash of a password nobody knows costs what a real one costs.
        password_hash=passwords.dummy_hash(ctx.settings),
        password_changed_at=now,
        failed_logins=0,
        created_by=actor,
        created_at=now,
        activation_pending=True,
    )
    if not await repo.insert_account(tx, account):
        raise accounts.UsernameTaken(f"the username {new.username!r} is taken")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    invitation = StaffInvitation(
        id=new_id("inv"),
        staff_id=account.id,
        token_hash=ctx.keys.token_hash(token),
        token_key_id=ctx.keys.token.active_id,
        created_by=actor,
        created_at=now,
        expires_at=now + dt.timedelta(hours=ctx.settings.staff_invitation_hours),
    )
    await grepo.insert_invitation(tx, invitation)
    grant = None
    if new.role in roles.PRIVILEGED:
        grant = await grants.propose_for_invitation(tx, ctx, actor=actor, account=account)
    else:
        await accounts.record_permission(
            tx, account_id=account.id, change="grant", old_role=None, new_role=account.role,
            actor=actor, at=now,
        )  # fmt: skip
    await record_event(
        tx,
        Tag.STAFF_INVITED,
        actor=actor,
        at=now,
        subject=account.id,
        details={
            "username": account.username,
            "role": account.role,
            "invitation_id": invitation.id,
            "expires_at": invitation.expires_at.isoformat(),
            "grant_id": grant.id if grant is not None else None,
        },
    )
    return NewInvitation(token=token, invitation=invitation, account=account, grant=grant)


async def get(tx: Tx, invitation_id: str) -> StaffInvitation | None:
    """One invitation, whatever its state, or None."""
    return await grepo.get_invitation(tx, invitation_id)


async def list_open(tx: Tx, ctx: Context) -> list[OpenInvitation]:
    """Invitations neither redeemed, revoked nor expired, oldest first."""
    now = ctx.clock.now()
    found = []
    for invitation in await grepo.open_invitations(tx, now=now):
        account = await accounts.held(tx, invitation.staff_id)
        grant = await grepo.pending_grant_for(tx, account.id, now=now)
        found.append(OpenInvitation(invitation=invitation, account=account, grant=grant))
    return found


async def revoke(tx: Tx, ctx: Context, *, actor: str, invitation_id: str) -> StaffInvitation:
    """Revoke an open invitation: its account, never active, is disabled, and a grant it
    waited for is cancelled."""
    invitation = await grepo.get_invitation(tx, invitation_id, for_update=True)
    now = ctx.clock.now()
    if invitation is None or not _open(invitation, now):
        raise InvitationNotFound(f"no open invitation {invitation_id}")
    await _revoke(tx, ctx, invitation=invitation, actor=actor, now=now)
    return invitation.model_copy(update={"revoked_at": now, "revoked_by": actor})


async def _revoke(
    tx: Tx, ctx: Context, *, invitation: StaffInvitation, actor: str, now: dt.datetime
) -> None:
    await grepo.update_invitation(tx, invitation.id, revoked_at=now, revoked_by=actor)
    account = await accounts.held(tx, invitation.staff_id)
    if account.activation_pending and account.disabled_at is None:
        await repo.update_account(tx, account.id, disabled_at=now)
        await accounts.record_permission(
            tx, account_id=account.id, change="revoke", old_role=account.role, new_role=None,
            actor=actor, at=now,
        )  # fmt: skip
    for grant in await grepo.pending_grants(tx, staff_id=account.id):
        await grants.close(tx, ctx, grant=grant, status="cancelled", actor=actor, now=now)
    await record_event(
        tx,
        Tag.STAFF_INVITATION_REVOKED,
        actor=actor,
        at=now,
        subject=account.id,
        details={"invitation_id": invitation.id},
    )


async def _revoke_open(
    tx: Tx, ctx: Context, *, staff_id: str, actor: str, now: dt.datetime
) -> None:
    """Revoke an account's own open invitation (none, or one)."""
    for invitation in await grepo.open_invitations(tx, now=now, staff_id=staff_id):
        await _revoke(tx, ctx, invitation=invitation, actor=actor, now=now)


async def revoke_created_by(tx: Tx, ctx: Context, *, creator: str, actor: str) -> list[str]:
    """Revoke every open invitation ``creator`` made (offboarding); their ids."""
    now = ctx.clock.now()
    found = await grepo.open_invitations(tx, now=now, created_by=creator)
    for invitation in found:
        await _revoke(tx, ctx, invitation=invitation, actor=actor, now=now)
    return [invitation.id for invitation in found]


async def disable_account(
    tx: Tx, ctx: Context, *, staff: Staff | None, account_id: str
) -> StaffAccount:
    """Disable an account (:func:`accounts.disable`), revoke its own open invitation (an
    invited account disabled before it was taken up: the token stayed open, and taking
    it up answered as if the account were active) and those it made, and cancel the
    pending proposals that name it or that it made (:func:`_withdraw`). ``staff`` None
    is the command line."""
    account = await accounts.disable(tx, ctx, staff=staff, account_id=account_id)
    actor = staff.actor if staff is not None else accounts.CLI_ACTOR
    await _revoke_open(tx, ctx, staff_id=account_id, actor=actor, now=ctx.clock.now())
    await _withdraw(tx, ctx, account_id=account_id, actor=actor)
    return account


async def change_role(
    tx: Tx, ctx: Context, *, staff: Staff, account_id: str, role: Role
) -> StaffAccount:
    """Give an account an unprivileged role (:func:`accounts.change_role`), revoke the open
    invitations it made and cancel the pending proposals that name it or that it made
    (:func:`_withdraw`): a demoted admin's proposals would otherwise stay open for another
    admin to confirm, the proposer no longer an admin, and the invitations whose tokens
    the admin saw would let them take up another account."""
    # Read without a lock: accounts.change_role holds the account's sessions, then the
    # account, in the order its own requests take them (a lock on the account first
    # could deadlock with one of them).
    before = await repo.get_account(tx, account_id)
    account = await accounts.change_role(tx, ctx, staff=staff, account_id=account_id, role=role)
    if before is not None and before.role != role.value:
        await _withdraw(tx, ctx, account_id=account_id, actor=staff.actor)
    return account


async def confirm_grant(tx: Tx, ctx: Context, *, staff: Staff, grant_id: str) -> grants.GrantView:
    """Confirm a proposal (:func:`grants.confirm`). An admin it moves to another role
    leaves no invitation open and no proposal pending, as one demoted directly: they
    could never be taken up or confirmed (the admin who made them no longer is one), and
    would stay listed for good, a pending one blocking a new proposal for its account."""
    confirmed = await grants.confirm(tx, ctx, staff=staff, grant_id=grant_id)
    grant = confirmed.grant
    left_admin = grant.old_role == roles.Role.ADMIN and grant.role != roles.Role.ADMIN
    if grant.kind == grants.CHANGE and left_admin:
        await _withdraw(tx, ctx, account_id=grant.staff_id, actor=staff.actor)
    return confirmed


async def _withdraw(tx: Tx, ctx: Context, *, account_id: str, actor: str) -> None:
    """What an account disabled or demoted leaves behind: the open invitations it made
    (whoever holds a token takes the account up, and the inviting admin saw it) are
    revoked, and its pending proposals cancelled."""
    await revoke_created_by(tx, ctx, creator=f"staff:{account_id}", actor=actor)
    await cancel_pending(tx, ctx, account_id=account_id, actor=actor, now=ctx.clock.now())


async def cancel_pending(
    tx: Tx, ctx: Context, *, account_id: str, actor: str, now: dt.datetime
) -> list[StaffRoleGrant]:
    """Cancel the pending proposals that name an account disabled or given another role,
    or that it made: none of them can be confirmed any more, and they would wait on the
    admins' dashboard until they expired. A proposal that came with an invitation ends
    with its invitation, revoked as any (recorded, its never-active account disabled).
    The proposals, by id."""
    found = {
        grant.id: grant
        for grant in [
            *await grepo.pending_grants(tx, staff_id=account_id),
            *await grepo.pending_grants(tx, proposed_by=f"staff:{account_id}"),
        ]
    }
    cancelled = [found[grant_id] for grant_id in sorted(found)]
    for grant in cancelled:
        if grant.kind == grants.INVITATION:
            await _revoke_open(tx, ctx, staff_id=grant.staff_id, actor=actor, now=now)
        await grants.close(tx, ctx, grant=grant, status="cancelled", actor=actor, now=now)
    return cancelled


def _open(invitation: StaffInvitation, now: dt.datetime) -> bool:
    return (
        invitation.redeemed_at is None
        and invitation.revoked_at is None
        and invitation.expires_at > now
    )


async def _by_token(tx: Tx, ctx: Context, token: str, *, hold: bool) -> StaffInvitation:
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidInvitation()
    ring = ctx.keys.token
    hashes = [ring.mac(token.encode(), key_id=kid).hex() for kid in ring.keys]
    invitation = await grepo.invitation_by_hashes(tx, hashes, for_update=hold)
    now = ctx.clock.now()
    if invitation is None or not _open(invitation, now):
        refused = InvalidInvitation()
        refused.taken_up = invitation is not None and invitation.redeemed_at is not None
        raise refused
    if not await accounts.admin_who_can_act(
        tx, invitation.created_by, now, since=invitation.created_at
    ):
        # Its admin left the role however (disabled, demoted, a break-glass end) since:
        # they saw the token, and an account must not come of their word any more.
        raise InvalidInvitation()
    return invitation


async def check_token(tx: Tx, ctx: Context, *, token: str) -> StaffAccount:
    """The account an open invitation is for (checked before a password is hashed, so
    no stranger makes the service spend argon2 time); InvalidInvitation otherwise."""
    invitation = await _by_token(tx, ctx, token, hold=False)
    return await accounts.held(tx, invitation.staff_id)


async def hash_own_password(ctx: Context, *, account: StaffAccount, password: str) -> str:
    """The owner's chosen password, checked against the policy and hashed in worker
    threads: between :func:`check_token` and :func:`set_password`, outside a transaction."""
    await passwords.check_policy_apart(password, settings=ctx.settings, username=account.username)
    return await passwords.hash_password(ctx.settings, password)


async def set_password(tx: Tx, ctx: Context, *, token: str, password_hash: str) -> Enrolment:
    """Store the owner's password (hashed by the caller) and start their TOTP enrolment:
    its secret, shown this once. May be repeated until :func:`complete`."""
    invitation = await _by_token(tx, ctx, token, hold=True)
    account = await accounts.held(tx, invitation.staff_id)
    now = ctx.clock.now()
    await repo.update_account(tx, account.id, password_hash=password_hash, password_changed_at=now)
    await grepo.update_invitation(tx, invitation.id, password_set_at=now)
    actor = f"staff:{account.id}"
    await totp.remove(tx, staff_id=account.id)  # a repeat starts the enrolment afresh
    await record_event(
        tx,
        Tag.STAFF_INVITATION_PASSWORD_SET,
        actor=actor,
        at=now,
        subject=account.id,
        details={"invitation_id": invitation.id},
    )
    return await totp.start_enrolment(
        tx, ctx, staff_id=account.id, username=account.username, actor=actor
    )


async def pending_enrolment(tx: Tx, ctx: Context, *, token: str) -> Enrolment | None:
    """The invited account's enrolment not yet confirmed (its secret, to show again after
    a mistyped first code), or None."""
    invitation = await _by_token(tx, ctx, token, hold=False)
    account = await accounts.held(tx, invitation.staff_id)
    return await totp.pending_enrolment(tx, ctx, staff_id=account.id, username=account.username)


async def complete(tx: Tx, ctx: Context, *, token: str, code: str, ip: str) -> Enrolled:
    """Confirm the TOTP enrolment with a first code: the invitation is used up, and the
    account active unless a privileged role still waits for its second admin."""
    invitation = await _by_token(tx, ctx, token, hold=True)
    if invitation.password_set_at is None:
        raise PasswordFirst("set a password with the invitation first")
    account = await accounts.held(tx, invitation.staff_id)
    actor = f"staff:{account.id}"
    codes = await totp.confirm_enrolment(tx, ctx, staff_id=account.id, actor=actor, code=code)
    now = ctx.clock.now()
    await grepo.update_invitation(
        tx, invitation.id, redeemed_at=now, redeemed_ip=ip[:MAX_IP_LENGTH]
    )
    active = account.role not in roles.PRIVILEGED or await grepo.confirmed_grant_of(
        tx, account.id, account.role
    )
    await record_event(
        tx,
        Tag.STAFF_INVITATION_REDEEMED,
        actor=actor,
        at=now,
        subject=account.id,
        details={"invitation_id": invitation.id, "ip": ip[:MAX_IP_LENGTH], "active": active},
    )
    if active:
        await grants.activate(tx, ctx, account_id=account.id, actor=actor, now=now)
    account = account.model_copy(update={"activation_pending": not active})
    return Enrolled(account=account, recovery_codes=codes, active=active)
