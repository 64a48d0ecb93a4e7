"""`smsreg keys rotate|status|check`: move rows to the active keys, and see what is left."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.core.cli_support import once_it_answers, runtime
from app.core.clock import SystemClock
from app.core.config import Settings
from app.core.context import Context
from app.core.crypto import Keys
from app.core.db import Database
from app.core.tx import Tx
from app.keys import rotation
from app.keys.status import NOTES, FamilyStatus, startup_problems, status

MAX_FAILED_SHOWN = 20
T = TypeVar("T")


class Family(enum.StrEnum):
    """A secret key ring."""

    PHONE = "phone"
    INDEX = "index"
    CODE = "code"
    TOKEN = "token"  # noqa: S105 (a family's name, not a secret)


def _refuse(message: str) -> typer.Exit:
    typer.secho(f"refused: {message}; nothing was changed", err=True, fg="red")
    return typer.Exit(2)


def _run(db: Database, work: Callable[[], Awaitable[T]]) -> T:
    """Run a command's work on its own event loop, closing the database after."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await db.dispose()

    return asyncio.run(main())


def _read(db: Database, ctx: Context, *, query: Callable[[Tx, Context], Awaitable[T]]) -> T:
    """One read in one transaction, on the command's own event loop."""

    async def read() -> T:
        async with db.transaction() as tx:
            return await query(tx, ctx)

    return _run(db, read)


def rotate(
    family: Annotated[Family, typer.Argument(help="phone, index, code or token")],
    to: Annotated[
        str | None,
        typer.Option(help="the key id you expect to rotate to: must be the active id"),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, max=10_000, help="rows per transaction [SMSREG_KEY_ROTATION_BATCH_SIZE]"
        ),
    ] = None,
    pause: Annotated[
        float | None,
        typer.Option(
            min=0, max=60, help="seconds between batches [SMSREG_KEY_ROTATION_PAUSE_SECONDS]"
        ),
    ] = None,
) -> None:
    """Rewrite every row still under an older key to the active key (resumable)."""
    db, ctx = runtime()
    ring = getattr(ctx.keys, family.value)
    variable = f"SMSREG_{family.value.upper()}"
    if to is not None and to not in ring.keys:
        raise _refuse(f"no {family.value} key with id {to!r} in {variable}_KEYS")
    if to is not None and to != ring.active_id:
        raise _refuse(
            f"{to!r} is not the active {family.value} key ({ring.active_id!r}); set "
            f"{variable}_KEY_ID={to} for every process first, then rotate"
        )
    settings = ctx.settings
    size = batch_size or settings.key_rotation_batch_size
    wait = settings.key_rotation_pause_seconds if pause is None else pause
    reports = _run(db, lambda: _rotate(db, ctx, family=family, batch_size=size, pause=wait))
    if reports is None:
        return
    left = 0
    for report in reports:
        typer.echo(
            f"{report.table}: {report.rewritten} rewritten, {report.raced} changed meanwhile "
            f"by the service, {len(report.failed)} failed, {report.after} left"
        )
        if report.failed:
            more = " ..." if len(report.failed) > MAX_FAILED_SHOWN else ""
            typer.echo(f"  failed row ids: {', '.join(report.failed[:MAX_FAILED_SHOWN])}{more}")
        left += report.after
    if left:
        typer.secho(
            f"{left} row(s) are still not on {family.value} key {ring.active_id!r}. Rows written "
            "meanwhile by a process with another active key are picked up by running this "
            "again; failed rows are listed above (see the README, 'Key rotation').",
            err=True,
            fg="yellow",
        )
        raise typer.Exit(1)
    typer.echo(f"every {family.value} row is on key {ring.active_id!r}")


async def _rotate(
    db: Database, ctx: Context, *, family: Family, batch_size: int, pause: float
) -> list[rotation.TableReport] | None:
    # Re-indexing decrypts numbers too, so it needs every phone key the rows use.
    needs = ("phone", "index") if family is Family.INDEX else (family.value,)
    async with db.transaction() as tx:
        states = await status(tx, ctx, families=needs)
    for needed in states:
        if needed.missing():
            raise _refuse(
                f"rows use {needed.family} key id(s) {', '.join(needed.missing())} that "
                f"SMSREG_{needed.family.upper()}_KEYS no longer holds; put them back first"
            )
    if family.value not in rotation.TABLES:
        _report_only(states[-1])
        return None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        async with db.transaction() as tx:
            plan = await rotation.remaining(tx, ctx, family=family.value)
        tasks = {table: progress.add_task(table, total=count) for table, count in plan.items()}
        return await rotation.rotate(
            db,
            ctx,
            family=family.value,
            batch_size=batch_size,
            pause=pause,
            on_batch=lambda batch: progress.advance(tasks[batch.table], batch.seen),
        )


def _report_only(state: FamilyStatus) -> None:
    typer.echo(f"{state.family}: nothing to rewrite: {NOTES[state.family]}")
    older = [u for u in state.usage if u.key_id != state.active_id]
    for used in older:
        typer.echo(f"  {used.what}: {used.rows} still on {used.key_id!r}")
    if not older:
        typer.echo(f"  no live row uses an older {state.family} key")


def show_status() -> None:
    """Per key ring: the active id, the ids in the ring, and the rows still using each."""
    db, ctx = runtime()
    states = _read(db, ctx, query=status)
    for state in states:
        typer.echo(f"{state.family}: active {state.active_id!r}, ring {', '.join(state.ring)}")
        for key_id in (*state.ring, *state.missing()):
            label = "active" if key_id == state.active_id else "older"
            if key_id not in state.ring:
                label = "NOT IN RING"
            parts = [f"{u.what} {u.rows}" for u in state.usage if u.key_id == key_id]
            typer.echo(
                f"  {key_id} ({label}): {state.rows_on(key_id)} row(s)"
                + (f" [{'; '.join(parts)}]" if parts else "")
            )
        if state.removable():
            typer.echo(f"  can be removed from the ring: {', '.join(state.removable())}")
        if state.missing():
            typer.secho(
                f"  rows need key id(s) missing from the ring: {', '.join(state.missing())}",
                fg="red",
            )
        typer.echo(f"  ({NOTES[state.family]})")


def check() -> None:
    """Exit 1 if rows still use a phone or index key id the ring no longer holds."""
    db, ctx = runtime()
    fatal, warnings = _read(db, ctx, query=startup_problems)
    for text in warnings:
        typer.secho(f"warning: {text}", err=True, fg="yellow")
    for text in fatal:
        typer.secho(f"error: {text}", err=True, fg="red")
    if fatal:
        raise typer.Exit(1)
    typer.echo("every key that rows need is in its ring")


def startup_check(settings: Settings) -> None:
    """At `serve` / `worker` start: refuse to run when rows need a removed phone/index key."""
    ctx = Context(settings=settings, keys=Keys(settings), clock=SystemClock())
    db = Database.from_settings(settings)
    fatal, warnings = once_it_answers(
        settings,
        lambda: _read(db, ctx, query=startup_problems),
        what="the keys rows use could not be checked: ",
    )
    for text in warnings:
        typer.secho(f"warning: {text}", err=True, fg="yellow")
    if fatal:
        for text in fatal:
            typer.secho(f"error: {text}", err=True, fg="red")
        raise typer.Exit(2)


def install(group: typer.Typer) -> None:
    """Add rotate, status and check to the `smsreg keys` group."""
    group.command("rotate")(rotate)
    group.command("status")(show_status)
    group.command("check")(check)
