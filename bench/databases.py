"""The database bench/run.py measures smsreg on, and pgbench for the server's own figure.

- ``sqlite``: a fresh file in the run's temporary directory (the embedded default).
- ``postgres``: a throwaway database on a PostgreSQL server (by default the local one at
  ``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth), created empty, migrated
  by ``smsreg migrate`` like any other, and dropped when the run ends, fails or is
  interrupted.
- pgbench: ``pgbench -N`` on a scratch database of its own, initialised, run and dropped
  in the same sitting as the smsreg rounds, so the two figures meet the same machine.

Nothing here touches a database it did not create: each one it makes gets a fresh name
beginning with ``smsreg_bench_``, and only that exact name is ever dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
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
_TPS = re.compile(
    r"^tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)",
    re.MULTILINE,
)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


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
    """run.py's options for the database and pgbench."""
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
        help="administrative URL of the PostgreSQL server for --db postgres and pgbench "
        f"(default: ${POSTGRES_URL_ENV}, else {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument(
        "--pgbench",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="after the rounds, run `pgbench -N` with as many clients on a scratch database "
        "of the PostgreSQL server, and show its tps beside smsreg's figures (default: on "
        "with --db postgres)",
    )
    parser.add_argument("--pgbench-seconds", type=int, default=10, help="pgbench -T")
    parser.add_argument("--pgbench-scale", type=int, default=10, help="pgbench -i -s")


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill in the defaults that depend on other options; refuse what cannot work."""
    if args.pgbench is None:
        args.pgbench = args.db == "postgres"
    if args.pgbench_seconds < 1 or args.pgbench_scale < 1:
        parser.error("--pgbench-seconds and --pgbench-scale must be at least 1")
    args.postgres_url = (
        args.postgres_url or os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    )
    if args.db == "postgres" or args.pgbench:
        try:
            PostgresServer(args.postgres_url)
        except ValueError as exc:
            parser.error(f"--postgres-url: {exc}")


def find_pgbench() -> str:
    """pgbench on PATH, else the newest one the PostgreSQL packages installed."""
    found = shutil.which("pgbench")
    if found:
        return found
    installed = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pgbench"),
        key=lambda path: int(re.sub(r"\D", "", Path(path).parts[-3]) or 0),
    )
    if installed:
        return installed[-1]
    raise RuntimeError("pgbench not found on PATH nor in /usr/lib/postgresql/*/bin")


def _run(cmd: list[str], timeout: float) -> str:
    """Run pgbench; on failure, say so without the database URL (it may hold a password)."""
    shown = " ".join(arg for arg in cmd if "://" not in arg)
    try:
        done = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"{shown}: {exc.__class__.__name__}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise RuntimeError(f"{shown} exited with {done.returncode}:\n{tail}")
    return done.stdout


def run_pgbench(
    server: PostgresServer, binary: str, *, scale: int, clients: int, seconds: int
) -> dict[str, Any]:
    """``pgbench -N`` at ``clients`` clients on a scratch database, dropped afterwards.

    Returns what the JSON records: the command, tps (without the initial connection
    time), the average latency, the transactions processed and failed; or, when pgbench
    fails, ``{"error": ...}``, so the smsreg figures of the same sitting are kept.
    """
    jobs = min(2, clients)
    print(f"pgbench: scale {scale}, then -N -c {clients} -j {jobs} -T {seconds} ...", flush=True)
    try:
        return _pgbench(server, binary, scale=scale, clients=clients, jobs=jobs, seconds=seconds)
    except RuntimeError as exc:
        return {"error": str(exc)}


def pgbench_lines(result: dict[str, Any], rows: dict[str, tuple[float, float]]) -> list[str]:
    """pgbench's tps, then each row's (req/s, p50 ms) beside it."""
    if "error" in result:
        return [f"pgbench FAILED: {result['error']}"]
    tps = result["tps"]
    lines = [
        f"beside pgbench in the same sitting (scale {result['scale']}, same server):",
        f"  {result['command']:<34}{tps:>8.0f} tps    "
        f"latency avg {result['latency_avg_ms']} ms, failed {result['failed']}",
    ]
    for label, (rps, p50_ms) in rows.items():
        lines.append(
            f"  {label:<34}{rps:>8.0f} req/s  p50 {p50_ms:.2f} ms, {rps / tps:.1%} of pgbench tps"
        )
    return lines


def _pgbench(
    server: PostgresServer, binary: str, *, scale: int, clients: int, jobs: int, seconds: int
) -> dict[str, Any]:
    version = _run([binary, "--version"], timeout=30).strip()
    args = ["-N", "-c", str(clients), "-j", str(jobs), "-T", str(seconds)]
    name = server.create("pgbench")
    try:
        url = server.url_for(name)
        started = time.monotonic()
        _run([binary, "--initialize", "--quiet", "--scale", str(scale), url], timeout=900)
        init_seconds = time.monotonic() - started
        out = _run([binary, *args, url], timeout=seconds + 120)
    finally:
        server.drop(name)
    tps = _TPS.search(out)
    if tps is None or float(tps.group(1)) <= 0:
        raise RuntimeError(f"no tps figure in pgbench's output:\n{out}")
    latency, processed, failed = (p.search(out) for p in (_LATENCY, _PROCESSED, _FAILED))
    return {
        "command": " ".join(["pgbench", *args]),
        "scale": scale,
        "clients": clients,
        "jobs": jobs,
        "seconds": seconds,
        "init_seconds": round(init_seconds, 1),
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        "transactions": int(processed.group(1)) if processed else None,
        "failed": int(failed.group(1)) if failed else None,
        "version": version,
    }
