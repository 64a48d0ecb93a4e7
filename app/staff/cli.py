"""`smsreg staff ...`: bootstrap the first admin (or, in an emergency, a break-glass admin
that expires), list accounts, disable one in an emergency, offboard a person, reset a
lost second factor. Other staff come by invitation (POST /v1/staff/invitations)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.core import cli_support
from app.core.context import Context
from app.core.tx import Tx
from app.credentials import passwords
from app.models.staff import StaffAccount
from app.staff import accounts, bootstrap, invitations, new_account, offboarding, second_factor
from app.staff.offboarding import Offboarded
from app.staff.second_factor import TotpReset

staff_cli = typer.Typer(help="Staff accounts (the first admin, emergencies).", no_args_is_help=True)


@staff_cli.command("create")
def create(
    username: Annotated[str, typer.Option(help="3-64 of a-z 0-9 . _ -")],
    display_name: Annotated[str, typer.Option(help="your name")],
    role: Annotated[str, typer.Option(help="admin: the only role made here")] = "admin",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    break_glass: Annotated[
        bool,
        typer.Option(
            "--break-glass",
            help="an admin exists but nobody can act: make a recorded admin that expires "
            "after SMSREG_BREAK_GLASS_HOURS (logged at WARNING)",
        ),
    ] = False,
) -> None:
    """Create your own admin account (prompting for its password): the first admin of an
    installation, or with --break-glass an emergency admin that expires."""
    settings = cli_support.load_settings()
    if role != "admin":  # before any password is asked for
        with cli_support.refusals():
            raise bootstrap.CommandLineRole(f"not {role}: invite them (POST /v1/staff/invitations)")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with cli_support.refusals():
        new = new_account.check_new_account(
            settings, username=username, display_name=display_name, role=role, password=password
        )
    # Hashed before the transaction that stores it, as the HTTP route does.
    password_hash = passwords.hash_password_sync(settings, password)
    account = cli_support.call(
        bootstrap.create_admin, new=new, password_hash=password_hash, break_glass=break_glass
    )
    typer.echo(f"created {account.id}\t{account.username}\t{account.role}")
    if account.expires_at is not None:
        typer.echo(f"break-glass: this account ends at {account.expires_at.isoformat()}")


async def _listed(tx: Tx, ctx: Context) -> list[tuple[StaffAccount, str]]:
    now = ctx.clock.now()
    return [(a, accounts.standing(a, now)) for a in await accounts.list_accounts(tx, ctx)]


@staff_cli.command("list")
def list_staff() -> None:
    """List staff accounts (never a password or its hash)."""
    for account, standing in cli_support.call(_listed):
        state = "invited" if standing == "pending" else standing  # not enrolled: no log-in
        if account.expires_at is not None:  # a break-glass admin: say when it ends
            state += f" (break-glass until {account.expires_at.isoformat()})"
        typer.echo(
            f"{account.id}\t{account.username}\t{account.role}\t{account.display_name}\t{state}"
        )


@staff_cli.command("disable")
def disable(staff_id: str) -> None:
    """Disable an account and end its sessions at once (e.g. when no admin can log in)."""
    account = cli_support.call(invitations.disable_account, staff=None, account_id=staff_id)
    typer.echo(f"disabled {account.id}")


async def _offboard(tx: Tx, ctx: Context, *, username: str, grace_hours: int | None) -> Offboarded:
    account = await accounts.by_username(tx, ctx, username=username)
    return await offboarding.offboard(
        tx, ctx, staff=None, account_id=account.id, grace_hours=grace_hours
    )


@staff_cli.command("offboard")
def offboard(
    username: str,
    grace_hours: Annotated[
        int | None,
        typer.Option(
            help="hours their old API keys keep working (0 to 720); "
            "default SMSREG_OFFBOARDING_GRACE_HOURS (0: they stop at once)"
        ),
    ] = None,
) -> None:
    """Offboard a person: disable, end every session, remove TOTP, rotate their API keys.

    The successor keys are printed once: hand each to the client that uses it. By
    default the old keys stop working at once; give --grace-hours when a client needs
    time to switch over.
    """
    done = cli_support.call(_offboard, username=username, grace_hours=grace_hours)
    account = done.account
    state = "disabled now" if done.disabled_now else "was already disabled"
    typer.echo(
        f"offboarded {account.id} ({account.username}): {state}, "
        f"{done.sessions_ended} session(s) ended, "
        f"TOTP {'removed' if done.totp_removed else 'not enrolled'}, "
        f"{done.recovery_codes_removed} recovery code(s) removed"
    )
    for rotated in done.rotated:
        old, new = rotated.old, rotated.new.key
        typer.echo(
            f"rotated {old.id} ({old.name}) -> {new.id}; "
            f"the old key works until {old.expires_at.isoformat()}"
        )
        typer.echo(f"  new key (shown once, hand it over now): {rotated.new.token}")
    for key in done.ending:
        typer.echo(f"already rotated {key.id} ({key.name}); ends {key.expires_at.isoformat()}")
    if not done.rotated and not done.ending:
        typer.echo("no live API keys were created by this person")
    for grant_id in done.grants_cancelled:
        typer.echo(f"cancelled their grant proposal {grant_id}")
    for invitation_id in done.invitations_revoked:
        typer.echo(f"revoked their invitation {invitation_id}")
    for made in done.to_review:
        typer.echo(
            f"review: {made.id} ({made.username}, {made.role}) was created or granted by them"
        )


async def _reset_totp(tx: Tx, ctx: Context, *, username: str) -> TotpReset:
    account = await accounts.by_username(tx, ctx, username=username)
    return await second_factor.reset(tx, ctx, staff=None, account_id=account.id)


@staff_cli.command("reset-totp")
def reset_totp(username: str) -> None:
    """Remove a person's TOTP and recovery codes (a lost phone) and end their sessions."""
    done = cli_support.call(_reset_totp, username=username)
    typer.echo(
        f"reset {done.staff_id}: TOTP {'removed' if done.had_totp else 'was not enrolled'}, "
        f"{done.recovery_codes_removed} recovery code(s) removed, "
        f"{done.sessions_ended} session(s) ended"
    )
