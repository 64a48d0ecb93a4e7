"""Offboarding: every door a departing person could use, closed in one transaction.

The account is disabled (its role revoked in the permission history), every session
ends, the second factor is deleted, and every service API key the person created or
was shown by a rotation (``created_by = staff:<id>``) is rotated: the successor goes to
the admin doing the offboarding, and the old key dies when the grace period ends.
Either all of it happens, with its permission-history row and audit event, or none.

What the person set in motion ends with them: their pending role-grant proposals are
cancelled and their open invitations revoked (those accounts, never active, are
disabled). The accounts they created or granted a role to (as proposer or confirmer)
in the last ``SMSREG_OFFBOARDING_REVIEW_DAYS`` (90) are listed for review: they keep
working, since a departure says nothing against them, but the offboarding answer, its
audit event and ``GET /v1/staff/{id}/granted`` name them, for an admin to check each
with its owner and disable or re-grant as needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.audit.events import Tag, record_event
from app.clients import rotation
from app.clients.rotation import RotatedApiKey
from app.core.context import Context
from app.core.errors import InvalidInput
from app.core.tx import Tx
from app.credentials import totp
from app.models.api_key import ApiKey
from app.models.staff import StaffAccount
from app.staff import accounts, invitations
from app.staff import repository as repo
from app.staff.accounts import CLI_ACTOR
from app.staff.auth import Staff


@dataclass(frozen=True)
class Offboarded:
    """What an offboarding did; the successors' tokens are shown this once."""

    account: StaffAccount
    disabled_now: bool
    sessions_ended: int
    totp_removed: bool
    recovery_codes_removed: int
    rotated: list[RotatedApiKey]
    # Keys the person created that were rotated before: their successors were issued to
    # someone else; the old key itself still works until its grace period ends (cut to
    # this offboarding's grace if that is sooner).
    ending: list[ApiKey]
    # Their pending proposals, cancelled; their open invitations, revoked.
    grants_cancelled: list[str] = field(default_factory=list)
    invitations_revoked: list[str] = field(default_factory=list)
    # The accounts they created or granted a role to recently: to review.
    to_review: list[StaffAccount] = field(default_factory=list)


async def offboard(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff | None,
    account_id: str,
    grace_hours: int | None = None,
) -> Offboarded:
    """Offboard an account: an admin's action (not on their own account), or the command
    line (``staff`` None). Offboarding an account that is already disabled still ends
    what is left (keys, second factor), so it can be run again after a plain disable."""
    if staff is not None and staff.id == account_id:
        raise accounts.OwnAccount("another admin must offboard this account")
    account = await accounts.held_with_sessions(tx, account_id)
    actor = staff.actor if staff is not None else CLI_ACTOR
    now = ctx.clock.now()
    # Grace checked before anything is written (the key rotation checks it too). By
    # default the keys they created die at once: a departure closes every door now. An
    # admin who needs the clients to switch over asks for a grace period explicitly.
    grace = ctx.settings.offboarding_grace_hours if grace_hours is None else grace_hours
    if not 0 <= grace <= rotation.MAX_GRACE_HOURS:
        raise InvalidInput.field("grace_hours", f"must be 0 to {rotation.MAX_GRACE_HOURS}")
    live = await repo.count_live_sessions(tx, account_id=account_id, now=now)
    disabled_now = account.disabled_at is None
    if disabled_now:
        # Refuses the last active admin; ends every session; records the revocation.
        account = await accounts.disable(tx, ctx, staff=staff, account_id=account_id)
    else:
        await repo.end_sessions(tx, account_id=account_id, now=now)
    totp_removed, codes_removed = await totp.remove(tx, staff_id=account_id)
    rotated, ending = await rotation.rotate_created_by(
        tx, ctx, owner=f"staff:{account_id}", actor=actor, grace_hours=grace
    )
    leaver = f"staff:{account_id}"
    # Their invitations first, each revoked and recorded (a privileged one's proposal
    # with it); then whatever proposal is still pending.
    revoked = await invitations.revoke_created_by(tx, ctx, creator=leaver, actor=actor)
    cancelled = await invitations.cancel_pending(
        tx, ctx, account_id=account_id, actor=actor, now=now
    )
    to_review = await accounts.granted_by(tx, ctx, account_id=account_id)
    # The permission history says once that the account was offboarded: run again, the
    # offboarding ends what is left (the audit event says what), but grants nothing new.
    history = await repo.permission_history(tx, account_id)
    if not history or history[-1].change != "offboard":
        await accounts.record_permission(
            tx, account_id=account_id, change="offboard", old_role=account.role,
            new_role=None, actor=actor, at=now,
        )  # fmt: skip
    await record_event(
        tx,
        Tag.STAFF_OFFBOARDED,
        actor=actor,
        at=now,
        subject=account_id,
        details={
            "disabled_now": disabled_now,
            "sessions_ended": live,
            "totp_removed": totp_removed,
            "recovery_codes_removed": codes_removed,
            "grace_hours": grace,
            "rotated": [
                {
                    "key_id": r.old.id,
                    "new_key_id": r.new.key.id,
                    "old_expires_at": r.old.expires_at.isoformat(),
                }
                for r in rotated
            ],
            "ending": [{"key_id": k.id, "expires_at": k.expires_at.isoformat()} for k in ending],
            "grants_cancelled": [grant.id for grant in cancelled],
            "invitations_revoked": revoked,
            "to_review": [a.id for a in to_review],
        },
    )
    return Offboarded(
        account=account,
        disabled_now=disabled_now,
        sessions_ended=live,
        totp_removed=totp_removed,
        recovery_codes_removed=codes_removed,
        rotated=rotated,
        ending=ending,
        grants_cancelled=[grant.id for grant in cancelled],
        invitations_revoked=revoked,
        to_review=to_review,
    )
