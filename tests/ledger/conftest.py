"""Helpers for the ledger tests: subscribers, staff, released disclosures, tampering."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.core.context import Context
from app.core.db import Database
from app.ledger import verify, workflow
from app.ledger.schemas import DisclosureRequestCreate
from app.staff.auth import Staff
from app.staff.roles import Role
from tests.conftest import call, sync_engine
from tests.fixtures.staff import CHEAP_HASHING
from tests.fixtures.subject import add_subscriber


def staff(staff_id: str, role: Role) -> Staff:
    """A signed-in staff member as the routes' permissions hand one to a service."""
    return Staff(
        id=staff_id,
        username=staff_id.removeprefix("stf_"),
        display_name="Test Person",
        role=role,
        session_id="ses_test",
    )


OPERATOR = staff("stf_operator1", Role.OPERATOR)
OFFICER_A = staff("stf_officer_a", Role.PRIVACY_OFFICER)
OFFICER_B = staff("stf_officer_b", Role.PRIVACY_OFFICER)
IP = "203.0.113.9"
LEDGER_TABLES = ("ledger_entries", "ledger_entry_subjects", "ledger_checkpoints")
POLICE = "Shibuya Police Station"


def number(i: int) -> str:
    return f"+8190{i:08d}"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Staff signed in for these tests hash their passwords at argon2id's cheapest."""
    return dict(CHEAP_HASHING)


@pytest.fixture
def db(app: FastAPI) -> Database:
    return app.state.db


@pytest.fixture
def ctx(app: FastAPI) -> Context:
    return app.state.ctx


@pytest.fixture
async def subjects(app: FastAPI) -> list[str]:
    return [await add_subscriber(app, number(i)) for i in range(1, 4)]


def request_body(subject_ids: list[str], **overrides: Any) -> dict[str, Any]:
    """A valid request body, as JSON."""
    values: dict[str, Any] = {
        "recipient": {
            "organisation": POLICE,
            "officer": "Inspector Sato",
            "contact": "03-0000-0000 (desk)",
        },
        "legal_basis": "investigation_compelled",
        "purpose": "Fraud investigation into coupon abuse ring",
        "request_reference": "CCP 197(2) inquiry No. 2026-118",
        "data_items": ["phone_number", "subscriber_id"],
        "subject_ids": subject_ids,
        "necessity_review": "Only the numbers named in the inquiry; no history is provided.",
    }
    values.update(overrides)
    return values


def request_data(subject_ids: list[str], **overrides: Any) -> DisclosureRequestCreate:
    return DisclosureRequestCreate.model_validate(request_body(subject_ids, **overrides))


async def requested(app: FastAPI, subject_ids: list[str], **overrides: Any) -> str:
    found = await call(
        app, workflow.request, ip=IP, staff=OPERATOR, data=request_data(subject_ids, **overrides)
    )
    return found.id


async def approved(app: FastAPI, subject_ids: list[str], **overrides: Any) -> str:
    request_id = await requested(app, subject_ids, **overrides)
    await call(
        app,
        workflow.decide,
        ip=IP,
        staff=OFFICER_A,
        request_id=request_id,
        note="Reviewed: lawful",
        approve=True,
    )
    return request_id


async def release(app: FastAPI, subject_ids: list[str], **overrides: Any) -> workflow.Release:
    request_id = await approved(app, subject_ids, **overrides)
    return await call(app, workflow.release, staff=OFFICER_B, request_id=request_id, ip=IP)


async def release_many(
    app: FastAPI, subject_ids: list[str], n: int, clock: Any
) -> list[workflow.Release]:
    out = []
    for i in range(n):
        out.append(await release(app, [subject_ids[i % len(subject_ids)]]))
        clock.advance(minutes=1)
    return out


async def verified(app: FastAPI, ctx: Context | None = None) -> verify.Report:
    """The database's chain verified, as the command line does it."""
    return await verify.verify_in_units(app.state.db, ctx or app.state.ctx)


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
            for name in LEDGER_TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {name} DISABLE TRIGGER ALL")
            yield conn
            for name in LEDGER_TABLES:
                conn.exec_driver_sql(f"ALTER TABLE {name} ENABLE TRIGGER ALL")


def sql(app: FastAPI, statement: str, **params: Any) -> list[Any]:
    with sync_engine(app).begin() as conn:
        result = conn.execute(sa.text(statement), params)
        return list(result.all()) if result.returns_rows else []
