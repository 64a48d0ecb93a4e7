"""`smsreg staff ...`: bootstrap the first admin, list accounts, disable one in an emergency."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.core.cli_support import load_settings as _settings
from app.core.cli_support import runtime as _runtime
from app.core.db import Database
from app.core.errors import AppError
from app.staff import accounts, offboarding, totp

staff_cli = typer.Typer(help="Staff accounts (the first admin, emergencies).", no_args_is_help=True)
CLI_ACTOR = "cli"


def _refused(exc: AppError) -> typer.Exit:
    typer.secho(f"refused: {exc.detail}", err=True, fg="red")
    return typer.Exit(1)


@staff_cli.command("create")
def create(
    username: Annotated[str, typer.Option(help="3-64 of a-z 0-9 . _ -")],
    role: Annotated[str, typer.Option(help="privacy_officer, operator, auditor or admin")],
    display_name: Annotated[str, typer.Option(help="the person's name")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Create a staff account (prompting for its password); bootstraps the first admin."""
    settings = _settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        name, shown, checked_role = accounts.check_new_account(
            settings, username=username, display_name=display_name, role=role, password=password
        )
    except AppError as exc:
        raise _refused(exc) from None
    password_hash = accounts.hash_password_sync(settings, password)
    db, ctx = _runtime(settings)
    try:
        account = db.call(
            accounts.create,
            ctx,
            actor=CLI_ACTOR,
            username=name,
            display_name=shown,
            role=checked_role,
            password_hash=password_hash,
        )
    except AppError as exc:
        raise _refused(exc) from None
    finally:
        db.engine.dispose()
    typer.echo(f"created {account.id}\t{account.username}\t{account.role}")


@staff_cli.command("list")
def list_staff() -> None:
    """List staff accounts (never a password or its hash)."""
    db, _ctx = _runtime(_settings())
    try:
        rows = db.call(accounts.list_accounts)
    finally:
        db.engine.dispose()
    for row in rows:
        state = "disabled" if row.disabled_at else "active"
        typer.echo(f"{row.id}\t{row.username}\t{row.role}\t{row.display_name}\t{state}")


@staff_cli.command("disable")
def disable(staff_id: str) -> None:
    """Disable an account and end its sessions at once (e.g. when no admin can log in)."""
    db, ctx = _runtime(_settings())
    try:
        account = db.call(accounts.disable, ctx, staff=None, account_id=staff_id)
    except AppError as exc:
        raise _refused(exc) from None
    finally:
        db.engine.dispose()
    typer.echo(f"disabled {account.id}")


def _account_id(db: Database, username: str) -> str:
    account = db.call(accounts.find_for_login, username)
    if account is None:
        raise _refused(accounts.StaffNotFound(f"no staff account named {username!r}"))
    return str(account.id)


@staff_cli.command("offboard")
def offboard(
    username: str,
    grace_hours: Annotated[
        int | None,
        typer.Option(help="life left to their API keys; default SMSREG_API_KEY_GRACE_HOURS"),
    ] = None,
) -> None:
    """Offboard a person: disable, end every session, remove TOTP, rotate their API keys.

    The successor keys are printed once: hand each to the client that uses it before
    the old one dies.
    """
    db, ctx = _runtime(_settings())
    try:
        done = db.call(
            offboarding.offboard,
            ctx,
            staff=None,
            account_id=_account_id(db, username),
            grace_hours=grace_hours,
        )
    except AppError as exc:
        raise _refused(exc) from None
    finally:
        db.engine.dispose()
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


@staff_cli.command("reset-totp")
def reset_totp(username: str) -> None:
    """Remove a person's TOTP and recovery codes (a lost phone) and end their sessions."""
    db, ctx = _runtime(_settings())
    try:
        row = db.call(totp.reset, ctx, staff=None, account_id=_account_id(db, username))
    except AppError as exc:
        raise _refused(exc) from None
    finally:
        db.engine.dispose()
    typer.echo(
        f"reset {row.staff_id}: TOTP {'removed' if row.had_totp else 'was not enrolled'}, "
        f"{row.recovery_codes_removed} recovery code(s) removed, "
        f"{row.sessions_ended} session(s) ended"
    )
