"""The purge: only entries past retention, never a young one, and the chain still verifies."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from app.core.config import Settings
from app.core.context import Context
from app.ledger import checkpoints, export, retention, verify, workflow
from app.ledger.audit_schemas import ExportQuery
from tests.conftest import call, count_rows
from tests.fixtures.fakes import START
from tests.ledger.conftest import IP, OFFICER_A, release, requested, sql, tampering, verified

FOUR_YEARS_AGO = START.replace(year=START.year - 4)
TWO_YEARS_AGO = START.replace(year=START.year - 2)


async def _entries_at(app, clock, subjects, times) -> None:
    for when in times:
        clock.set(when)
        await release(app, subjects[:1])
        await call(app, checkpoints.create)  # as the hourly schedule would have
    clock.set(START)


async def test_purge_removes_only_old_entries_and_leaves_a_signed_anchor(
    app, db, ctx, subjects, clock
):
    old = [FOUR_YEARS_AGO + dt.timedelta(days=i) for i in range(3)]
    young = [TWO_YEARS_AGO, START - dt.timedelta(days=1)]
    await _entries_at(app, clock, subjects, old + young)
    # Requests never released: one rejected four years ago goes, one pending stays.
    clock.set(FOUR_YEARS_AGO)
    rejected = await requested(app, subjects)
    await call(app, workflow.decide, ip=IP, staff=OFFICER_A, request_id=rejected, note="no basis",
               approve=False)  # fmt: skip
    clock.set(TWO_YEARS_AGO)
    pending = await requested(app, subjects)
    clock.set(START)
    await call(app, checkpoints.create)

    dry = await call(app, retention.purge, actor="test", dry_run=True)
    assert (dry.purged, dry.through_seq) == (3, 3) and count_rows(app, "ledger_entries") == 5
    assert dry.requests == 4 and count_rows(app, "disclosure_requests") == 7

    result = await call(app, retention.purge, actor="test")
    assert (result.purged, result.through_seq) == (3, 3) and result.anchor_id is not None
    # The released requests went with their entries, the rejected one past the cutoff.
    assert result.requests == 4
    left = sql(app, "SELECT id, status, ledger_seq FROM disclosure_requests")
    assert sorted((row.ledger_seq or 0, row.status) for row in left) == [
        (0, "requested"),
        (4, "released"),
        (5, "released"),
    ]
    assert pending in {row.id for row in left} and rejected not in {row.id for row in left}
    assert [row.seq for row in sql(app, "SELECT seq FROM ledger_entries ORDER BY seq")] == [4, 5]
    assert count_rows(app, "ledger_entry_subjects") == 2
    anchor = sql(app, "SELECT kind, seq FROM ledger_checkpoints WHERE id = :i", i=result.anchor_id)
    assert [(a.kind, a.seq) for a in anchor] == [("anchor", 3)]

    report = await verified(app)
    assert report.ok, report.text()
    assert (report.anchor_seq, report.first_seq, report.entries) == (3, 4, 2)
    assert "from the signed purge anchor at seq 3" in report.text()

    out = io.BytesIO()
    await export.write(app.state.db, app.state.ctx, ExportQuery(), out)
    offline = verify.verify_lines(io.BytesIO(out.getvalue()))
    assert offline.ok and offline.anchor_seq == 3, offline.text()

    again = await call(app, retention.purge, actor="test")
    assert again.purged == 0 and again.anchor_id is None


async def test_purge_never_removes_the_head(app, db, ctx, subjects, clock):
    await _entries_at(
        app, clock, subjects, [FOUR_YEARS_AGO, FOUR_YEARS_AGO + dt.timedelta(hours=1)]
    )
    assert (await call(app, retention.purge, actor="test")).purged == 1
    assert [row.seq for row in sql(app, "SELECT seq FROM ledger_entries")] == [2]
    assert (await verified(app)).ok


async def test_three_calendar_years_win_over_1095_days(app, db, ctx, subjects, clock, settings):
    # 1,095 days back from 2026-11-22 is 2023-11-23 (2024 has a leap day), so an entry of
    # 2023-11-22 12:00 is older than 1,095 days but younger than three years: it stays.
    three_years = START.replace(year=START.year - 3)
    await _entries_at(app, clock, subjects, [three_years + dt.timedelta(hours=12), START])
    minimum = Context(
        settings=settings.model_copy(update={"ledger_retention_days": 1095}),
        keys=ctx.keys,
        clock=ctx.clock,
    )
    assert retention.cutoff(minimum) == three_years
    assert (await _purge_with(app, minimum)).purged == 0


def test_retention_below_three_years_cannot_be_configured():
    with pytest.raises(ValidationError):
        Settings(_env_file=None, ledger_retention_days=1094)


def test_a_leap_day_counts_back_to_the_28th():
    leap = dt.datetime(2028, 2, 29, tzinfo=dt.UTC)
    assert retention.three_years_before(leap) == dt.datetime(2025, 2, 28, tzinfo=dt.UTC)


async def test_the_database_refuses_to_delete_a_young_entry_even_for_the_purge_sql(
    app, db, ctx, subjects, clock
):
    await _entries_at(app, clock, subjects, [FOUR_YEARS_AGO, TWO_YEARS_AGO, START])
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        sql(app, "DELETE FROM ledger_entries WHERE seq = 2")
    # Four years old passes the database's floor (the purge's own path, minus its anchor).
    sql(app, "DELETE FROM ledger_entry_subjects WHERE seq = 1")
    sql(app, "DELETE FROM ledger_entries WHERE seq = 1")
    # ...and without the purge's signed anchor the verifier calls the start removed.
    problem = (await verified(app)).problem
    assert (problem.seq, problem.kind) == (1, "removed")
    # Nor does a purge take the entry's request along: only a signed anchor says an
    # entry went by the purge, so the request still contradicts the cut.
    assert (await call(app, retention.purge, actor="test")).requests == 0
    assert [row.ledger_seq for row in sql(app, "SELECT ledger_seq FROM disclosure_requests "
                                               "ORDER BY ledger_seq")] == [1, 2, 3]  # fmt: skip


async def test_a_purge_with_its_anchor_deleted_or_forged_is_found(app, db, ctx, subjects, clock):
    await _entries_at(app, clock, subjects, [FOUR_YEARS_AGO, FOUR_YEARS_AGO, START])
    await call(app, retention.purge, actor="test")
    with tampering(app) as conn:
        conn.execute(sa.text("UPDATE ledger_checkpoints SET seq = 1 WHERE kind = 'anchor'"))
    problem = (await verified(app)).problem
    assert (problem.seq, problem.kind) == (1, "bad-signature")
    with tampering(app) as conn:
        conn.execute(sa.text("DELETE FROM ledger_checkpoints WHERE kind = 'anchor'"))
    problem = (await verified(app)).problem
    assert (problem.seq, problem.kind) == (1, "removed")


async def _purge_with(app, ctx):
    async with app.state.db.transaction() as tx:
        return await retention.purge(tx, ctx, actor="test")
