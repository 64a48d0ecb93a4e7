"""Every query of the disclosure workflow and the ledger, as fixed SQL.

The ledger tables get no UPDATE and no DELETE here: entries, their subject index and
checkpoints are only inserted and read (the retention purge, the one exception, lives
in retention.py and the database refuses it for any entry younger than three years).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from app.core.db import Database, Row, Tx

_ENTRY_COLUMNS = (
    "seq, recorded_at, request_id, recipient_organisation, recipient_officer, "
    "recipient_contact, recipient_key, legal_basis, purpose, request_reference, data_items, "
    "subject_ids, requested_by, approved_by, released_by, necessity_review, approval_note, "
    "consent, package_sha256, package_csv_sha256, prev_hash, entry_hash"
)
_INSERT_ENTRY = (
    f"INSERT INTO ledger_entries ({_ENTRY_COLUMNS}) VALUES ("  # noqa: S608 (fixed columns)
    + ", ".join(":" + name.strip() for name in _ENTRY_COLUMNS.split(","))
    + ")"
)
_BATCH_SQL = (
    f"SELECT {_ENTRY_COLUMNS} FROM ledger_entries WHERE seq > :after "  # noqa: S608
    "AND seq <= :last ORDER BY seq LIMIT :limit"
)
_CHECKPOINT_COLUMNS = "id, kind, seq, head_hash, created_at, key_id, signature"
_REQUEST_COLUMNS = (
    "id, status, recipient_organisation, recipient_officer, recipient_contact, recipient_key, "
    "legal_basis, purpose, request_reference, data_items, subject_ids, necessity_review, "
    "requested_by, requester_role, requested_at, decided_by, decided_at, decision_note, "
    "released_by, released_at, ledger_seq"
)
BATCH = 2000
_IN_CHUNK = 500


def _placeholders(prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    names = {f"{prefix}{i}": value for i, value in enumerate(values)}
    return ", ".join(":" + name for name in names), names


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


# --- reading in a consistent snapshot ---------------------------------------------------


@contextlib.contextmanager
def snapshot(db: Database) -> Iterator[Tx]:
    """A read-only transaction over one consistent snapshot, for exports and verification.

    SQLite: a deferred transaction, so a long read never holds the write lock (WAL lets
    writers go on). PostgreSQL: REPEATABLE READ, READ ONLY. Always rolled back.
    """
    fairy = db.engine.raw_connection()
    try:
        tx = Tx(fairy.driver_connection, db.engine.dialect.name)
        try:
            if tx.sqlite:
                tx.rollback()  # Tx opened BEGIN IMMEDIATE; a reader needs no write lock
                tx.execute("BEGIN")
            else:
                tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield tx
        finally:
            with contextlib.suppress(Exception):
                tx.rollback()
            tx.close()
    finally:
        fairy.close()


# --- ledger entries ------------------------------------------------------------------


def head(tx: Tx) -> Row | None:
    """The newest entry's seq and hash."""
    return tx.one("SELECT seq, entry_hash FROM ledger_entries ORDER BY seq DESC LIMIT 1")


def first(tx: Tx) -> Row | None:
    """The oldest kept entry's seq and prev hash."""
    return tx.one("SELECT seq, prev_hash FROM ledger_entries ORDER BY seq LIMIT 1")


def insert_entry(tx: Tx, row: Row) -> None:
    """Insert an entry and its subject index rows."""
    tx.execute(_INSERT_ENTRY, row)
    tx.executemany(
        "INSERT INTO ledger_entry_subjects (subject_id, seq, recorded_at) "
        "VALUES (:subject_id, :seq, :recorded_at)",
        [
            {"subject_id": subject, "seq": row["seq"], "recorded_at": row["recorded_at"]}
            for subject in orjson.loads(row["subject_ids"])
        ],
    )


def entry(tx: Tx, seq: int) -> Row | None:
    """One entry by its sequence number."""
    return tx.one(
        f"SELECT {_ENTRY_COLUMNS} FROM ledger_entries WHERE seq = :seq",  # noqa: S608
        {"seq": seq},
    )


def entry_batches(
    tx: Tx, *, first_seq: int = 1, last_seq: int | None = None, size: int = BATCH
) -> Iterator[list[Row]]:
    """Entries in seq order, in keyset batches (constant memory, any table size)."""
    after = first_seq - 1
    last = last_seq if last_seq is not None else 2**62
    while True:
        batch = tx.all(_BATCH_SQL, {"after": after, "last": last, "limit": size})
        if batch:
            yield batch
        if len(batch) < size:
            return
        after = int(batch[-1]["seq"])


def entries(tx: Tx, *, first_seq: int = 1, last_seq: int | None = None) -> Iterator[Row]:
    """Entries in seq order (see :func:`entry_batches`)."""
    for batch in entry_batches(tx, first_seq=first_seq, last_seq=last_seq):
        yield from batch


def subject_index(tx: Tx, *, first_seq: int, last_seq: int) -> list[Row]:
    """The subject index rows of a seq range, in seq order."""
    return tx.all(
        "SELECT seq, subject_id FROM ledger_entry_subjects WHERE seq >= :first AND seq <= :last "
        "ORDER BY seq, subject_id",
        {"first": first_seq, "last": last_seq},
    )


def seq_of_hash(tx: Tx, entry_hash: str) -> int | None:
    """Which stored entry has this hash."""
    found = tx.scalar("SELECT seq FROM ledger_entries WHERE entry_hash = :h", {"h": entry_hash})
    return None if found is None else int(found)


def count_entries(tx: Tx) -> int:
    """How many entries are kept."""
    return int(tx.scalar("SELECT count(*) AS n FROM ledger_entries"))


def matching_range(
    tx: Tx,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    recipient_key: str | None,
    legal_basis: str | None,
    subject_id: str | None,
) -> tuple[int | None, int | None]:
    """(lowest, highest) seq of the entries a filter selects."""
    where = ["1 = 1"]
    params: dict[str, Any] = {}
    if since is not None:
        where.append("e.recorded_at >= :since")
        params["since"] = since
    if until is not None:
        where.append("e.recorded_at < :until")
        params["until"] = until
    if recipient_key is not None:
        where.append("e.recipient_key = :recipient_key")
        params["recipient_key"] = recipient_key
    if legal_basis is not None:
        where.append("e.legal_basis = :legal_basis")
        params["legal_basis"] = legal_basis
    if subject_id is not None:
        where.append(
            "EXISTS (SELECT 1 FROM ledger_entry_subjects s WHERE s.seq = e.seq "
            "AND s.subject_id = :subject_id)"
        )
        params["subject_id"] = subject_id
    row = tx.one(
        "SELECT min(e.seq) AS lo, max(e.seq) AS hi FROM ledger_entries e WHERE "  # noqa: S608
        + " AND ".join(where),
        params,
    )
    if row is None or row["lo"] is None:
        return None, None
    return int(row["lo"]), int(row["hi"])


def entries_for_subject(tx: Tx, *, subject_id: str, limit: int, after_seq: int = 0) -> list[Row]:
    """A subject's disclosure records (APPI Art. 33(5)), oldest first."""
    return tx.all(
        f"SELECT {_ENTRY_COLUMNS} FROM ledger_entries WHERE seq IN ("  # noqa: S608
        "SELECT seq FROM ledger_entry_subjects WHERE subject_id = :subject_id AND seq > :after) "
        "ORDER BY seq LIMIT :limit",
        {"subject_id": subject_id, "after": after_seq, "limit": limit},
    )


# --- checkpoints -----------------------------------------------------------------------


def insert_checkpoint(tx: Tx, row: dict[str, Any]) -> int:
    """Insert a checkpoint; returns its id."""
    tx.execute(
        "INSERT INTO ledger_checkpoints (kind, seq, head_hash, created_at, key_id, signature) "
        "VALUES (:kind, :seq, :head_hash, :created_at, :key_id, :signature)",
        row,
    )
    return int(
        tx.scalar(
            "SELECT id FROM ledger_checkpoints WHERE seq = :seq AND signature = :signature",
            {"seq": row["seq"], "signature": row["signature"]},
        )
    )


def latest_checkpoint(tx: Tx, *, kind: str = "head") -> Row | None:
    """The newest checkpoint of a kind."""
    return tx.one(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE kind = :kind "  # noqa: S608
        "ORDER BY seq DESC, id DESC LIMIT 1",
        {"kind": kind},
    )


def checkpoints(tx: Tx, *, first_seq: int = 0, last_seq: int | None = None) -> list[Row]:
    """Checkpoints in a seq range, in seq order (a few per day: small)."""
    return tx.all(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM ledger_checkpoints "  # noqa: S608
        "WHERE seq >= :first AND seq <= :last ORDER BY seq, id",
        {"first": first_seq, "last": last_seq if last_seq is not None else 2**62},
    )


def covering_checkpoint(tx: Tx, *, seq: int) -> Row | None:
    """The first head checkpoint at or after a seq."""
    return tx.one(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM ledger_checkpoints "  # noqa: S608
        "WHERE kind = 'head' AND seq >= :seq ORDER BY seq, id LIMIT 1",
        {"seq": seq},
    )


# --- disclosure requests -------------------------------------------------------------


def insert_request(tx: Tx, row: dict[str, Any]) -> None:
    """Insert a new request."""
    tx.execute(
        "INSERT INTO disclosure_requests (id, status, recipient_organisation, recipient_officer, "
        "recipient_contact, recipient_key, legal_basis, purpose, request_reference, data_items, "
        "subject_ids, necessity_review, requested_by, requester_role, requested_at) VALUES "
        "(:id, :status, :recipient_organisation, :recipient_officer, :recipient_contact, "
        ":recipient_key, :legal_basis, :purpose, :request_reference, :data_items, :subject_ids, "
        ":necessity_review, :requested_by, :requester_role, :requested_at)",
        row,
    )


def get_request(tx: Tx, request_id: str, *, lock: bool = False) -> Row | None:
    """A request; ``lock`` holds its row until the transaction ends (PostgreSQL)."""
    sql = f"SELECT {_REQUEST_COLUMNS} FROM disclosure_requests WHERE id = :id"  # noqa: S608
    if lock and not tx.sqlite:
        sql += " FOR UPDATE"
    return tx.one(sql, {"id": request_id})


def list_requests(tx: Tx, *, status: str | None, limit: int) -> list[Row]:
    """Requests, newest first, optionally of one status."""
    if status is None:
        return tx.all(
            f"SELECT {_REQUEST_COLUMNS} FROM disclosure_requests "  # noqa: S608
            "ORDER BY requested_at DESC, id LIMIT :limit",
            {"limit": limit},
        )
    return tx.all(
        f"SELECT {_REQUEST_COLUMNS} FROM disclosure_requests WHERE status = :status "  # noqa: S608
        "ORDER BY requested_at DESC, id LIMIT :limit",
        {"status": status, "limit": limit},
    )


def decide_request(
    tx: Tx, *, request_id: str, status: str, by: str, at: dt.datetime, note: str
) -> bool:
    """Approve or reject a pending request; False if it was no longer pending."""
    return (
        tx.execute(
            "UPDATE disclosure_requests SET status = :status, decided_by = :by, "
            "decided_at = :at, decision_note = :note WHERE id = :id AND status = 'requested'",
            {"status": status, "by": by, "at": at, "note": note, "id": request_id},
        )
        == 1
    )


def mark_released(tx: Tx, *, request_id: str, by: str, at: dt.datetime, ledger_seq: int) -> bool:
    """Mark an approved request released; False if it was not (still) approved."""
    return (
        tx.execute(
            "UPDATE disclosure_requests SET status = 'released', released_by = :by, "
            "released_at = :at, ledger_seq = :seq WHERE id = :id AND status = 'approved'",
            {"by": by, "at": at, "seq": ledger_seq, "id": request_id},
        )
        == 1
    )


# --- subjects: registry rows, consent to provide, stops ----------------------------------


def existing_subscribers(tx: Tx, subject_ids: Sequence[str]) -> set[str]:
    """Which of these subscriber ids exist."""
    found: set[str] = set()
    for chunk in _chunks(subject_ids):
        marks, params = _placeholders("s", chunk)
        found.update(
            row["id"]
            for row in tx.all(
                f"SELECT id FROM subscribers WHERE id IN ({marks})",  # noqa: S608
                params,
            )
        )
    return found


def subscribers_for_package(tx: Tx, subject_ids: Sequence[str]) -> list[Row]:
    """What a package may hold about these subscribers (numbers still encrypted)."""
    rows: list[Row] = []
    for chunk in _chunks(subject_ids):
        marks, params = _placeholders("s", chunk)
        rows.extend(
            tx.all(
                "SELECT id, phone_ciphertext, phone_key_id, phone_index, created_at, "  # noqa: S608
                f"last_verified_at FROM subscribers WHERE id IN ({marks})",
                params,
            )
        )
    return rows


def purposes_of(tx: Tx, subject_ids: Sequence[str]) -> dict[str, list[str]]:
    """The purposes each subscriber was verified for."""
    out: dict[str, list[str]] = {}
    for chunk in _chunks(subject_ids):
        marks, params = _placeholders("s", chunk)
        for row in tx.all(
            "SELECT subscriber_id, purpose FROM subscriber_purposes "  # noqa: S608
            f"WHERE subscriber_id IN ({marks}) ORDER BY subscriber_id, purpose",
            params,
        ):
            out.setdefault(row["subscriber_id"], []).append(row["purpose"])
    return out


def stopped_subjects(tx: Tx, subject_ids: Sequence[str]) -> set[str]:
    """Which of these subscribers asked to stop third-party provision."""
    found: set[str] = set()
    for chunk in _chunks(subject_ids):
        marks, params = _placeholders("s", chunk)
        found.update(
            row["subscriber_id"]
            for row in tx.all(
                f"SELECT subscriber_id FROM disclosure_stops WHERE subscriber_id IN ({marks})",  # noqa: S608
                params,
            )
        )
    return found


def live_consents(tx: Tx, subject_ids: Sequence[str], *, recipient_key: str) -> dict[str, Row]:
    """The live consents of these subscribers to one recipient, by subscriber id."""
    found: dict[str, Row] = {}
    for chunk in _chunks(subject_ids):
        marks, params = _placeholders("s", chunk)
        for row in tx.all(
            "SELECT subscriber_id, granted_at, source FROM disclosure_consents "  # noqa: S608
            f"WHERE recipient_key = :rk AND withdrawn_at IS NULL AND subscriber_id IN ({marks})",
            {**params, "rk": recipient_key},
        ):
            found[row["subscriber_id"]] = row
    return found


def upsert_consent(tx: Tx, row: dict[str, Any]) -> None:
    """Record (or renew) a subject's consent to one recipient."""
    tx.execute(
        "INSERT INTO disclosure_consents (subscriber_id, recipient_key, recipient_organisation, "
        "source, granted_at, withdrawn_at) VALUES (:subscriber_id, :recipient_key, "
        ":recipient_organisation, :source, :granted_at, NULL) "
        "ON CONFLICT (subscriber_id, recipient_key) DO UPDATE SET "
        "recipient_organisation = excluded.recipient_organisation, source = excluded.source, "
        "granted_at = excluded.granted_at, withdrawn_at = NULL",
        row,
    )


def withdraw_consent(tx: Tx, *, subscriber_id: str, recipient_key: str, at: dt.datetime) -> bool:
    """Withdraw a live consent; False if there was none."""
    return (
        tx.execute(
            "UPDATE disclosure_consents SET withdrawn_at = :at WHERE subscriber_id = :s "
            "AND recipient_key = :rk AND withdrawn_at IS NULL",
            {"at": at, "s": subscriber_id, "rk": recipient_key},
        )
        == 1
    )


def consents_of(tx: Tx, subscriber_id: str) -> list[Row]:
    """Every consent-to-provide record of a subscriber."""
    return tx.all(
        "SELECT recipient_key, recipient_organisation, source, granted_at, withdrawn_at "
        "FROM disclosure_consents WHERE subscriber_id = :s ORDER BY recipient_key",
        {"s": subscriber_id},
    )


def insert_stop(tx: Tx, *, subscriber_id: str, source: str, at: dt.datetime) -> bool:
    """Record a stop of third-party provision; False if one was already recorded."""
    return (
        tx.execute(
            "INSERT INTO disclosure_stops (subscriber_id, source, stopped_at) "
            "VALUES (:s, :source, :at) ON CONFLICT (subscriber_id) DO NOTHING",
            {"s": subscriber_id, "source": source, "at": at},
        )
        == 1
    )


def delete_stop(tx: Tx, *, subscriber_id: str) -> bool:
    """Lift a stop (the subject's own choice); False if there was none."""
    return (
        tx.execute("DELETE FROM disclosure_stops WHERE subscriber_id = :s", {"s": subscriber_id})
        == 1
    )


def stop_of(tx: Tx, subscriber_id: str) -> Row | None:
    """A subscriber's stop, if any."""
    return tx.one(
        "SELECT subscriber_id, source, stopped_at FROM disclosure_stops WHERE subscriber_id = :s",
        {"s": subscriber_id},
    )
