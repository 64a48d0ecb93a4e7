"""The embedded SQLite database: its engine recipe, and checkpoints off the event loop.

In WAL mode every commit appends the pages it changed to the write-ahead log, and a
*checkpoint* copies them back into the database file, syncing both files to disk. SQLite
runs one by itself in the connection that commits once the log holds 1,000 pages: on the
serving connection, which runs inline on the event loop, that stalled every request in
flight for milliseconds about once a hundred commits. The serving connection therefore
turns its automatic checkpoints off, and a :class:`Checkpointer` thread runs a PASSIVE
checkpoint a few times a second on a connection of its own. PASSIVE never waits for
readers or writers and never blocks them; SQLite releases the GIL while it copies, so
the loop goes on serving.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger("smsreg.db")

# How often the checkpointer looks at the log, in seconds. At a thousand commits a second
# the log grows by a few MB in this time, and is reused from its start after each
# complete checkpoint.
CHECKPOINT_INTERVAL = 0.2


def _owner_only(database: Path) -> None:
    """The database file, created 0600 if missing, and it, its -wal and its -shm made
    0600: they hold the registry (sealed numbers, but every index and audit row).

    Never opens a file that exists: closing any descriptor of a database file drops
    every POSIX lock the process holds on it, those of its live connections too.
    """
    with suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in ("", "-wal", "-shm"):
        with suppress(FileNotFoundError):
            database.with_name(database.name + suffix).chmod(0o600)


def sqlite_engine(url: str, *, cache_mb: int | None) -> Engine:
    """A SQLite engine: WAL, transactions begun IMMEDIATE, a page cache of ``cache_mb``
    if given, owner-only files, deleted bytes overwritten."""
    database = sa.engine.make_url(url).database
    path: Path | None = None
    if database and database != ":memory:":
        path = Path(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        # SQLite creates -wal and -shm with the database file's mode: 0600 from the start.
        _owner_only(path)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    # SQLAlchemy's documented recipe for transactions the driver does not begin by
    # itself: autocommit at the driver, and BEGIN where the transaction starts.
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL survives a process crash; only a power cut may lose the last
        # commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if cache_mb is not None:  # a negative size is in KiB
            cursor.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
        # A deleted row's bytes are overwritten, not left in a free page: an erased
        # subject's encrypted number and blind index must not survive in the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()
        if path is not None:  # files an older version created 0644 are narrowed too
            _owner_only(path)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front, so a read-then-write (a limit check
        # and its insert) is atomic across processes instead of failing late. The
        # service's unit of work may have begun it on the driver connection already.
        if not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Checkpointer:
    """A thread that copies the write-ahead log into the database file (module docstring).

    The connection it is given for is the one whose automatic checkpoints it replaces:
    :meth:`start` turns them off there.
    """

    def __init__(self, engine: Engine, *, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, serving: Any) -> None:
        """Turn off automatic checkpoints on ``serving`` (a driver connection) and start."""
        if self._engine.url.database in (None, "", ":memory:"):
            return  # one connection's private database: there is no log to share
        serving.execute("PRAGMA wal_autocheckpoint=0")
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the checkpoint in progress, if any (closing the last connection
        then checkpoints what is left)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        raw = self._engine.raw_connection()
        try:
            while not self._stop.wait(self._interval):
                try:
                    raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").close()  # type: ignore[union-attr]
                except Exception as exc:  # a full disk, say: try again, keep serving
                    log.warning("checkpoint failed", extra={"error_type": type(exc).__name__})
        finally:
            raw.close()
