"""Whether an error says the database cannot be reached or take the work now."""

from __future__ import annotations

import re
from collections.abc import Iterator
from socket import gaierror

import asyncpg
import psycopg
from sqlalchemy import exc as sa_exc

# SQLite's result codes for a database it cannot use now: locked past the wait, full,
# unreadable or unopenable (sqlite3's constants).
_SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 13, 14})  # BUSY, LOCKED, IOERR, FULL, CANTOPEN
# PostgreSQL's SQLSTATEs for a server that will not take the connection or the work now:
# class 08 (connection exception), 53 (insufficient resources: disk, memory, too many
# connections), 57 (operator intervention: shutting down, a statement timeout), a lock
# not granted in time (55P03), a deadlock or serialisation failure (40P01, 40001), a
# read-only server after a failover (25006), a database that does not exist (3D000).
_POSTGRES_UNAVAILABLE = ("08", "53", "57", "55P03", "40P01", "40001", "25006", "3D000")
# What asyncpg says, with no SQLSTATE, of a connection the server closed (a restart, a
# terminated backend), and PostgreSQL of a database closed to connections (55000 is
# also a bug's code, so only with that message).
_LOST = re.compile(r"connection (?:is|was) closed|not currently accepting connections")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the database cannot be reached or take
    the work now, rather than that a statement is wrong: a refused or lost connection, a
    host that does not resolve, a pool that had none to give in time, a server shutting
    down, out of resources or read-only, a lock or a statement that timed out, a
    deadlock, a database that is gone, SQLite locked, full or unreadable."""
    for found in _causes(exc):
        # sqlalchemy.exc.TimeoutError: the pool had no connection to give in time.
        if isinstance(found, ConnectionError | TimeoutError | sa_exc.TimeoutError | gaierror):
            return True
        state = getattr(found, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_POSTGRES_UNAVAILABLE):
            return True
        if state == "55000" and _LOST.search(str(found)):
            return True
        code = getattr(found, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_UNAVAILABLE:
            return True
        if isinstance(found, OSError) and str(found).startswith("Multiple exceptions"):
            return True  # asyncpg: every address of the server refused the connection
        if isinstance(found, asyncpg.InterfaceError) and _LOST.search(str(found)):
            return True  # no SQLSTATE: the server ended the session (a restart, a kill)
        if isinstance(found, psycopg.OperationalError) and found.sqlstate is None:
            return True  # the tools' driver: no SQLSTATE when it could not connect at all
    return False


def missing_privilege(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is PostgreSQL's insufficient_privilege (42501):
    the role was not granted a table (the grants not applied after a migration)."""
    return any(getattr(found, "sqlstate", None) == "42501" for found in _causes(exc))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (a driver's error under SQLAlchemy's, a cause,
    a context), each once."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        found = pending.pop()
        if found is None or id(found) in seen:
            continue
        seen.add(id(found))
        yield found
        pending += [getattr(found, "orig", None), found.__cause__, found.__context__]
