"""The database bench/run.py measures smsreg on.

- ``sqlite``: a fresh file in the run's temporary directory (the embedded default).
- ``postgres``: a throwaway database on a PostgreSQL server (by default the local one at
  ``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth), created empty, migrated
  by ``smsreg migrate`` like any other, and dropped when the run ends, fails or is
  interrupted.

Nothing here touches a database it did not create: each one it makes gets a fresh name
beginning with ``smsreg_bench_``, and only that exact name is ever dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL_ENV = "SMSREG_BENCH_POSTGRES_URL"
NAME_PREFIX = "smsreg_bench_"
# Server settings printed and recorded with the figures: whether the server runs as
# shipped ("stock settings") is part of what the figures mean.
SHOWN_SETTINGS = (
    "shared_buffers",
    "max_connections",
    "fsync",
    "synchronous_commit",
    "max_wal_size",
)
_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}


class SqliteDatabase:
    """A fresh SQLite file in the run's temporary directory (removed with it)."""

    kind = "sqlite"

    def __init__(self, tmp: Path) -> None:
        self.url = f"sqlite:///{tmp / 'bench.db'}"

    def describe(self) -> str:
        return "SQLite file in the work dir"

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def close(self, *, keep: bool) -> bool:
        """Nothing to do: the file goes with the temporary directory (or stays with it)."""
        return True


class PostgresServer:
    """A PostgreSQL server reached through an administrative URL (any existing database)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValueError(
                f"expected postgresql://user@host:port/database, not a {parts.scheme!r} URL"
            )
        # libpq (psycopg, pgbench) and smsreg all read the plain postgresql:// form.
        self._parts = parts._replace(scheme="postgresql", fragment="")
        self.where = f"{parts.hostname}:{parts.port or 5432}"

    def url_for(self, database: str) -> str:
        """The same server, user and options, on another database."""
        return urlunsplit(self._parts._replace(path="/" + database))

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """An autocommit connection to the administrative database; errors as RuntimeError."""
        import psycopg

        try:
            with psycopg.connect(
                urlunsplit(self._parts), autocommit=True, connect_timeout=5
            ) as conn:
                yield conn
        except psycopg.Error as exc:
            raise RuntimeError(f"PostgreSQL at {self.where}: {exc}") from exc

    def describe(self) -> dict[str, Any]:
        """Version and the settings that say how the server is configured."""
        with self.session() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            settings = {
                name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]
                for name in SHOWN_SETTINGS
            }
        return {"server_version": version, "settings": settings}

    def create(self, purpose: str) -> str:
        """A new empty database with a name no other run has; returns the name."""
        name = f"{NAME_PREFIX}{purpose}_{os.getpid()}_{secrets.token_hex(4)}"
        with self.session() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop(self, name: str) -> None:
        """Drop one database this module created, closing any session still on it."""
        if not name.startswith(NAME_PREFIX):
            raise ValueError(f"refusing to drop {name!r}: not a bench database")
        with self.session() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PostgresDatabase:
    """A throwaway database on a PostgreSQL server, for one run of smsreg."""

    kind = "postgres"

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.about = server.describe()
        self.name = server.create("smsreg")
        self.url = server.url_for(self.name)

    def describe(self) -> str:
        settings = ", ".join(f"{k} {v}" for k, v in self.about["settings"].items())
        return (
            f"PostgreSQL {self.about['server_version']} at {self.server.where}, "
            f"database {self.name} ({settings})"
        )

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "server": self.server.where, **self.about}

    def close(self, *, keep: bool) -> bool:
        """Drop the database (unless kept); False when that failed and it is left over."""
        if keep:
            print(f"kept PostgreSQL database {self.name} at {self.server.where}")
            return True
        try:
            self.server.drop(self.name)
        except RuntimeError as exc:
            print(f"could not drop {self.name}: {exc}", file=sys.stderr)
            return False
        return True


def create(kind: str, postgres_url: str, tmp: Path) -> SqliteDatabase | PostgresDatabase:
    """The database for ``--db kind``; a PostgreSQL one exists once this returns."""
    if kind == "postgres":
        return PostgresDatabase(PostgresServer(postgres_url))
    return SqliteDatabase(tmp)


def add_options(parser: argparse.ArgumentParser) -> None:
    """run.py's options for the database."""
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="smsreg's database: a fresh SQLite file (the default), or a throwaway database "
        "on a PostgreSQL server, dropped at the end",
    )
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="administrative URL of the PostgreSQL server for --db postgres "
        f"(default: ${POSTGRES_URL_ENV}, else {DEFAULT_POSTGRES_URL})",
    )


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill in the defaults that depend on other options; refuse what cannot work."""
    args.postgres_url = (
        args.postgres_url or os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    )
    if args.db == "postgres":
        try:
            PostgresServer(args.postgres_url)
        except ValueError as exc:
            parser.error(f"--postgres-url: {exc}")
