"""Offboarding: every door a departing person could use, closed in one transaction.

The account is disabled (its role revoked in the permission history), every session
ends, the second factor is deleted, and every service API key the person created or
was shown by a rotation (``created_by = staff:<id>``) is rotated: the successor goes to
the admin doing the offboarding, and the old key dies when the grace period ends.
Either all of it happens, with its permission-history row and audit event, or none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Row, Tx
from app.core.errors import InvalidInput
from app.staff import accounts, api_keys, totp
from app.staff.accounts import Staff
from app.staff.api_keys import RotatedApiKey

CLI_ACTOR = "cli"


@dataclass(frozen=True)
class Offboarded:
    """What an offboarding did; the successors' tokens are shown this once."""

    account: Row
    disabled_now: bool
    sessions_ended: int
    totp_removed: bool
    recovery_codes_removed: int
    rotated: list[RotatedApiKey]
    # Keys the person created that were rotated before: their successors were issued to
    # someone else; the old key itself still works until its grace period ends (cut to
    # this offboarding's grace if that is sooner).
    ending: list[Row]


def offboard(
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
    account = accounts.get_for_update(tx, account_id)
    if account is None:
        raise accounts.StaffNotFound(f"no staff account {account_id}")
    actor = staff.actor if staff is not None else CLI_ACTOR
    now = ctx.clock.now()
    # Grace checked before anything is written (api_keys.rotate checks it too).
    # By default the keys they created die at once: a departure closes every door now.
    # An admin who needs the clients to switch over asks for a grace period explicitly.
    grace = ctx.settings.offboarding_grace_hours if grace_hours is None else grace_hours
    if not 0 <= grace <= api_keys.MAX_GRACE_HOURS:
        raise InvalidInput.field("grace_hours", f"must be 0 to {api_keys.MAX_GRACE_HOURS}")
    live = int(
        tx.scalar(
            "SELECT count(*) AS n FROM staff_sessions WHERE staff_id = :id "
            "AND revoked_at IS NULL AND expires_at > :now",
            {"id": account_id, "now": now},
        )
    )
    disabled_now = account.disabled_at is None
    if disabled_now:
        # Refuses the last active admin; ends every session; records the revocation.
        accounts.disable(tx, ctx, staff=staff, account_id=account_id)
    else:
        accounts.end_sessions(tx, account_id=account_id, now=now)
    totp_removed, codes_removed = totp.remove(tx, account_id=account_id)
    rotated, ending = _rotate_their_keys(
        tx, ctx, owner=f"staff:{account_id}", actor=actor, grace_hours=grace
    )
    tx.execute(
        "INSERT INTO staff_permission_history (staff_id, change, old_role, new_role, actor, "
        "changed_at) VALUES (:staff_id, 'offboard', :role, NULL, :actor, :at)",
        {"staff_id": account_id, "role": account.role, "actor": actor, "at": now},
    )
    record_event(
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
        },
    )
    return Offboarded(
        account=accounts.get(tx, account_id) or account,
        disabled_now=disabled_now,
        sessions_ended=live,
        totp_removed=totp_removed,
        recovery_codes_removed=codes_removed,
        rotated=rotated,
        ending=ending,
    )


def _rotate_their_keys(
    tx: Tx, ctx: Context, *, owner: str, actor: str, grace_hours: int
) -> tuple[list[RotatedApiKey], list[Row]]:
    """Rotate every live key ``owner`` created; those already rotated (still in their grace
    period) end no later than this grace period."""
    now = ctx.clock.now()
    lock = "" if tx.sqlite else " FOR UPDATE"
    keys = tx.all(
        "SELECT id, name, prefix, scopes, created_by, created_at, expires_at, revoked_at, "  # noqa: S608
        "last_used_at, rotated_from, rotated_to FROM api_keys WHERE created_by = :owner "
        f"AND revoked_at IS NULL AND expires_at > :now ORDER BY created_at, id{lock}",
        {"owner": owner, "now": now},
    )
    rotated = [
        api_keys.rotate(tx, ctx, key_id=key.id, actor=actor, grace_hours=grace_hours)
        for key in keys
        if key.rotated_to is None
    ]
    ending = [key for key in keys if key.rotated_to is not None]
    end = now + dt.timedelta(hours=grace_hours)
    for key in ending:
        if key.expires_at > end:
            tx.execute(
                "UPDATE api_keys SET expires_at = :end WHERE id = :id", {"end": end, "id": key.id}
            )
            key["expires_at"] = end
    return rotated, ending
