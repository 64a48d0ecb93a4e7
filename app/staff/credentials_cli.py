"""`smsreg credentials due | rotate --due`: the credentials report, for cron or a scheduler."""

from __future__ import annotations

from typing import Annotated

import typer

from app.core import cli_support
from app.core.cli_support import CLI_ACTOR
from app.credentials.due import DueItem
from app.staff import credentials_due

credentials_cli = typer.Typer(
    help="Staff passwords, API keys and second factors near or past their end.",
    no_args_is_help=True,
)


def _print(items: list[DueItem]) -> None:
    typer.echo("kind\tid\towner\tname\tdue\tstate\taction")
    for item in items:
        due = f"{item.due_at:%Y-%m-%d}" if item.due_at else "-"
        typer.echo(
            f"{item.kind}\t{item.id}\t{item.owner}\t{item.name}\t{due}\t{item.state}\t{item.action}"
        )


@credentials_cli.command("due")
def due(
    within_days: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=credentials_due.MAX_WITHIN_DAYS,
            help="default: SMSREG_PASSWORD_DUE_WITHIN_DAYS and SMSREG_API_KEY_DUE_WITHIN_DAYS",
        ),
    ] = None,
) -> None:
    """List every credential past or near its maximum age, with its owner (never a secret)."""
    items = cli_support.call(credentials_due.due, within_days=within_days)
    if not items:
        typer.echo("no credentials due")
        return
    _print(items)


@credentials_cli.command("rotate")
def rotate(
    due_only: Annotated[
        bool, typer.Option("--due", help="rotate what is due and needs no person")
    ] = False,
) -> None:
    """Rotate what can be rotated unattended, and report what needs a person.

    Unattended: TOTP secrets still under an older phone key are re-encrypted under the
    active one. Passwords need their owner, API keys need someone to hand the new key to
    its client: those are listed, with what to do.
    """
    if not due_only:
        typer.secho("say what to rotate: --due", err=True, fg="red")
        raise typer.Exit(2)
    report = cli_support.call(credentials_due.rotate_due, actor=CLI_ACTOR)
    typer.echo(f"re-encrypted {report.totp_reencrypted} TOTP secret(s) under the active key")
    if not report.left:
        typer.echo("nothing left that needs a person")
        return
    typer.echo(f"{len(report.left)} credential(s) need a person:")
    _print(report.left)
