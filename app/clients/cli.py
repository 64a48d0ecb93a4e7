"""`smsreg api-keys`: create, list, revoke, rotate service-client API keys, and see what is due."""

from __future__ import annotations

from typing import Annotated

import typer

from app.clients import rotation, service
from app.clients.scopes import DEFAULT_SCOPES, Scope
from app.core import cli_support
from app.core.cli_support import CLI_ACTOR

api_keys_cli = typer.Typer(help="Service-client API keys.", no_args_is_help=True)
_SCOPES = ", ".join(scope.value for scope in Scope)


@api_keys_cli.command("create")
def create(
    name: Annotated[str, typer.Option(help="who uses it, e.g. coupon-frontend")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"repeatable; one of: {_SCOPES}. Default: verifications:write"),
    ] = None,
    expires_days: Annotated[int | None, typer.Option(help="default: the maximum age")] = None,
) -> None:
    """Create an API key and show it once."""
    scopes = scope or [s.value for s in DEFAULT_SCOPES]
    new = cli_support.call(
        service.create, name=name, scopes=scopes, created_by=CLI_ACTOR, max_age_days=expires_days
    )
    typer.echo(f"id:      {new.key.id}\nexpires: {new.key.expires_at.isoformat()}")
    typer.echo("key (shown once, store it now):")
    typer.echo(new.token)


@api_keys_cli.command("list")
def list_keys() -> None:
    """List keys (never the keys themselves), each in the state the console shows."""
    for key, state in cli_support.call(service.list_keys_with_states):
        # An expired key listed as "active": the state is the service's, as on the console.
        if state == "rotated":
            state = f"rotated to {key.rotated_to}, valid until {key.expires_at:%Y-%m-%d %H:%M}Z"
        elif state == "expired" and key.rotated_to is not None:
            # Its grace over (or ended at once by an offboarding): still name the successor.
            state = f"expired, rotated to {key.rotated_to}"
        typer.echo(
            f"{key.id}\t{key.name}\t{','.join(key.scopes)}\t"
            f"expires {key.expires_at:%Y-%m-%d}\t{state}"
        )


@api_keys_cli.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key at once."""
    key = cli_support.call(service.revoke, key_id=key_id, actor=CLI_ACTOR)
    typer.echo(f"revoked {key.id}")


@api_keys_cli.command("rotate")
def rotate(
    key_id: str,
    grace_hours: Annotated[
        int | None,
        typer.Option(help="old key's remaining life; default SMSREG_API_KEY_GRACE_HOURS"),
    ] = None,
) -> None:
    """Issue a successor key (shown once); the old key dies after the grace period."""
    rotated = cli_support.call(
        rotation.rotate, key_id=key_id, actor=CLI_ACTOR, grace_hours=grace_hours
    )
    old, new = rotated.old, rotated.new.key
    typer.echo(f"rotated {old.id} -> {new.id}")
    typer.echo(f"old key valid until: {old.expires_at.isoformat()}")
    typer.echo(f"id:      {new.id}\nexpires: {new.expires_at.isoformat()}")
    typer.echo("key (shown once, store it now):")
    typer.echo(rotated.new.token)


@api_keys_cli.command("due")
def due(
    within_days: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=rotation.MAX_DUE_WITHIN_DAYS,
            help="default SMSREG_API_KEY_DUE_WITHIN_DAYS (14)",
        ),
    ] = None,
) -> None:
    """List keys past or near their maximum age, with who created them."""
    rows = cli_support.call(rotation.due, within_days=within_days)
    if not rows:
        typer.echo("no API keys due")
        return
    typer.echo("id\tname\tcreated_by\tcreated\tdue\tstate\tlast_used")
    for item in rows:
        key = item.key
        last_used = f"{key.last_used_at:%Y-%m-%d}" if key.last_used_at else "never"
        typer.echo(
            f"{key.id}\t{key.name}\t{key.created_by}\t"
            f"{key.created_at:%Y-%m-%d}\t{item.due_at:%Y-%m-%d}\t{item.state}\t{last_used}"
        )
