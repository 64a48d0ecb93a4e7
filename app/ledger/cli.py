"""`smsreg ledger ...`: verify, export, checkpoint, purge, public-keys."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer

from app.audit.events import Tag, record_event
from app.core.cli_support import CLI_ACTOR, runtime
from app.core.config import ConfigError, Settings
from app.core.context import Context
from app.core.db import Database, Tx
from app.core.errors import AppError
from app.ledger import checkpoints, export, retention, signing, verify

ledger_cli = typer.Typer(help="The disclosure ledger: verify, export, checkpoint, purge.")


def _runtime() -> tuple[Database, Context]:
    db, ctx = runtime()
    try:
        signing.ring(ctx.settings)  # no signing key outside development: refuse
    except ConfigError as exc:
        typer.secho(f"configuration error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None
    return db, ctx


def _record(tx: Tx, ctx: Context, *, tag: Tag, details: dict[str, object]) -> None:
    record_event(tx, tag, actor=CLI_ACTOR, at=ctx.clock.now(), details=details)


def _when(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            "ISO 8601, e.g. 2026-04-01 or 2026-04-01T09:00+09:00", param_hint=name
        ) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


@ledger_cli.command("verify")
def verify_command(
    file: Annotated[
        Path | None,
        typer.Option("--file", help="an export (JSON Lines or CSV) instead of the database"),
    ] = None,
    public_key: Annotated[
        list[str] | None,
        typer.Option(
            help="trusted key for --file: KEY_ID:BASE64, or the public-keys JSON; repeatable"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Walk the chain; print OK with counts or the first broken position (exit 1)."""
    if file is not None:
        if not file.is_file():
            typer.secho(f"no such file: {file}", err=True, fg="red")
            raise typer.Exit(2)
        try:
            keys = verify.parse_public_keys(public_key) if public_key else None
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            typer.secho(f"bad --public-key: {exc}", err=True, fg="red")
            raise typer.Exit(2) from None
        report = verify.verify_file(file, public_keys=keys)
    else:
        if public_key:
            typer.secho(
                "--public-key is for --file; the database is checked with the key ring", err=True
            )
        db, ctx = _runtime()
        report = verify.verify_snapshot(db, ctx)
        db.call(
            _record,
            ctx,
            tag=Tag.LEDGER_VERIFIED,
            details={"ok": report.ok, "entries": report.entries},
        )
        db.engine.dispose()
    typer.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.text())
    if not report.ok:
        raise typer.Exit(1)


@ledger_cli.command("export")
def export_command(
    output: Annotated[str, typer.Option(help="file to write, or - for stdout")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    since: Annotated[
        str | None, typer.Option(help="from this time (ISO 8601; UTC if no offset)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="before this time")] = None,
    recipient: Annotated[str | None, typer.Option(help="recipient organisation")] = None,
    basis: Annotated[str | None, typer.Option(help="legal basis")] = None,
    subject: Annotated[str | None, typer.Option(help="subscriber id")] = None,
    checkpoint_first: Annotated[
        bool, typer.Option("--checkpoint/--no-checkpoint", help="sign the head first")
    ] = True,
) -> None:
    """Export the ledger with what is needed to verify it offline."""
    filters = export.Filters(
        since=_when(since, "--since"),
        until=_when(until, "--until"),
        recipient=recipient,
        legal_basis=basis,
        subject_id=subject,
    )
    if fmt not in export.FORMATS:
        raise typer.BadParameter("jsonl or csv", param_hint="--format")
    try:
        filters.validated()
    except AppError as exc:
        typer.secho(f"refused: {exc.detail}", err=True, fg="red")
        raise typer.Exit(1) from None
    db, ctx = _runtime()
    if checkpoint_first:
        db.call(checkpoints.create, ctx, actor=CLI_ACTOR)
    if output == "-":
        summary = export.write(db, ctx, filters, fmt, sys.stdout.buffer)  # type: ignore[arg-type]
    else:
        with Path(output).open("wb") as handle:
            summary = export.write(db, ctx, filters, fmt, handle)  # type: ignore[arg-type]
    db.call(
        _record,
        ctx,
        tag=Tag.LEDGER_EXPORTED,
        details={"format": fmt, "filters": filters.describe(), "entries": summary.entries},
    )
    db.engine.dispose()
    message = (
        f"exported {summary.entries} entries, {summary.links} links, "
        f"{summary.checkpoints} checkpoints"
        + ("" if summary.first_seq is None else f" (seq {summary.first_seq}..{summary.last_seq})")
    )
    typer.echo(message, err=output == "-")
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)


@ledger_cli.command("checkpoint")
def checkpoint_command(
    force: Annotated[bool, typer.Option(help="sign even if nothing is new")] = False,
) -> None:
    """Sign the chain's head now (skipped when nothing was appended since the last one)."""
    db, ctx = _runtime()
    made = db.call(checkpoints.create, ctx, actor=CLI_ACTOR, force=force)
    db.engine.dispose()
    if made is None:
        typer.echo("nothing new to checkpoint")
        return
    typer.echo(f"checkpoint #{made.id}: seq {made.seq} head {made.head_hash} key {made.key_id}")


@ledger_cli.command("purge")
def purge_command(
    dry_run: Annotated[bool, typer.Option(help="only say what would go")] = False,
) -> None:
    """Delete entries past retention (never younger than 3 years), leaving a signed anchor."""
    db, ctx = _runtime()
    try:
        result = db.call(retention.purge, ctx, actor=CLI_ACTOR, dry_run=dry_run)
    except sa.exc.DBAPIError as exc:  # the database's own retention trigger said no
        typer.secho(f"refused by the database: {type(exc.orig).__name__}", err=True, fg="red")
        raise typer.Exit(1) from None
    except Exception as exc:
        if "append-only" not in str(exc):
            raise
        typer.secho("refused by the database: append-only ledger", err=True, fg="red")
        raise typer.Exit(1) from None
    finally:
        db.engine.dispose()
    verb = "would purge" if dry_run else "purged"
    through = "" if result.through_seq is None else f" through seq {result.through_seq}"
    anchor = "" if result.anchor_id is None else f"; anchor checkpoint #{result.anchor_id}"
    typer.echo(
        f"{verb} {result.purged} entries{through} recorded before "
        f"{result.cutoff.isoformat()}{anchor}"
    )


@ledger_cli.command("public-keys")
def public_keys_command() -> None:
    """Print the public keys as JSON (the same as GET /v1/ledger/public-keys)."""
    try:
        ring = signing.ring(Settings().with_dev_secrets())
    except ConfigError as exc:
        typer.secho(f"configuration error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None
    keys = [
        {
            "key_id": key_id,
            "algorithm": signing.ALGORITHM,
            "public_key": public,
            "active": key_id == ring.active_id,
        }
        for key_id, public in sorted(ring.public_raw().items())
    ]
    typer.echo(json.dumps({"keys": keys}, indent=2))
