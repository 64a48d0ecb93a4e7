"""Consent to a purpose: an append-only history and the current state derived from it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.models.types import timestamp


class ConsentEvent(SQLModel, table=True):
    """One change of consent, never updated or deleted: the proof of what was agreed."""

    __tablename__ = "consent_events"
    __table_args__ = (
        sa.Index("ix_consent_events_subscriber_purpose", "subscriber_id", "purpose", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: str = Field(foreign_key="subscribers.id", max_length=40)
    purpose: str = Field(max_length=32)
    action: str = Field(max_length=16, description="opt_in or opt_out")
    source: str = Field(max_length=32, description="web, app, sms, ...")
    policy_version: str | None = Field(default=None, max_length=64)
    # The client's address as the verification limits see it (trusted proxies only);
    # none for an SMS STOP, whose sender's address is the carrier's.
    client_ip: str | None = Field(default=None, max_length=64)
    actor: str = Field(max_length=80)
    at: dt.datetime = timestamp()


class Consent(SQLModel, table=True):
    """The current state per subscriber and purpose, written with each history row."""

    __tablename__ = "consents"
    __table_args__ = (
        # A campaign walks the live opt-ins of a purpose in subscriber order.
        sa.Index("ix_consents_purpose_status", "purpose", "status", "subscriber_id"),
        {"sqlite_with_rowid": False},
    )

    subscriber_id: str = Field(foreign_key="subscribers.id", primary_key=True, max_length=40)
    purpose: str = Field(primary_key=True, max_length=32)
    status: str = Field(max_length=16, description="opted_in or opted_out")
    # The language campaign messages are sent in (the opt-in's, else the number's country).
    locale: str = Field(max_length=8)
    source: str = Field(max_length=32)
    policy_version: str | None = Field(default=None, max_length=64)
    event_id: int = Field(foreign_key="consent_events.id")
    changed_at: dt.datetime = timestamp()


class ErasedConsentEvent(SQLModel, table=True):
    """A consent history row of an erased subscriber, kept as the record of consent the
    law asks of a sender for a month after its last message (Act on Specified Electronic
    Mail Art. 3(3)), then deleted (``kept_until``). Names the subscriber by its id only."""

    __tablename__ = "erased_consent_events"
    __table_args__ = (
        sa.Index("ix_erased_consent_events_kept_until", "kept_until", "subscriber_id", "id"),
    )

    # The erased subscriber and the row's id in consent_events: SQLite gives a deleted
    # row's id to the next row, so the id alone is not unique here.
    subscriber_id: str = Field(primary_key=True, max_length=40)
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    purpose: str = Field(max_length=32)
    action: str = Field(max_length=16)
    source: str = Field(max_length=32)
    policy_version: str | None = Field(default=None, max_length=64)
    client_ip: str | None = Field(default=None, max_length=64)
    actor: str = Field(max_length=80)
    at: dt.datetime = timestamp()
    kept_until: dt.datetime = timestamp()
