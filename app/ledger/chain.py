"""The hash chain: what an entry's hash covers, and appending without ever forking.

Each entry has a content hash and an entry hash:

- ``content_sha256`` = SHA-256 of the canonical JSON (canonical.py) of the entry's
  content: every stored column except ``prev_hash`` and ``entry_hash``, lists as JSON
  arrays, ``recorded_at`` as a canonical timestamp, plus ``"v": 1``;
- ``entry_hash`` = SHA-256 of the canonical JSON of
  ``{"content_sha256": ..., "prev_hash": ..., "seq": ...}``;
- the first entry's ``prev_hash`` is 64 zeros; every other one's is the entry hash
  before it. Sequence numbers start at 1 and have no gaps.

Hashing the content first lets an export leave out entries a filter did not select and
still prove the rest belong to the signed chain: a left-out entry travels as a "link"
(its seq, content hash and entry hash), enough to recompute the chain, nothing of its
content.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import orjson

from app.core.db import Row, Tx, xact_lock
from app.ledger import canonical
from app.ledger import repository as repo

GENESIS = "0" * 64
VERSION = 1
APPEND_LOCK = "ledger:append"

# Content columns in storage order; the lists are stored as canonical JSON text.
CONTENT_FIELDS = (
    "seq",
    "recorded_at",
    "request_id",
    "recipient_organisation",
    "recipient_officer",
    "recipient_contact",
    "recipient_key",
    "legal_basis",
    "purpose",
    "request_reference",
    "data_items",
    "subject_ids",
    "requested_by",
    "approved_by",
    "released_by",
    "necessity_review",
    "approval_note",
    "consent",
    "package_sha256",
    "package_csv_sha256",
)
JSON_FIELDS = frozenset({"data_items", "subject_ids", "consent"})
ENTRY_FIELDS = (*CONTENT_FIELDS, "prev_hash", "entry_hash")


def content_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed content of a stored row (JSON text columns parsed)."""
    content: dict[str, Any] = {"v": VERSION}
    for name in CONTENT_FIELDS:
        value = row[name]
        if name in JSON_FIELDS and isinstance(value, str):
            value = orjson.loads(value)
        elif name == "recorded_at" and isinstance(value, dt.datetime):
            value = canonical.timestamp(value)
        content[name] = value
    return content


def content_hash(content: Mapping[str, Any]) -> str:
    """SHA-256 of an entry's canonical content."""
    return canonical.sha256_hex(canonical.dumps(content))


def entry_hash(*, seq: int, prev_hash: str, content_sha256: str) -> str:
    """The hash that chains an entry to the one before it."""
    link = {"content_sha256": content_sha256, "prev_hash": prev_hash, "seq": seq}
    return canonical.sha256_hex(canonical.dumps(link))


def hash_row(row: Mapping[str, Any]) -> str:
    """The entry hash a stored row should have."""
    return entry_hash(
        seq=int(row["seq"]),
        prev_hash=row["prev_hash"],
        content_sha256=content_hash(content_of(row)),
    )


def lock(tx: Tx) -> None:
    """Hold the chain's append lock until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so concurrent releases on any
    replica append one after another and each reads the head the last one wrote.
    SQLite: the write lock every transaction already takes at BEGIN IMMEDIATE.
    """
    xact_lock(tx, APPEND_LOCK)


def head(tx: Tx) -> tuple[int, str]:
    """(seq, entry hash) of the newest entry, or (0, GENESIS) for an empty chain."""
    row = repo.head(tx)
    return (0, GENESIS) if row is None else (int(row.seq), str(row.entry_hash))


def append(tx: Tx, fields: Mapping[str, Any]) -> Row:
    """Append one entry; the caller holds :func:`lock` and gives every content field
    but ``seq`` (lists as Python lists, ``recorded_at`` an aware datetime)."""
    last_seq, last_hash = head(tx)
    row = Row(fields)
    row["seq"] = last_seq + 1
    for name in JSON_FIELDS:
        value = row.get(name)
        row[name] = None if value is None else canonical.dumps(value).decode()
    row["prev_hash"] = last_hash
    row["entry_hash"] = hash_row(row)
    repo.insert_entry(tx, row)
    return row
