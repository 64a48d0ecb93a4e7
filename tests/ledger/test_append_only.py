"""Append-only in the database itself: SQLite's REPLACE cannot remove a ledger row, and
the access log refuses UPDATE and early DELETE, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from app.ledger import checkpoints
from app.models.ledger import LedgerEntry
from app.models.types import table
from app.registry import access_log
from app.staff.roles import Role
from tests.conftest import call, count_rows
from tests.ledger.conftest import release_many, sql, staff

ENTRY_COLUMNS = [column.name for column in table(LedgerEntry).c]


@pytest.fixture
async def ledger(app, subjects, clock):
    await release_many(app, subjects, 3, clock)
    await call(app, checkpoints.create)
    return app


def _replacements(dialect: str) -> list[str]:
    """Statements that would swap a kept row for another through a key it collides on."""
    others = ", ".join(c for c in ENTRY_COLUMNS if c != "seq")
    if dialect == "sqlite":
        return [
            "INSERT OR REPLACE INTO ledger_entries SELECT * FROM ledger_entries WHERE seq = 2",
            "REPLACE INTO ledger_entries SELECT * FROM ledger_entries WHERE seq = 2",
            # A new seq colliding on a unique column: REPLACE would delete entry 2 for it.
            f"INSERT OR REPLACE INTO ledger_entries (seq, {others}) "  # noqa: S608
            f"SELECT seq + 100, {others} FROM ledger_entries WHERE seq = 2",
            "REPLACE INTO ledger_entry_subjects SELECT * FROM ledger_entry_subjects WHERE seq = 2",
            "REPLACE INTO ledger_checkpoints SELECT * FROM ledger_checkpoints",
            "REPLACE INTO access_log SELECT * FROM access_log",
        ]
    return [
        "INSERT INTO ledger_entries SELECT * FROM ledger_entries WHERE seq = 2 "
        "ON CONFLICT (seq) DO UPDATE SET purpose = 'replaced'",
        "INSERT INTO access_log SELECT * FROM access_log "
        "ON CONFLICT (id) DO UPDATE SET reason = 'replaced'",
    ]


async def _log_access(app, reason: str = "Subject asked for a copy, letter 12") -> None:
    async with app.state.db.transaction() as tx:
        await access_log.log_access(
            tx,
            app.state.ctx,
            staff=staff("stf_officer_a", Role.PRIVACY_OFFICER),
            ip="203.0.113.9",
            subscriber_id="sub_x",
            action="reveal",
            reason=reason,
        )


async def test_no_replace_or_upsert_removes_or_changes_a_kept_row(ledger):
    await _log_access(ledger)
    before = {
        name: sql(ledger, f"SELECT * FROM {name} ORDER BY 1, 2")  # noqa: S608
        for name in ("ledger_entries", "ledger_entry_subjects", "ledger_checkpoints", "access_log")
    }
    for statement in _replacements(ledger.state.db.dialect):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            sql(ledger, statement)
    for name, rows in before.items():
        assert sql(ledger, f"SELECT * FROM {name} ORDER BY 1, 2") == rows, name  # noqa: S608


async def test_the_access_log_refuses_update_and_early_delete(app):
    await _log_access(app)
    for statement in (
        "UPDATE access_log SET reason = 'nothing happened here'",
        "DELETE FROM access_log",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            sql(app, statement)
    if not app.state.db.sqlite:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            sql(app, "TRUNCATE access_log")
    assert count_rows(app, "access_log") == 1


async def test_the_access_log_lets_the_purge_delete_what_is_past_retention(app, clock):
    clock.set(dt.datetime.now(dt.UTC) - dt.timedelta(days=366))
    await _log_access(app)
    sql(app, "DELETE FROM access_log")
    assert count_rows(app, "access_log") == 0
