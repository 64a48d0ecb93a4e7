"""What every `smsreg` command needs: its settings (or a clear exit 2), a runtime, and one
service call in one transaction with refusals shown as one line (exit 1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Concatenate, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.clock import SystemClock
from app.core.config import ConfigError, Settings
from app.core.context import Context
from app.core.crypto import Keys
from app.core.db import Database
from app.core.errors import AppError
from app.core.tx import Tx

# How audit rows and histories name what was done from the command line.
CLI_ACTOR = "cli"
P = ParamSpec("P")
T = TypeVar("T")


def load_settings() -> Settings:
    """The settings, or exit 2 with one line per configuration error (never a traceback)."""
    try:
        return Settings().with_dev_secrets()
    except ConfigError as exc:
        refuse(str(exc))
    except ValidationError as exc:
        refuse(
            "; ".join(
                f"SMSREG_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
                for error in exc.errors()
            )
        )


class _DatabaseOnly(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SMSREG_", env_file=".env", extra="ignore", env_ignore_empty=True
    )
    database_url: str = Settings.model_fields["database_url"].get_default()


def database_url() -> str:
    """SMSREG_DATABASE_URL alone, for commands that need nothing else (migrate)."""
    return _DatabaseOnly().database_url


def refuse(problem: str) -> NoReturn:
    """Exit 2 with one line naming what is wrong with the configuration."""
    typer.secho(f"configuration error: {problem}", err=True, fg="red")
    raise typer.Exit(2)


def runtime(settings: Settings | None = None) -> tuple[Database, Context]:
    """A database handle and a context on the system clock, for one command."""
    settings = settings or load_settings()
    try:
        keys = Keys(settings)
    except ConfigError as exc:
        refuse(str(exc))
    ctx = Context(settings=settings, keys=keys, clock=SystemClock())
    return Database.from_settings(settings), ctx


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """Show a refused action (an AppError) as one line and exit 1."""
    try:
        yield
    except AppError as exc:
        typer.secho(f"refused: {exc.detail}", err=True, fg="red")
        raise typer.Exit(1) from None


def call(
    fn: Callable[Concatenate[Tx, Context, P], Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run one service function in one transaction, as a command does."""
    db, ctx = runtime()

    async def main() -> T:
        try:
            async with db.transaction() as tx:
                return await fn(tx, ctx, *args, **kwargs)
        finally:
            await db.dispose()

    with refusals():
        return asyncio.run(main())


def require_migrated(settings: Settings) -> None:
    """At `serve` / `worker` start: refuse (exit 2) a database that is not migrated for
    this release. One that does not answer yet is left to the service's readiness check,
    which reports it until it does."""
    from app.core.migrations import behind, current_revisions

    try:
        current = current_revisions(settings.database_url)
    except Exception as exc:  # noqa: BLE001 -- reported, and /readyz says not ready
        typer.secho(f"warning: schema not checked ({type(exc).__name__})", err=True, fg="yellow")
        return
    if behind(current):
        at = ", ".join(current) or "never migrated"
        refuse(f"the database schema is behind this release ({at}): run `smsreg migrate` first")
