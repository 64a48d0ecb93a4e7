"""The hash chain: what an entry's hash covers, and appending without ever forking.

Each entry has a content hash and an entry hash:

- ``content_sha256`` = SHA-256 of the canonical JSON (canonical.py) of the entry's
  content: every stored column except ``prev_hash`` and ``entry_hash``, lists as JSON
  arrays, ``recorded_at`` as a canonical timestamp, plus ``"v": 1``; an optional field
  (``stop_overridden``) only when it is set;
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

from collections.abc import Mapping
from typing import Any

from app.core.tx import Tx
from app.ledger import canonical
from app.ledger import repository as repo
from app.models.ledger import LedgerEntry

GENESIS = "0" * 64
VERSION = 1
APPEND_LOCK = "ledger:append"

# Content fields in storage order.
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
# Content fields added later: hashed only when set, so the entries written before them
# keep their hashes (null and absent mean the same: nothing to record).
OPTIONAL_FIELDS = ("stop_overridden",)
# The fields that hold JSON (lists, and the consent object).
JSON_FIELDS = frozenset({"data_items", "subject_ids", "consent", "stop_overridden"})


def hashed_content(record: Mapping[str, Any]) -> dict[str, Any]:
    """The content an exported or stored record's hash covers: ``v``, every content
    field, and each optional field that is set."""
    content = {key: record[key] for key in ("v", *CONTENT_FIELDS)}
    for name in OPTIONAL_FIELDS:
        if record.get(name) is not None:
            content[name] = record[name]
    return content


def content_of(entry: LedgerEntry) -> dict[str, Any]:
    """The hashed content of an entry: its content fields, ``recorded_at`` as a canonical
    timestamp, and the version."""
    content: dict[str, Any] = {"v": VERSION}
    for name in CONTENT_FIELDS:
        content[name] = getattr(entry, name)
    content["recorded_at"] = canonical.timestamp(entry.recorded_at)
    for name in OPTIONAL_FIELDS:
        if getattr(entry, name) is not None:
            content[name] = getattr(entry, name)
    return content


def content_hash(content: Mapping[str, Any]) -> str:
    """SHA-256 of an entry's canonical content."""
    return canonical.sha256_hex(canonical.dumps(content))


def entry_hash(*, seq: int, prev_hash: str, content_sha256: str) -> str:
    """The hash that chains an entry to the one before it."""
    link = {"content_sha256": content_sha256, "prev_hash": prev_hash, "seq": seq}
    return canonical.sha256_hex(canonical.dumps(link))


def hash_entry(entry: LedgerEntry) -> str:
    """The entry hash an entry should have."""
    return entry_hash(
        seq=entry.seq, prev_hash=entry.prev_hash, content_sha256=content_hash(content_of(entry))
    )


async def lock(tx: Tx) -> None:
    """Hold the chain's append lock until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so concurrent releases on any
    replica append one after another and each reads the head the last one wrote.
    SQLite: the write lock every transaction already holds.
    """
    await tx.lock(APPEND_LOCK)


async def head(tx: Tx) -> tuple[int, str]:
    """(seq, entry hash) of the newest entry, or (0, GENESIS) for an empty chain."""
    found = await repo.head(tx)
    return (0, GENESIS) if found is None else (found.seq, found.hash)


async def append(tx: Tx, fields: Mapping[str, Any]) -> LedgerEntry:
    """Append one entry; the caller holds :func:`lock` and gives every content field
    but ``seq`` (lists as lists, ``recorded_at`` an aware datetime)."""
    # Durable before any other unit reads it: a checkpoint signs the head and writes it
    # to the witness, and a witness line must never name an entry that was lost.
    tx.commit_alone()
    last_seq, last_hash = await head(tx)
    entry = LedgerEntry(**fields, seq=last_seq + 1, prev_hash=last_hash, entry_hash="")
    entry.entry_hash = hash_entry(entry)
    await repo.insert_entry(tx, entry)
    return entry
