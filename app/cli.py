"""The `smsreg` command: serve, migrate, worker, API keys, OpenAPI export."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from app.core import retention
from app.core.cli_support import CLI_ACTOR
from app.core.cli_support import load_settings as _settings
from app.core.cli_support import runtime as _runtime
from app.core.config import Settings, new_key
from app.core.errors import AppError
from app.core.migrations import upgrade
from app.keys.cli import install as install_key_commands
from app.keys.cli import startup_check as check_key_usage
from app.ledger.cli import ledger_cli
from app.staff import api_keys
from app.staff.cli import staff_cli
from app.staff.credentials_cli import credentials_cli
from app.staff.scopes import DEFAULT_SCOPES
from app.verification.cli import pumping_cli

cli = typer.Typer(help="smsreg: SMS verification and phone-number registry.", no_args_is_help=True)
keys_cli = typer.Typer(help="Service-client API keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="api-keys")
secrets_cli = typer.Typer(
    help="Secret key rings (phone, index, code, token).", no_args_is_help=True
)
cli.add_typer(secrets_cli, name="keys")
install_key_commands(secrets_cli)
cli.add_typer(pumping_cli, name="pumping")
cli.add_typer(staff_cli, name="staff")
cli.add_typer(credentials_cli, name="credentials")
cli.add_typer(ledger_cli, name="ledger")


@cli.command()
def migrate() -> None:
    """Apply every pending Alembic migration."""
    settings = _settings()
    upgrade(settings.database_url)
    typer.echo("database is at the latest migration")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="bind port")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    migrate_first: Annotated[
        bool | None, typer.Option("--migrate/--no-migrate", help="default: on in development")
    ] = None,
) -> None:
    """Run the HTTP service (migrating first in development)."""
    import uvicorn

    from app.core.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    if migrate_first if migrate_first is not None else settings.environment == "development":
        upgrade(settings.database_url)
    check_key_usage(settings)  # refuses to start without a key rows still need
    if settings.environment == "development":
        _first_dev_key(settings)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )


def _first_dev_key(settings: Settings) -> None:
    db, ctx = _runtime(settings)
    if db.call(api_keys.count) > 0:
        return
    new = db.call(
        api_keys.create, ctx, name="development", scopes=list(DEFAULT_SCOPES), created_by=CLI_ACTOR
    )
    # The one-time display of a newly created key, as the README promises.
    typer.secho(
        "\nA development API key was created. It is shown this once; keep it:\n\n"
        f"    export SMSREG_KEY={new.token}\n",
        fg="green",
    )
    db.engine.dispose()


@cli.command()
def worker(
    once: Annotated[bool, typer.Option(help="drain what is due, then exit")] = False,
) -> None:
    """Send queued SMS from a separate process (set SMSREG_OUTBOX_DISPATCH=external)."""
    from app.core.logging import configure_logging
    from app.sms.factory import build_sender
    from app.sms.outbox import OutboxWorker

    settings = _settings()
    configure_logging(settings.log_level)
    check_key_usage(settings)
    db, ctx = _runtime(settings)
    outbox = OutboxWorker(db, ctx, build_sender(settings))
    if once:
        handled = asyncio.run(outbox.drain())
        typer.echo(f"handled {handled} message(s)")
        return
    asyncio.run(outbox.run_forever())


@cli.command()
def openapi(
    output: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
) -> None:
    """Print the OpenAPI document as YAML (the checked-in openapi.yaml)."""
    text = render_openapi()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


def render_openapi() -> str:
    """The app's OpenAPI document as stable YAML."""
    from app.main import create_app

    settings = Settings(
        database_url="sqlite://",
        **{f"{family}_keys": {"doc": "A" * 44} for family in ("phone", "index", "code", "token")},  # type: ignore[arg-type]
    )
    document = create_app(settings).openapi()
    return yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False, allow_unicode=True)


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who uses it, e.g. coupon-frontend")],
    scope: Annotated[list[str] | None, typer.Option(help="repeatable")] = None,
    expires_days: Annotated[int | None, typer.Option(help="default: the maximum age")] = None,
) -> None:
    """Create an API key and show it once."""
    settings = _settings()
    db, ctx = _runtime(settings)
    scopes = scope or [s.value for s in DEFAULT_SCOPES]
    try:
        new = db.call(
            api_keys.create,
            ctx,
            name=name,
            scopes=scopes,
            created_by=CLI_ACTOR,
            max_age_days=expires_days,
        )
    except AppError as exc:
        typer.secho(f"refused: {exc.detail}", err=True, fg="red")
        raise typer.Exit(1) from None
    typer.echo(f"id:      {new.key.id}\nexpires: {new.key.expires_at.isoformat()}")
    typer.echo("key (shown once, store it now):")
    typer.echo(new.token)


@keys_cli.command("list")
def keys_list() -> None:
    """List keys (never the keys themselves)."""
    db, _ = _runtime(_settings())
    for key in db.call(api_keys.list_keys):
        state = "revoked" if key.revoked_at else "active"
        if not key.revoked_at and key.rotated_to:
            state = f"rotated to {key.rotated_to}, valid until {key.expires_at:%Y-%m-%d %H:%M}Z"
        typer.echo(
            f"{key.id}\t{key.prefix}...\t{key.name}\t{','.join(key.scopes)}\t"
            f"expires {key.expires_at:%Y-%m-%d}\t{state}"
        )


@keys_cli.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once."""
    db, ctx = _runtime(_settings())
    try:
        key = db.call(api_keys.revoke, ctx, key_id=key_id, actor=CLI_ACTOR)
    except AppError as exc:
        typer.secho(f"refused: {exc.detail}", err=True, fg="red")
        raise typer.Exit(1) from None
    typer.echo(f"revoked {key.id}")


@keys_cli.command("rotate")
def keys_rotate(
    key_id: str,
    grace_hours: Annotated[
        int | None,
        typer.Option(help="old key's remaining life; default SMSREG_API_KEY_GRACE_HOURS"),
    ] = None,
) -> None:
    """Issue a successor key (shown once); the old key dies after the grace period."""
    db, ctx = _runtime(_settings())
    try:
        rotated = db.call(
            api_keys.rotate, ctx, key_id=key_id, actor=CLI_ACTOR, grace_hours=grace_hours
        )
    except AppError as exc:
        typer.secho(f"refused: {exc.detail}", err=True, fg="red")
        raise typer.Exit(1) from None
    old, new = rotated.old, rotated.new.key
    typer.echo(f"rotated {old.id} -> {new.id}")
    typer.echo(f"old key valid until: {old.expires_at.isoformat()}")
    typer.echo(f"id:      {new.id}\nexpires: {new.expires_at.isoformat()}")
    typer.echo("key (shown once, store it now):")
    typer.echo(rotated.new.token)


@keys_cli.command("due")
def keys_due(
    within_days: Annotated[
        int | None, typer.Option(help="default SMSREG_API_KEY_DUE_WITHIN_DAYS (14)")
    ] = None,
) -> None:
    """List keys past or near their maximum age, with who created them."""
    db, ctx = _runtime(_settings())
    try:
        rows = db.call(api_keys.due, ctx, within_days=within_days)
    except AppError as exc:
        typer.secho(f"refused: {exc.detail}", err=True, fg="red")
        raise typer.Exit(1) from None
    if not rows:
        typer.echo("no API keys due")
        return
    typer.echo("id\tkey\tname\tcreated_by\tcreated\tdue\tstate\tlast_used")
    for key in rows:
        last_used = f"{key.last_used_at:%Y-%m-%d}" if key.last_used_at else "never"
        typer.echo(
            f"{key.id}\t{key.prefix}...\t{key.name}\t{key.created_by}\t"
            f"{key.created_at:%Y-%m-%d}\t{key.due_at:%Y-%m-%d}\t{key.state}\t{last_used}"
        )


@cli.command()
def purge(
    batch: Annotated[int, typer.Option(min=10, max=100_000, help="rows per transaction")] = 1000,
) -> None:
    """Delete what the retention schedule no longer keeps (run it daily from cron)."""
    db, ctx = _runtime(_settings())
    report = retention.purge(db, ctx, batch=batch)
    for kind, n in report.deleted.items():
        typer.echo(f"{kind}: {n} deleted")


@secrets_cli.command("new")
def keys_new(key_id: Annotated[str, typer.Option(help="id to give the key")] = "k1") -> None:
    """Print a fresh key ring value for one SMSREG_*_KEYS variable (shown once)."""
    typer.echo(json.dumps({key_id: new_key()}))


def main() -> None:
    """Entry point of the console script."""
    cli()
