"""Disclosures: requests and their review, the subjects' say, and the append-only ledger.

The ledger tables (``ledger_entries``, ``ledger_entry_subjects``, ``ledger_checkpoints``)
are append-only in the database itself: the migration adds triggers that refuse UPDATE
(and DELETE, except of entries past the legal minimum retention) on both SQLite and
PostgreSQL. Lists are stored as canonical JSON text (sorted keys, no whitespace), the
exact form that is hashed, and read back as lists by the column type. No ledger column
ever holds a phone number.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.types import timestamp


class CanonicalJson(sa.types.TypeDecorator[Any]):
    """JSON kept as canonical text (keys sorted, no whitespace) on both databases, so the
    stored bytes are those the ledger hashes; read back as lists and objects."""

    impl = sa.Text()
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else orjson.loads(value)


def _text(*, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(sa.Text(), nullable=nullable)


def _json(*, nullable: bool = False) -> Any:
    column: sa.Column[Any] = sa.Column(CanonicalJson(), nullable=nullable)
    return Field(default=None, sa_column=column) if nullable else Field(sa_column=column)


class DisclosureRequest(SQLModel, table=True):
    """A request to give subjects' data to a third party, through review to release."""

    __tablename__ = "disclosure_requests"

    id: str = Field(primary_key=True, max_length=40)
    status: str = Field(max_length=16, description="requested, approved, rejected, released")
    recipient_organisation: str = Field(max_length=200)
    recipient_officer: str = Field(max_length=200)
    recipient_contact: str = Field(max_length=300)
    recipient_key: str = Field(max_length=200, description="normalised organisation name")
    legal_basis: str = Field(max_length=40)
    purpose: str = Field(sa_column=_text())
    request_reference: str | None = Field(default=None, max_length=200)
    data_items: list[str] = _json()
    subject_ids: list[str] = _json()
    necessity_review: str = Field(sa_column=_text())
    requested_by: str = Field(max_length=80)
    requester_role: str = Field(max_length=32)
    requested_at: dt.datetime = timestamp(index=True)
    decided_by: str | None = Field(default=None, max_length=80)
    decided_at: dt.datetime | None = timestamp(nullable=True)
    decision_note: str | None = Field(default=None, sa_column=_text(nullable=True))
    released_by: str | None = Field(default=None, max_length=80)
    released_at: dt.datetime | None = timestamp(nullable=True)
    ledger_seq: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    # The subjects who had stopped third-party provision when the request was last
    # checked: only a basis the law allows (law, investigation, emergency) goes on.
    stop_overridden: list[str] | None = _json(nullable=True)
    # Set by the release, as its ledger entry has them: the consent it went on (for a
    # `consent` disclosure) and the package's SHA-256 sums, so an entry rewritten in
    # those is found unbacked as in any other field.
    consent: dict[str, dict[str, str]] | None = _json(nullable=True)
    package_sha256: str | None = Field(default=None, max_length=64)
    package_csv_sha256: str | None = Field(default=None, max_length=64)


class DisclosureConsent(SQLModel, table=True):
    """A subject's consent to have their data provided to one recipient."""

    __tablename__ = "disclosure_consents"

    subscriber_id: str = Field(primary_key=True, max_length=40)
    recipient_key: str = Field(primary_key=True, max_length=200)
    recipient_organisation: str = Field(max_length=200)
    source: str = Field(max_length=40)
    granted_at: dt.datetime = timestamp()
    withdrawn_at: dt.datetime | None = timestamp(nullable=True)


class DisclosureStop(SQLModel, table=True):
    """A subject who asked to stop third-party provision (APPI Art. 35)."""

    __tablename__ = "disclosure_stops"

    subscriber_id: str = Field(primary_key=True, max_length=40)
    source: str = Field(max_length=40)
    stopped_at: dt.datetime = timestamp()


class LedgerEntry(SQLModel, table=True):
    """One released disclosure; every column but ``entry_hash`` is covered by it."""

    __tablename__ = "ledger_entries"

    seq: int = Field(
        sa_column=sa.Column(sa.BigInteger(), primary_key=True, autoincrement=False),
    )
    recorded_at: dt.datetime = timestamp(index=True)
    request_id: str = Field(max_length=40, unique=True)
    recipient_organisation: str = Field(max_length=200)
    recipient_officer: str = Field(max_length=200)
    recipient_contact: str = Field(max_length=300)
    recipient_key: str = Field(max_length=200)
    legal_basis: str = Field(max_length=40)
    purpose: str = Field(sa_column=_text())
    request_reference: str | None = Field(default=None, max_length=200)
    data_items: list[str] = _json()
    subject_ids: list[str] = _json()
    requested_by: str = Field(max_length=80)
    approved_by: str = Field(max_length=80)
    released_by: str = Field(max_length=80)
    necessity_review: str = Field(sa_column=_text())
    approval_note: str = Field(sa_column=_text())
    # For a `consent` disclosure: each subject's consent (time and source), by subject id.
    consent: dict[str, dict[str, str]] | None = _json(nullable=True)
    # The subjects whose stop of third-party provision this disclosure overrode (law,
    # investigation or emergency); hashed only when set, so older entries keep their hash.
    stop_overridden: list[str] | None = _json(nullable=True)
    package_sha256: str = Field(max_length=64)
    package_csv_sha256: str = Field(max_length=64)
    # Unique: two entries can never share a predecessor, so the chain cannot fork.
    prev_hash: str = Field(max_length=64, unique=True)
    entry_hash: str = Field(max_length=64, unique=True)


class LedgerEntrySubject(SQLModel, table=True):
    """Which entries name which subject: the index behind exports filtered by subject."""

    __tablename__ = "ledger_entry_subjects"

    subject_id: str = Field(primary_key=True, max_length=40)
    seq: int = Field(
        sa_column=sa.Column(sa.BigInteger(), primary_key=True, autoincrement=False, index=True)
    )
    recorded_at: dt.datetime = timestamp()


class LedgerCheckpoint(SQLModel, table=True):
    """A signed statement of the chain's head (kind ``head``) or of a purge's anchor."""

    __tablename__ = "ledger_checkpoints"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    seq: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False, index=True))
    head_hash: str = Field(max_length=64)
    created_at: dt.datetime = timestamp()
    key_id: str = Field(max_length=40)
    signature: str = Field(max_length=100, description="base64 Ed25519 signature")
