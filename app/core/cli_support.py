"""What every `smsreg` command needs: its settings (or a clear exit 2) and a runtime."""

from __future__ import annotations

import typer

from app.core.clock import SystemClock
from app.core.config import ConfigError, Settings
from app.core.context import Context
from app.core.crypto import Keys
from app.core.db import Database, create_db_engine

# How audit rows and histories name what was done from the command line.
CLI_ACTOR = "cli"


def load_settings() -> Settings:
    """The settings, or exit 2 with the configuration error (never a traceback)."""
    try:
        return Settings().with_dev_secrets()
    except ConfigError as exc:
        typer.secho(f"configuration error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None


def runtime(settings: Settings | None = None) -> tuple[Database, Context]:
    """A database handle and a context on the system clock, for one command."""
    settings = settings or load_settings()
    try:
        keys = Keys(settings)
    except ConfigError as exc:
        typer.secho(f"configuration error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None
    ctx = Context(settings=settings, keys=keys, clock=SystemClock())
    return Database(create_db_engine(settings.database_url)), ctx
