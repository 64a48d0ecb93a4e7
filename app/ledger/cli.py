"""`smsreg ledger ...`: verify, export, checkpoint, purge, public-keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar

import pydantic
import sqlalchemy as sa
import typer

from app.audit.events import Tag, record_event
from app.core.cli_support import CLI_ACTOR, refusals, runtime
from app.core.config import ConfigError, Settings
from app.core.context import Context
from app.core.db import Database
from app.core.tx import Tx
from app.ledger import auditor, checkpoints, export, retention, signing, verify, witness
from app.ledger.audit_schemas import ExportQuery
from app.ledger.rules import LegalBasis

ledger_cli = typer.Typer(help="The disclosure ledger: verify, export, checkpoint, purge.")
T = TypeVar("T")
FORMATS = ("jsonl", "csv")


def _run(work: Callable[[Database, Context], Awaitable[T]]) -> T:
    """Run a command's work on the database, refusing to start without a signing key
    outside development (exit 2) and showing a refusal as one line (exit 1)."""
    db, ctx = runtime()
    try:
        signing.ring(ctx.settings)
    except ConfigError as exc:
        typer.secho(f"configuration error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None

    async def main() -> T:
        try:
            return await work(db, ctx)
        finally:
            await db.dispose()

    with refusals():
        return asyncio.run(main())


async def _record(db: Database, ctx: Context, *, tag: Tag, details: dict[str, Any]) -> None:
    async with db.transaction() as tx:
        await record_event(tx, tag, actor=CLI_ACTOR, at=ctx.clock.now(), details=details)


def _when(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    # With its offset, as the API and the console take it: read as UTC, a time typed
    # in Japan was nine hours off, and the verifier's --filter refused the same text.
    if parsed is None or parsed.tzinfo is None:
        raise typer.BadParameter(
            "a date-time with its offset, e.g. 2026-04-01T00:00+09:00 or 2026-04-01T00:00Z",
            param_hint=name,
        )
    return parsed


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
    file_keys: Annotated[
        bool,
        typer.Option(
            "--file-keys",
            help="for --file without --public-key: check the signatures against the keys the "
            "file carries, which proves it consistent, not who signed it",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    witness_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--witness",
            help="a witness file (SMSREG_LEDGER_WITNESS's copy): fail if the ledger is shorter "
            "or differs; repeatable; default: the configured one, for the database",
        ),
    ] = None,
    expect: Annotated[
        list[str] | None,
        typer.Option(help="SEQ:HASH, a head you pinned: fail if the ledger lacks it; repeatable"),
    ] = None,
    asked_filter: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="NAME=VALUE of the filter you asked the export for (since, until, recipient, "
            "legal_basis, subject_id); repeatable. Without it a filtered export is refused "
            "(it cannot prove that no entry was left out); with it, the file must state "
            "exactly that filter",
        ),
    ] = None,
) -> None:
    """Walk the chain; print OK with counts or the first broken position (exit 1)."""
    if file_keys and (file is None or public_key):
        typer.secho("--file-keys is for --file without --public-key", err=True, fg="red")
        raise typer.Exit(2)
    pins = _pins(witness_files or [], expect or [])
    if file is not None:
        if not file.is_file():
            what = "not a regular file" if file.exists() else "no such file"
            typer.secho(f"{what}: {file}", err=True, fg="red")
            raise typer.Exit(2)
        if not public_key and not file_keys:
            # A forger signs with a key of their own and puts it in the file: without a
            # key from elsewhere, "OK" (exit 0) would say what the file cannot prove.
            typer.secho(
                "no trusted key: pass --public-key with the keys you trust (`smsreg ledger "
                "public-keys` or GET /v1/ledger/public-keys, fetched apart from the file), or "
                "--file-keys to check only that the file agrees with the keys it carries",
                err=True,
                fg="red",
            )
            raise typer.Exit(2)
        try:
            keys = verify.parse_public_keys(public_key) if public_key else None
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            typer.secho(f"bad --public-key: {exc}", err=True, fg="red")
            raise typer.Exit(2) from None
        try:
            asked = verify.asked_filters(asked_filter) if asked_filter else None
        except ValueError as exc:
            typer.secho(f"bad --filter: {exc}", err=True, fg="red")
            raise typer.Exit(2) from None
        report = verify.verify_file(file, public_keys=keys, pins=pins, filters=asked)
    else:
        if public_key:
            typer.secho(
                "--public-key is for --file; the database is checked with the key ring", err=True
            )

        async def work(db: Database, ctx: Context) -> verify.Report:
            held = pins
            configured = ctx.settings.ledger_witness
            if not witness_files and configured is not None and configured.exists():
                held = _pins([configured], expect or [])
            found = await verify.verify_in_units(db, ctx, held)
            if not witness_files and configured is not None and not configured.exists():
                # Nothing written yet, or a mistyped path: say so rather than say nothing.
                found.notes.append(f"the witness file {configured} does not exist (yet)")
            details = {"ok": found.ok, "entries": found.entries}
            await _record(db, ctx, tag=Tag.LEDGER_VERIFIED, details=details)
            return found

        report = _run(work)
    typer.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.text())
    if not report.ok:
        raise typer.Exit(1)


def _pins(witnesses: list[Path], expects: list[str]) -> verify.Pins:
    """What --witness and --expect hold the chain to; exit 2 when one cannot be read."""
    witnessed = []
    for path in witnesses:
        try:
            witnessed.extend(witness.read_file(path))
        except (OSError, witness.UnreadableWitness) as exc:
            typer.secho(f"bad --witness: {exc}", err=True, fg="red")
            raise typer.Exit(2) from None
    try:
        expected = [verify.expected_head(value) for value in expects]
    except ValueError as exc:
        typer.secho(f"bad --expect: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None
    return verify.Pins(witnessed=witnessed, expected=expected)


@ledger_cli.command("export")
def export_command(
    output: Annotated[str, typer.Option(help="file to write, or - for stdout")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    since: Annotated[
        str | None,
        typer.Option(help="from this time (ISO 8601 with its offset, e.g. 2026-04-01T00:00Z)"),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="before this time (ISO 8601 with its offset)")
    ] = None,
    recipient: Annotated[str | None, typer.Option(help="recipient organisation")] = None,
    basis: Annotated[LegalBasis | None, typer.Option(help="legal basis")] = None,
    subject: Annotated[str | None, typer.Option(help="subscriber id")] = None,
    checkpoint_first: Annotated[
        bool, typer.Option("--checkpoint/--no-checkpoint", help="sign the head first")
    ] = True,
) -> None:
    """Export the ledger with what is needed to verify it offline."""
    if fmt not in FORMATS:
        raise typer.BadParameter("jsonl or csv", param_hint="--format")
    try:
        # The same model as GET /v1/ledger/export's query: one set of rules for both.
        query = ExportQuery.model_validate(
            {
                "format": fmt,
                "since": _when(since, "--since"),
                "until": _when(until, "--until"),
                "recipient": recipient,
                "basis": basis,
                "subject": subject,
            }
        )
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.secho(f"refused: {problems}", err=True, fg="red")
        raise typer.Exit(1) from None

    async def work(db: Database, ctx: Context) -> tuple[export.Summary, auditor.HeldBack | None]:
        held = None
        if checkpoint_first:
            async with db.transaction() as tx:
                held = await auditor.sign_head(tx, ctx, actor=CLI_ACTOR)
        held_back = None if held is None else held.reason

        def write(out: BinaryIO) -> Awaitable[export.Summary]:
            return export.write(db, ctx, query, out, held_back=held_back)

        if output == "-":
            summary = await write(sys.stdout.buffer)
        else:
            summary = await _write_whole(Path(output), write)
        details: dict[str, object] = {
            "format": fmt, "filters": query.describe(), "entries": summary.entries
        }  # fmt: skip
        if held is not None:
            details["held_back"] = held.seq
        await _record(db, ctx, tag=Tag.LEDGER_EXPORTED, details=details)
        return summary, held

    summary, held = _run(work)
    message = (
        f"exported {summary.entries} entries, {summary.links} links, "
        f"{summary.checkpoints} checkpoints"
        + ("" if summary.first_seq is None else f" (seq {summary.first_seq}..{summary.last_seq})")
    )
    typer.echo(message, err=output == "-")
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)
    if held is not None:
        # The file is written, to the newest signed head; the exit status tells a job that
        # runs it that the head could not be signed (an entry no release wrote, a cut, an
        # entry long uncovered).
        raise typer.Exit(1)


async def _write_whole(path: Path, write: Callable[[BinaryIO], Awaitable[T]]) -> T:
    """Write a file whole or not at all: into a new file beside it (mode 0600), flushed to
    disk and renamed over ``path`` once complete. An export that fails leaves an earlier
    file there as it was, never empty or cut short. A path that is not a file (a pipe,
    /dev/stdout) is written as it is."""
    target = path.resolve()  # through a symbolic link, to the file it names
    if target.exists() and not target.is_file():
        with target.open("wb") as handle:
            return await write(handle)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            result = await write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself, on disk
    finally:
        os.close(directory)
    return result


async def _in_unit(db: Database, fn: Callable[[Tx], Awaitable[T]]) -> T:
    async with db.transaction() as tx:
        return await fn(tx)


@ledger_cli.command("checkpoint")
def checkpoint_command(
    force: Annotated[bool, typer.Option(help="sign even if nothing is new")] = False,
    sign_uncovered: Annotated[
        bool,
        typer.Option(
            help="sign over entries the schedule should long have covered, once you have "
            "checked them (`smsreg ledger verify --witness`) or know why none was made"
        ),
    ] = False,
) -> None:
    """Sign the chain's head now (skipped when nothing was appended since the last one)."""
    # A witness that cannot keep it is a refusal (WitnessUnavailable): one line, exit 1.
    # Forced on an empty ledger: refused (EmptyLedger), as POST /v1/ledger/checkpoints is.
    sign = checkpoints.create_now if force else checkpoints.create
    made = _run(
        lambda db, ctx: _in_unit(
            db, lambda tx: sign(tx, ctx, actor=CLI_ACTOR, sign_uncovered=sign_uncovered)
        )
    )
    if made is None:
        typer.echo("nothing new to checkpoint")
        return
    typer.echo(f"checkpoint #{made.id}: seq {made.seq} head {made.head_hash} key {made.key_id}")


@ledger_cli.command("purge")
def purge_command(
    dry_run: Annotated[bool, typer.Option(help="only say what would go")] = False,
) -> None:
    """Delete entries past retention (never younger than 3 years), leaving a signed anchor."""
    try:
        result = _run(
            lambda db, ctx: _in_unit(
                db, lambda tx: retention.purge(tx, ctx, actor=CLI_ACTOR, dry_run=dry_run)
            )
        )
    except sa.exc.DBAPIError as exc:  # the database's own retention trigger said no
        typer.secho(f"refused by the database: {type(exc.orig).__name__}", err=True, fg="red")
        raise typer.Exit(1) from None
    verb = "would purge" if dry_run else "purged"
    through = "" if result.through_seq is None else f" through seq {result.through_seq}"
    anchor = "" if result.anchor_id is None else f"; anchor checkpoint #{result.anchor_id}"
    typer.echo(
        f"{verb} {result.purged} entries{through} recorded before "
        f"{result.cutoff.isoformat()}{anchor}, and {result.requests} disclosure requests"
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
