"""Bulk writes for bench/seed.py, and what bench/scale.py reads back: row counts and sizes.

PostgreSQL takes each table's rows by ``COPY`` through psycopg; SQLite by
``executemany``, one large transaction per chunk. Values come as Python objects; each
writer turns timestamps, JSON and arrays into what its database stores.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any

import orjson

# Columns per table; "t" a timestamp, "j" JSON (a bigint array on PostgreSQL for "a").
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "subscribers": tuple(
        (c, "t" if c.endswith("_at") else "")
        for c in (
            "id",
            "phone_ciphertext",
            "phone_key_id",
            "phone_index",
            "created_at",
            "last_verified_at",
        )
    ),  # fmt: skip
    "subscriber_purposes": (
        ("subscriber_id", ""),
        ("purpose", ""),
        ("verified_at", "t"),
        ("since", "t"),
    ),
    "verifications": tuple(
        (c, "t" if c.endswith("_at") else "")
        for c in (
            "id",
            "client_id",
            "purpose",
            "locale",
            "phone_ciphertext",
            "phone_key_id",
            "phone_index",
            "prefix_index",
            "code_salt",
            "code_key_id",
            "code_length",
            "status",
            "attempts",
            "max_attempts",
            "send_count",
            "created_at",
            "expires_at",
            "last_sent_at",
            "approved_at",
            "subscriber_id",
        )
    ),  # fmt: skip
    "outbox_messages": tuple(
        (c, "t" if c.endswith("_at") or c == "send_started_at" else "")
        for c in (
            "id",
            "kind",
            "verification_id",
            "status",
            "attempts",
            "claim_token",
            "send_started_at",
            "created_at",
            "next_attempt_at",
            "expires_at",
            "sent_at",
            "carrier",
            "carrier_message_id",
            "delivery_status",
        )
    ),  # fmt: skip
    "audit_events": (("tag", ""), ("actor", ""), ("subject", ""), ("at", "t"), ("details", "j")),
    "consent_events": tuple(
        (c, "t" if c == "at" else "")
        for c in (
            "id",
            "subscriber_id",
            "purpose",
            "action",
            "source",
            "policy_version",
            "client_ip",
            "actor",
            "at",
        )
    ),  # fmt: skip
    "consents": tuple(
        (c, "t" if c == "changed_at" else "")
        for c in (
            "subscriber_id",
            "purpose",
            "status",
            "locale",
            "source",
            "policy_version",
            "event_id",
            "changed_at",
        )
    ),  # fmt: skip
    "send_windows": (("bucket", ""), ("sent_at", "a"), ("expires_at", "t")),
    "rate_limit_hits": (("bucket", ""), ("at", "t"), ("hits", "")),
    "idempotency_records": tuple(
        (c, {"created_at": "t", "response": "j"}.get(c, ""))
        for c in (
            "client_id",
            "key",
            "fingerprint",
            "status_code",
            "response",
            "verification_id",
            "created_at",
        )
    ),  # fmt: skip
    "staff_accounts": tuple(
        (c, "t" if c.endswith("_at") else "")
        for c in (
            "id",
            "username",
            "display_name",
            "role",
            "password_hash",
            "password_changed_at",
            "failed_logins",
            "created_by",
            "created_at",
        )
    ),  # fmt: skip
    "staff_sessions": tuple(
        (c, "t" if c.endswith("_at") else "")
        for c in (
            "id",
            "staff_id",
            "token_hash",
            "token_key_id",
            "source_ip",
            "created_at",
            "expires_at",
            "last_seen_at",
        )
    ),  # fmt: skip
}
Rows = dict[str, list[tuple[Any, ...]]]


# -- writers --------------------------------------------------------------------------------


class SqliteWriter:
    """executemany in one transaction per chunk, with a large page cache while seeding."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-2000000")  # 2 GB, for seeding only

    @staticmethod
    def _adapt(kind: str) -> Callable[[Any], Any] | None:
        if kind == "t":  # app.core.db's SQLite form: naive UTC, always with microseconds
            return lambda v: (
                None if v is None else v.replace(tzinfo=None).isoformat(" ", "microseconds")
            )
        if kind in ("j", "a"):
            return lambda v: orjson.dumps(v).decode()
        return None

    def write(self, rows: Rows) -> None:
        self.conn.execute("BEGIN")
        for name, batch in rows.items():
            if not batch:
                continue
            columns = TABLES[name]
            adapt = [(i, f) for i, (_, kind) in enumerate(columns) if (f := self._adapt(kind))]
            if adapt:
                adapted = []
                for row in batch:
                    values = list(row)
                    for i, f in adapt:
                        values[i] = f(values[i])
                    adapted.append(values)
                batch = adapted
            names = ", ".join(c for c, _ in columns)
            marks = ", ".join("?" * len(columns))
            self.conn.executemany(f"INSERT INTO {name} ({names}) VALUES ({marks})", batch)  # noqa: S608
        self.conn.execute("COMMIT")

    def finish(self) -> None:
        # No ANALYZE: the service never runs it, so its plans are made without statistics.
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()


class PostgresWriter:
    """COPY per table, one transaction per chunk."""

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg.types.json import Json

        self.conn = psycopg.connect(url)
        self.json = Json

    def write(self, rows: Rows) -> None:
        with self.conn.cursor() as cur:
            for name, batch in rows.items():
                if not batch:
                    continue
                columns = TABLES[name]
                wrap = [i for i, (_, kind) in enumerate(columns) if kind == "j"]
                names = ", ".join(c for c, _ in columns)
                with cur.copy(f"COPY {name} ({names}) FROM STDIN") as copy:  # noqa: S608
                    for row in batch:
                        if wrap:
                            row = list(row)  # noqa: PLW2901
                            for i in wrap:
                                row[i] = self.json(row[i])
                        copy.write_row(row)
        self.conn.commit()

    def finish(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT setval(pg_get_serial_sequence('consent_events', 'id'), "
                "coalesce(max(id), 1)) FROM consent_events"
            )
        self.conn.commit()
        self.conn.autocommit = True
        self.conn.execute("VACUUM ANALYZE")  # as autovacuum would after a bulk load
        # The load's dirty pages written out now, not by checkpoints during the first
        # phases: a database loaded long ago has none (at 1M subscribers two such
        # checkpoints fell in one phase and took its p99 from 76 to 119 ms).
        self.conn.execute("CHECKPOINT")
        self.conn.close()


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def writer(url: str) -> SqliteWriter | PostgresWriter:
    """The bulk writer for a database URL."""
    if url.startswith("sqlite:///"):
        return SqliteWriter(_sqlite_path(url))
    return PostgresWriter(url)


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one read-only query, on either database."""
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(_sqlite_path(url))) as conn:
            return conn.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def table_sizes(url: str) -> dict[str, tuple[int, int]]:
    """(bytes with indexes, rows) per table that holds anything, largest first."""
    if url.startswith("sqlite:///"):
        sizes = query(
            url,
            "SELECT m.tbl_name, sum(d.pgsize) FROM dbstat AS d "
            "JOIN sqlite_master AS m ON m.name = d.name GROUP BY m.tbl_name",
        )
    else:
        sizes = query(
            url,
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
        )
    found = {}
    for name, size in sorted(sizes, key=lambda row: -int(row[1])):
        if name.startswith(("sqlite_", "alembic")):
            continue
        rows = int(query(url, f"SELECT count(*) FROM {name}")[0][0])  # noqa: S608
        if rows:
            found[str(name)] = (int(size), rows)
    return found
