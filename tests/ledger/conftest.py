"""Helpers for the ledger tests: subscribers, actors, released disclosures, tampering."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.core.context import Context
from app.core.db import Database
from app.ledger import workflow
from app.ledger.workflow import Actor, DisclosureRequestCreate, RecipientIn
from app.registry import repository as registry
from tests.conftest import sync_engine

OPERATOR = Actor("stf_operator1", "operator")
OFFICER_A = Actor("stf_officer_a", "privacy_officer")
OFFICER_B = Actor("stf_officer_b", "privacy_officer")
AUDITOR = Actor("stf_auditor1", "auditor")
LEDGER_TABLES = ("ledger_entries", "ledger_entry_subjects", "ledger_checkpoints")
POLICE = "Shibuya Police Station"


def number(i: int) -> str:
    return f"+8190{i:08d}"


@pytest.fixture
def db(app: FastAPI) -> Database:
    return app.state.db


@pytest.fixture
def ctx(app: FastAPI) -> Context:
    return app.state.ctx


def add_subscriber(db: Database, ctx: Context, e164: str, purpose: str = "coupon_usage") -> str:
    """A registered subscriber, stored exactly as a successful check stores one."""

    def add(tx: Any) -> str:
        index = ctx.keys.blind_index(e164, kind="number")
        key_id, ciphertext = ctx.keys.encrypt(e164, context=registry.subscriber_aad(index))
        return registry.upsert_verified(
            tx,
            phone_index=index,
            ciphertext=ciphertext,
            key_id=key_id,
            purpose=purpose,
            now=ctx.clock.now(),
        )

    return db.call(add)


@pytest.fixture
def subjects(db: Database, ctx: Context) -> list[str]:
    return [add_subscriber(db, ctx, number(i)) for i in range(1, 4)]


def request_data(subject_ids: list[str], **overrides: Any) -> DisclosureRequestCreate:
    values: dict[str, Any] = {
        "recipient": RecipientIn(
            organisation=POLICE, officer="Inspector Sato", contact="03-0000-0000 (desk)"
        ),
        "legal_basis": "investigation_compelled",
        "purpose": "Fraud investigation into coupon abuse ring",
        "request_reference": "CCP 197(2) inquiry No. 2026-118",
        "data_items": ["phone_number", "subscriber_id"],
        "subject_ids": subject_ids,
        "necessity_review": "Only the numbers named in the inquiry; no history is provided.",
    }
    values.update(overrides)
    return DisclosureRequestCreate(**values)


def approved(db: Database, ctx: Context, subject_ids: list[str], **overrides: Any) -> str:
    row = db.call(
        workflow.request, ctx, actor=OPERATOR, data=request_data(subject_ids, **overrides)
    )
    db.call(workflow.approve, ctx, actor=OFFICER_A, request_id=row.id, note="Reviewed: lawful")
    return str(row.id)


def release(db: Database, ctx: Context, subject_ids: list[str], **overrides: Any) -> Any:
    request_id = approved(db, ctx, subject_ids, **overrides)
    return db.call(workflow.release, ctx, actor=OFFICER_B, request_id=request_id)


def release_many(db: Database, ctx: Context, subject_ids: list[str], n: int, clock: Any) -> list:
    out = []
    for i in range(n):
        out.append(release(db, ctx, [subject_ids[i % len(subject_ids)]]))
        clock.advance(minutes=1)
    return out


@contextlib.contextmanager
def tampering(app: FastAPI) -> Iterator[sa.Connection]:
    """A connection on which the ledger's append-only triggers are off, as an attacker
    owning the database could arrange; they are back on when it commits."""
    engine = sync_engine(app)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            triggers = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name LIKE 'ledger_%'"
            ).all()
            for name, _sql in triggers:
                conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
            yield conn
            for _name, sql in triggers:
                conn.exec_driver_sql(sql)
        else:
            for table in LEDGER_TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
            yield conn
            for table in LEDGER_TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER ALL")


def sql(app: FastAPI, statement: str, **params: Any) -> list[Any]:
    with sync_engine(app).begin() as conn:
        result = conn.execute(sa.text(statement), params)
        return list(result.all()) if result.returns_rows else []
