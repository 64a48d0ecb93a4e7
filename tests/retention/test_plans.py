"""Every purge step walks the index it names, on both databases, and resumes when stopped.

The plans are read with EXPLAIN (EXPLAIN QUERY PLAN on SQLite) of the very statements a
batch runs: a step that scanned its table, or sorted all its due rows, would cost each
batch more as the table grows.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

import app.models  # noqa: F401 (every table registered)
from app.core.db import UTCDateTime
from app.core.retention import PurgeStep
from app.retention import service as retention
from app.subject import shredding
from app.subject.retention import dormant_batch
from app.verification.limits import counts_sql
from tests.conftest import count_rows, sync_engine
from tests.fixtures.flows import start

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def _sample(column: sa.ColumnElement[Any]) -> Any:
    if isinstance(column.type, UTCDateTime):
        return NOW
    if isinstance(column.type, sa.Integer):
        return 1
    return "m"


def _explain(engine: sa.Engine, statement: sa.Executable, *, bitmaps: bool = False) -> str:
    """The plan of one statement, as text. PostgreSQL is told to walk an index in order
    when one can do: a near-empty test table is cheaper to read whole and sort, a big one
    is not (and it keeps no statistics yet to tell the two apart). With ``bitmaps`` it
    may combine indexes (an OR of two indexed conditions)."""
    sqlite = engine.dialect.name == "sqlite"
    off = ("seqscan",) if bitmaps else ("seqscan", "bitmapscan", "sort")

    def as_explain(conn, cursor, text, params, context, executemany):  # noqa: ANN001, ARG001
        return ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + text, params

    with engine.connect() as conn:
        if not sqlite:
            for plan in off:
                conn.exec_driver_sql(f"SET LOCAL enable_{plan} = off")
        sa.event.listen(conn, "before_cursor_execute", as_explain, retval=True)
        try:
            # The plan's rows, as the driver gives them: not the statement's columns.
            rows = conn.execute(statement).cursor.fetchall()
        finally:
            sa.event.remove(conn, "before_cursor_execute", as_explain)
        conn.rollback()
    return "\n".join(str(row[-1]) for row in rows)


def _statements(step: PurgeStep) -> list[sa.Executable]:
    cursor = tuple(_sample(column) for column in step.key)
    batch = step.batch(before=NOW, after=cursor, last=cursor)
    return [
        step.select(before=NOW, after=None, limit=1000),
        step.select(before=NOW, after=cursor, limit=1000),
        sa.delete(step.table).where(batch),
        *step.dependents(batch),
    ]


@pytest.mark.parametrize(
    "step", retention.SCHEDULE, ids=lambda step: "-".join(filter(None, (step.kind, step.database)))
)
def test_each_batch_walks_the_steps_index(app, step):
    engine = sync_engine(app)
    sqlite = engine.dialect.name == "sqlite"
    if not step.runs_on(engine.dialect.name):
        pytest.skip(f"{step.kind} walks another index on {engine.dialect.name}")
    own, *rest = _statements(step)[:3], _statements(step)[3:]
    for statement in own:
        plan = _explain(engine, statement)
        if sqlite and step.index == "PRIMARY KEY" and statement is own[0]:
            # The walk of a table's own key starts at its first row: a scan in key order.
            assert plan == f"SCAN {step.table.name}", plan
            continue
        assert step.index in plan, f"{step.kind}: not through {step.index}:\n{plan}"
        if sqlite:
            assert f"SCAN {step.table.name}\n" not in plan + "\n", plan
            assert "TEMP B-TREE FOR ORDER BY" not in plan, f"{step.kind} sorts its rows:\n{plan}"
        else:
            assert f"Seq Scan on {step.table.name}" not in plan, plan
            # An incremental sort orders only rows of one equal timestamp; a plain one all.
            assert not [
                line
                for line in plan.splitlines()
                if line.strip().startswith("->  Sort") or line.startswith("Sort")
            ], f"{step.kind} sorts its rows:\n{plan}"
    for statement in rest[0]:
        plan = _explain(engine, statement)
        assert "Seq Scan" not in plan and "SCAN outbox_messages\n" not in plan + "\n", plan


@pytest.mark.parametrize(
    "step", retention.SCHEDULE, ids=lambda step: "-".join(filter(None, (step.kind, step.database)))
)
def test_a_batch_is_bounded_by_its_own_keys_not_the_cutoff(step):
    """Where the key begins with the time, a batch's delete is bounded above by its last
    key alone. The cutoff said again is a second upper bound on the index's leading
    column, and SQLite, which uses one, took the cutoff: each batch then walked every due
    row left in the index (at a million subscribers, 130 ms a batch instead of 17). A
    step walked by another key (SQLite's key-order walks) still needs the cutoff."""
    cutoff = dt.datetime(2031, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    cursor = tuple(_sample(column) for column in step.key)
    statement = sa.delete(step.table).where(step.batch(before=cutoff, after=cursor, last=cursor))
    bound = statement.compile().params.values()
    if step.key[0] is step.time:
        assert cutoff not in bound, f"{step.kind}: the batch's delete is bounded by the cutoff"
    else:
        assert cutoff in bound, f"{step.kind}: rows of the key range that are not yet due"
    assert cutoff in step.select(before=cutoff, after=cursor, limit=10).compile().params.values()


def test_the_send_limits_count_by_the_primary_key_not_the_purge_index(app):
    engine = sync_engine(app)
    params: dict[str, Any] = {"prefix": "p", "now": NOW, "writer": "w"}
    for i in range(3):
        params[f"b{i}"], params[f"s{i}"] = f"i:{i}", NOW - dt.timedelta(hours=1)
    statement = sa.text(counts_sql(3).text).bindparams(
        *(sa.bindparam(f"s{i}", type_=UTCDateTime()) for i in range(3)),
        sa.bindparam("now", type_=UTCDateTime()),
    )
    plan = _explain(engine, statement.params(params))
    assert "ix_rate_limit_hits_at" not in plan, plan
    assert ("PRIMARY KEY" if engine.dialect.name == "sqlite" else "rate_limit_hits_pkey") in plan


async def test_a_stopped_purge_keeps_its_batches_and_the_next_run_finishes(
    client, app, clock, auth
):
    for i in range(7):
        assert (await start(client, auth, phone=f"090-2222-00{i:02d}")).status_code == 201
    await app.state.outbox.drain()
    clock.advance(hours=25)

    class Stop(Exception):
        pass

    def stop_after_first(kind: str, deleted: int) -> None:
        if kind == "unverified":
            raise Stop  # as Ctrl-C would, once a batch has committed

    with pytest.raises(Stop):
        await retention.purge(app.state.db, app.state.ctx, batch=2, progress=stop_after_first)
    assert count_rows(app, "verifications") == 5, "the first batch of two is kept"
    deleted = (await retention.purge(app.state.db, app.state.ctx, batch=2)).deleted
    assert deleted["unverified"] == 5
    assert count_rows(app, "verifications") == 0
    assert count_rows(app, "outbox_messages") == 0


_PG_INDEX = re.compile(
    r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\S+)"
)


def _leading_columns(engine: sa.Engine, tables: tuple[str, ...]) -> dict[str, str]:
    """Each index (or key) of ``tables`` by name, with its first column."""
    inspector = sa.inspect(engine)
    first: dict[str, str] = {}
    for name in tables:
        key = inspector.get_pk_constraint(name)
        first[key["name"]] = key["constrained_columns"][0]
        for index in [*inspector.get_indexes(name), *inspector.get_unique_constraints(name)]:
            first[str(index["name"])] = str(index["column_names"][0])
    return first


def _searches_only(plan: str, engine: sa.Engine, *tables: str, by: tuple[str, ...]) -> None:
    """The plan reads none of ``tables`` whole: each is searched through an index that
    begins with one of the columns ``by`` (SQLite: a SEARCH, never a SCAN, even of a
    covering index; PostgreSQL: no sequential scan, and no index walked whole with the
    lookup as a filter on a later column)."""
    if engine.dialect.name == "sqlite":
        scans = [line for line in plan.splitlines() if line.startswith("SCAN ")]
        assert not [line for line in scans if line.split()[1] in tables], plan
        return
    assert "Seq Scan" not in plan, plan
    first = _leading_columns(engine, tables)
    used = [name for name in _PG_INDEX.findall(plan) if name in first]
    assert used, plan
    assert all(first[name] in by for name in used), (plan, {n: first[n] for n in used})


def _subscriber_tables() -> dict[str, sa.Table]:
    """The tables an erasure deletes from by subscriber id, and every table whose foreign
    key names a subscriber (deleting a subscriber row looks in each)."""
    found = {t.name: t for t in shredding.BY_SUBSCRIBER}
    for t in SQLModel.metadata.tables.values():
        if any(fk.column.table.name == "subscribers" for fk in t.foreign_keys):
            found[t.name] = t
    return found


def test_an_erasure_finds_a_subscribers_rows_through_indexes(app):
    """An erasure deletes by subscriber id from every table that names the subscriber,
    and deleting the subscriber row makes the database look in each table whose foreign
    key names it. Each is an index search: at a million subscribers a scan of the
    verifications or the SMS was 3 million rows read under SQLite's write lock, for
    every erasure."""
    engine = sync_engine(app)
    tables = _subscriber_tables()
    assert {"verifications", "outbox_messages", "coupon_redemptions"} <= set(tables)
    for name, t in tables.items():
        plan = _explain(engine, sa.select(sa.literal(1)).where(t.c.subscriber_id == "sub_x"))
        _searches_only(plan, engine, name, by=("subscriber_id",))
    # The number's verifications, by its blind indexes or by the subscriber, and their SMS.
    found = shredding.verifications_query(subscriber_id="sub_x", indexes=["k1:a", "k2:b"])
    plan = _explain(engine, found, bitmaps=True)
    _searches_only(plan, engine, "verifications", by=("phone_index", "subscriber_id"))
    messages = shredding.messages_of(verification_ids=["ver_a", "ver_b"], subscriber_id="sub_x")
    plan = _explain(engine, messages, bitmaps=True)
    _searches_only(plan, engine, "outbox_messages", by=("verification_id", "subscriber_id"))
    # The stored first answers to the number's starts, by their verification.
    answers = shredding.answers_of(["ver_a", "ver_b"])
    plan = _explain(engine, answers, bitmaps=True)
    _searches_only(plan, engine, "idempotency_records", by=("verification_id",))


def test_the_dormant_walk_reads_each_subscriber_once_through_indexes(app):
    """Dormant erasure walks the subscribers in key order from where its last batch
    ended (each is looked at once a run, whether kept or erased), and reads whether one
    redeemed or was messaged lately from its own row: no other table."""
    engine = sync_engine(app)
    plan = _explain(engine, dormant_batch(NOW, after="sub_m", limit=100))
    assert "coupon_redemptions" not in plan and "outbox_messages" not in plan, plan
    if engine.dialect.name == "sqlite":
        assert "TEMP B-TREE" not in plan, plan
        assert "SEARCH subscribers USING INDEX" in plan, plan  # from the cursor, by key
    else:
        _searches_only(plan, engine, "subscribers", by=("id",))
        assert "Index Cond: ((id)::text > 'sub_m'::text)" in plan, plan  # from the cursor
