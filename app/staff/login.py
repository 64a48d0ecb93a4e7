"""The flows that hash or verify a password, as the API and the console both run them.

Each is two short transactions with argon2 (~100 ms, in a worker thread) between them,
so no transaction is held while it runs: logging in, changing one's own password, and
setting one's password from an invitation. The routes of app.staff and app.console
call these, so both answer alike and share the login throttles.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.context import Context
from app.core.db import Database
from app.core.errors import FieldProblem, InvalidInput
from app.credentials import passwords
from app.credentials.totp import Enrolment
from app.models.staff import StaffAccount
from app.staff import invitations, own_password, sessions
from app.staff.auth import Staff
from app.staff.sessions import NewSession


@dataclass(frozen=True)
class EnrolmentStarted:
    """An invited person's password is set: the account and its TOTP secret, shown once."""

    account: StaffAccount
    enrolment: Enrolment


async def log_in(
    db: Database,
    ctx: Context,
    *,
    username: str,
    password: str,
    ip: str,
    totp_code: str | None = None,
    recovery_code: str | None = None,
) -> NewSession:
    """A new session, or the login's refusal (throttled, wrong credentials, code needed)."""
    if totp_code and recovery_code:
        # One second factor: a recovery code sent beside a TOTP code would be neither
        # used up nor refused, and the caller could not tell which one was taken.
        detail = "give the TOTP code or a recovery code, not both"
        raise InvalidInput(
            detail,
            errors=[
                FieldProblem(location="body", field=name, detail=detail)
                for name in ("totp", "recovery_code")
            ],
        )
    async with db.transaction() as tx:
        start = await sessions.start_login(tx, ctx, username=username, ip=ip)
    # A missing account is verified against a dummy hash: it costs the same time.
    seen = start.account
    check = await passwords.verify_password(
        ctx.settings, seen.password_hash if seen is not None else None, password
    )
    async with db.transaction() as tx:
        return await sessions.finish_login(
            tx,
            ctx,
            start=start,
            check=check,
            ip=ip,
            totp_code=totp_code,
            recovery_code=recovery_code,
        )


async def change_password(
    db: Database, ctx: Context, *, staff: Staff, current_password: str, new_password: str
) -> StaffAccount:
    """Change one's own password, proving the current one; one's other sessions end."""
    async with db.transaction() as tx:
        stored = await own_password.current_hash(tx, ctx, staff=staff)
    checked = await own_password.check_change(
        ctx,
        staff=staff,
        stored=stored,
        current_password=current_password,
        new_password=new_password,
    )
    async with db.transaction() as tx:
        return await own_password.finish_change(tx, ctx, staff=staff, checked=checked)


async def set_invited_password(
    db: Database, ctx: Context, *, token: str, password: str
) -> EnrolmentStarted:
    """Take an invitation up: the owner's password set, a TOTP enrolment started."""
    # The token is checked before any password is hashed, so no stranger can make the
    # service spend argon2 time; and again in the transaction that writes.
    async with db.transaction() as tx:
        account = await invitations.check_token(tx, ctx, token=token)
    password_hash = await invitations.hash_own_password(ctx, account=account, password=password)
    async with db.transaction() as tx:
        enrolment = await invitations.set_password(
            tx, ctx, token=token, password_hash=password_hash
        )
    return EnrolmentStarted(account=account, enrolment=enrolment)
