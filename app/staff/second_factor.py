"""A staff member's second factor, as the staff routes use it: one's own TOTP enrolment and
recovery codes, and an admin's reset of someone else's (app.credentials.totp holds the
TOTP itself; this adds who may, and the lockout a wrong code counts towards)."""

from __future__ import annotations

from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import AppError, FieldProblem
from app.core.tx import Tx
from app.credentials import recovery_codes, totp
from app.credentials.totp import Enrolment, TotpStatus
from app.staff import accounts, lockout
from app.staff import repository as repo
from app.staff.auth import Staff, totp_required


class WrongCode(AppError):
    status = 422
    slug = "wrong-code"
    title = "The code is not valid"
    commit = True  # a wrong code counts towards the account's lockout


@dataclass(frozen=True)
class TotpReset:
    """What an admin's reset of someone's second factor removed."""

    staff_id: str
    had_totp: bool
    recovery_codes_removed: int
    sessions_ended: int


async def status(tx: Tx, ctx: Context, *, staff: Staff) -> TotpStatus:
    """Whether the signed-in person has TOTP, and how many recovery codes are left."""
    return await totp.status(tx, ctx, staff_id=staff.id, required=totp_required(ctx, staff.role))


async def start_enrolment(tx: Tx, ctx: Context, *, staff: Staff) -> Enrolment:
    """A new TOTP secret for the signed-in person, pending until a first code confirms it."""
    return await totp.start_enrolment(
        tx, ctx, staff_id=staff.id, username=staff.username, actor=staff.actor
    )


async def pending_enrolment(tx: Tx, ctx: Context, *, staff: Staff) -> Enrolment | None:
    """The signed-in person's enrolment not yet confirmed (its secret, to show again)."""
    return await totp.pending_enrolment(tx, ctx, staff_id=staff.id, username=staff.username)


async def confirm_enrolment(tx: Tx, ctx: Context, *, staff: Staff, code: str) -> list[str]:
    """Confirm the pending enrolment with its first code; the recovery codes, shown once."""
    return await totp.confirm_enrolment(tx, ctx, staff_id=staff.id, actor=staff.actor, code=code)


async def new_recovery_codes(tx: Tx, ctx: Context, *, staff: Staff, code: str) -> list[str]:
    """Replace every recovery code with ten new ones, proving the second factor first.

    A wrong code counts towards the account's lockout, and while it is locked this is
    refused: a stolen session cannot guess its way to recovery codes.
    """
    account = await accounts.held(tx, staff.id)
    secret = await totp.confirmed_secret(tx, staff.id)
    now = ctx.clock.now()
    lockout.refuse_if_locked(account, now)
    if not await totp.accept(tx, ctx, secret=secret, code=code):
        # The right code used already (the same request sent twice, a double click) is
        # no guess: refused and recorded, as at login, but not counted towards the lockout.
        replayed = totp.used_before(ctx, secret, code)
        if not replayed:
            await lockout.count_failure(tx, ctx, account=account, now=now)
        await record_event(
            tx,
            Tag.STAFF_LOGIN_FAILED,
            actor=staff.actor,
            at=now,
            subject=staff.id,
            details={
                "reason": totp.REPLAYED_TOTP if replayed else "wrong_totp",
                "during": "recovery_codes",
            },
        )
        raise WrongCode(
            "the code is not valid (or was used already)",
            errors=[FieldProblem(location="body", field="code", detail="is not valid")],
        )
    return await recovery_codes.issue(tx, ctx, staff_id=staff.id, actor=staff.actor, now=now)


async def reset(tx: Tx, ctx: Context, *, staff: Staff | None, account_id: str) -> TotpReset:
    """Remove an account's second factor (a lost phone) and end its sessions at once.

    An admin's action (not on their own account), or the command line (``staff`` None).
    If the role requires TOTP, the next login can only enrol again.
    """
    if staff is not None and staff.id == account_id:
        raise accounts.OwnAccount("another admin must reset this account's TOTP")
    await accounts.held_with_sessions(tx, account_id)
    now = ctx.clock.now()
    had, codes = await totp.remove(tx, staff_id=account_id)
    ended = await repo.end_sessions(tx, account_id=account_id, now=now)
    actor = staff.actor if staff is not None else accounts.CLI_ACTOR
    done = TotpReset(
        staff_id=account_id, had_totp=had, recovery_codes_removed=codes, sessions_ended=ended
    )
    await record_event(
        tx,
        Tag.STAFF_TOTP_RESET,
        actor=actor,
        at=now,
        subject=account_id,
        details={"had_totp": had, "recovery_codes_removed": codes, "sessions_ended": ended},
    )
    return done
