"""What every `smsreg` command needs: its settings (or a clear exit 2), a runtime, and one
service call in one transaction with refusals shown as one line (exit 1)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from pathlib import Path
from typing import Concatenate, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError

from app.core.clock import SystemClock
from app.core.config import ConfigError, Settings, default_database_url
from app.core.context import Context
from app.core.crypto import Keys
from app.core.db import Database
from app.core.errors import AppError
from app.core.tx import Tx
from app.core.unavailable import database_unavailable

# How audit rows and histories name what was done from the command line.
CLI_ACTOR = "cli"
P = ParamSpec("P")
T = TypeVar("T")


def load_settings(*, new_state: bool = False) -> Settings:
    """The settings, or exit 2 with one line per configuration error (never a traceback).

    In development, a command finds its keys and database in the state folder
    (``.smsreg/`` where it runs, unless SMSREG_STATE_DIR names one); only ``serve``
    (``new_state``) makes it. Run from another folder, any other command would otherwise
    make a second, empty installation there, with keys of its own, and act on it."""
    try:
        settings = Settings()
        if not new_state:
            _require_state(settings)
        return settings.with_dev_secrets()
    except ConfigError as exc:
        refuse(str(exc))
    except SettingsError as exc:
        # A value that is not valid JSON (a key ring, a list): pydantic-settings names the
        # field in its own words ('error parsing value for field "phone_keys" from source
        # "EnvSettingsSource"'), never the value; said as the variable the operator sets.
        named = re.search(r'field "(\w+)"', str(exc))
        refuse(f"SMSREG_{named[1].upper()}: not valid JSON" if named else str(exc))
    except ValidationError as exc:
        refuse(
            "; ".join(
                f"SMSREG_{'_'.join(str(part) for part in error['loc']).upper()}: "
                + error["msg"].removeprefix("Value error, ")  # pydantic's, for a ValueError
                for error in exc.errors()
            )
        )


def _require_state(settings: Settings | _DatabaseOnly) -> None:
    """In development, refuse (exit 2) where the implied state folder (./.smsreg) is not;
    SMSREG_STATE_DIR given, the folder named is meant, and made if need be."""
    state_dir = settings.state_dir
    implied = "state_dir" not in settings.model_fields_set
    if settings.environment == "development" and implied and not state_dir.is_dir():
        refuse(
            f"no development state in {state_dir.resolve()}: run smsreg in the folder "
            "where `smsreg serve` (make serve) runs, or set SMSREG_STATE_DIR to its "
            "state folder; `smsreg serve` makes a new one"
        )


class _DatabaseOnly(BaseSettings):
    # The same sources and rules as the full settings (SMSREG_ENV_FILE included).
    model_config = Settings.model_config
    database_url: str | None = None
    environment: str = Settings.model_fields["environment"].get_default()
    state_dir: Path = Settings.model_fields["state_dir"].get_default()


def database_url() -> str:
    """SMSREG_DATABASE_URL alone, for commands that need nothing else (migrate). Not
    given, the embedded database in the state folder, which in development must be
    there already unless SMSREG_STATE_DIR names it (``smsreg serve`` makes it)."""
    given = _DatabaseOnly()
    if given.database_url is not None:
        return given.database_url
    _require_state(given)
    return default_database_url(given.environment, given.state_dir)


def failure(exc: BaseException) -> str:
    """One line for an error no command caught: what an operator can act on, never a
    value from the database or a secret (a driver's message may quote either)."""
    if database_unavailable(exc):
        return (
            f"the database cannot be reached or cannot take the work now "
            f"({type(exc).__name__}): check SMSREG_DATABASE_URL and that the server answers"
        )
    from app.core.migrations import SchemaNotUsable

    if isinstance(exc, SchemaNotUsable) or _sqlstate(exc) == "3F000":  # invalid_schema_name
        return NO_SCHEMA
    if _no_schema(exc):
        return (
            "the database has no smsreg tables this role can see: never migrated (run "
            "`smsreg migrate`), or the role was not granted them (docker/postgres/grants.sql)"
        )
    if no_privilege(exc):
        return NO_PRIVILEGE
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    return f"unexpected {type(exc).__name__}; run again with SMSREG_TRACEBACK=1 to see where"


# What a role that may not use smsreg's tables is told: migrations create them as the
# owner, and the service's own role gets its rights from the grants (docker/postgres/
# grants.sql) after every migration.
NO_PRIVILEGE = (
    "the database role may not use smsreg's tables: grant them after every migration "
    "(docker/postgres/grants.sql; docs/containers.md, Database roles)"
)


# What a role that can use no schema at all is told (PostgreSQL: no USAGE on the schema
# its search path names, as after REVOKE ALL ON SCHEMA public FROM PUBLIC).
NO_SCHEMA = (
    "the database role may not use the schema (USAGE on it was never granted): grant the "
    "role the schema and its tables (docker/postgres/grants.sql), after migrating as the "
    "owner if that is not done yet"
)


def _sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL error code under a SQLAlchemy error (None elsewhere)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def no_privilege(exc: BaseException) -> bool:
    return _sqlstate(exc) == "42501"  # insufficient_privilege


def _no_schema(exc: BaseException) -> bool:
    # PostgreSQL's undefined_table, or SQLite's own words for it.
    orig = getattr(exc, "orig", None)
    return _sqlstate(exc) == "42P01" or (
        isinstance(orig, sqlite3.OperationalError) and str(orig).startswith("no such table")
    )


# How long `serve` and `worker` wait at start for a database that does not answer yet.
START_WAIT_SECONDS = 60.0


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


def require_migrated(
    settings: Settings, *, tables: Collection[str], wait_seconds: float = START_WAIT_SECONDS
) -> None:
    """At `serve` / `worker` start: refuse (exit 2) a database that is not migrated for
    this release, or whose ``tables`` (this release's) the role was not granted its
    rights on (one that does not answer yet is waited for: :func:`wait_for_database`)."""
    from app.core.migrations import behind, role_rights

    current = wait_for_database(settings, wait_seconds=wait_seconds)
    if behind(current):
        at = ", ".join(current) or "never migrated"
        refuse(f"the database schema is behind this release ({at}): run `smsreg migrate` first")
    rights = once_it_answers(settings, lambda: role_rights(settings.database_url, tables))
    if rights.ungranted:
        # Every request that touched one would answer 503: never started so.
        refuse(f"{NO_PRIVILEGE}; it lacks its rights on {', '.join(rights.ungranted)}")
    if settings.environment == "production" and rights.owns_the_ledger:
        typer.secho(
            "warning: the service runs as a role that owns the ledger's tables (or a "
            "superuser), which can switch off what keeps them append-only: run it as the "
            "runtime role the grants are for (docker/postgres/grants.sql)",
            err=True,
            fg="yellow",
        )


def wait_for_database(
    settings: Settings, *, wait_seconds: float = START_WAIT_SECONDS
) -> tuple[str, ...]:
    """The database's migration revisions, once it answers (:func:`once_it_answers`)."""
    from app.core.migrations import current_revisions

    return once_it_answers(
        settings, lambda: current_revisions(settings.database_url), wait_seconds=wait_seconds
    )


def once_it_answers(
    settings: Settings,
    read: Callable[[], T],
    *,
    wait_seconds: float = START_WAIT_SECONDS,
    what: str = "",
) -> T:
    """What ``read`` reads at `serve` / `worker` start, once the database answers. One that
    does not answer (a database started beside the service, a failover, a connection cut
    between two of the start's checks) is waited for, up to ``wait_seconds``, then
    refused (exit 2, the refusal after ``what``): nothing serves before the schema and
    the keys in use were checked."""
    deadline = time.monotonic() + wait_seconds
    pause = 0.5
    while True:
        try:
            return read()
        except Exception as exc:  # noqa: BLE001 -- reported, one line
            if no_privilege(exc):
                refuse(NO_PRIVILEGE)  # it would fail every request, never becoming ready
            if not database_unavailable(exc) or settings.is_sqlite:
                refuse(what + failure(exc))  # a file that cannot be opened now will not be later
            if time.monotonic() + pause > deadline:
                # Never served unchecked: a process on a ring without a key rows use
                # would register a number it cannot find as a second subscriber.
                refuse(
                    f"{what}the database did not answer within {wait_seconds:g} s "
                    f"({type(exc).__name__}): the schema and the keys its rows use are "
                    "checked before serving; check SMSREG_DATABASE_URL"
                )
            if pause == 0.5:
                typer.secho("waiting for the database to answer...", err=True, fg="yellow")
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
