"""`smsreg staff ...`: bootstrap the first admin, list accounts, disable one in an emergency."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.core.errors import AppError
from app.staff import accounts

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
    from app.cli import _runtime, _settings

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
    from app.cli import _runtime, _settings

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
    from app.cli import _runtime, _settings

    db, ctx = _runtime(_settings())
    try:
        account = db.call(accounts.disable, ctx, staff=None, account_id=staff_id)
    except AppError as exc:
        raise _refused(exc) from None
    finally:
        db.engine.dispose()
    typer.echo(f"disabled {account.id}")
