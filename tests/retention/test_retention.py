"""Retention: each kind of row goes when its period ends, not a moment before."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from app.audit.events import Tag
from app.cli import cli
from app.models.audit import RECORD_TAGS
from app.models.rate_limit import RateLimitHit
from app.models.staff import StaffPermissionChange
from app.models.types import table
from app.registry import access_log
from app.retention import service as retention
from app.staff.auth import Staff
from app.staff.roles import Role
from tests.conftest import count_rows, sync_engine
from tests.fixtures.flows import check, sent_code, start
from tests.fixtures.staff import create_staff
from tests.fixtures.staff import open_session as open_staff_session
from tests.subject.helpers import open_session, send_code


@pytest.fixture
def settings_overrides():
    return {
        "unverified_retention_hours": 24,
        "verification_retention_days": 183,
        "idempotency_ttl_hours": 24,
    }


async def purge(app, batch=2):
    return (await retention.purge(app.state.db, app.state.ctx, batch=batch)).deleted


async def test_each_kind_goes_when_its_period_ends(client, app, carrier, clock, auth):
    approved = (await start(client, auth, phone="090-1111-0001")).json()["id"]
    await check(client, auth, approved, await sent_code(app, carrier, "+819011110001"))
    for i in range(3):  # never checked
        response = await start(
            client, auth, phone=f"090-1111-01{i:02d}", headers={"Idempotency-Key": f"k{i}"}
        )
        assert response.status_code == 201
    await app.state.outbox.drain()
    assert count_rows(app, "verifications") == 4
    assert count_rows(app, "outbox_messages") == 4

    clock.advance(hours=24, microseconds=-1)
    assert sum((await purge(app)).values()) == 0, "nothing is due a moment before its period ends"
    clock.advance(microseconds=2)
    deleted = await purge(app)  # batches of 2: several transactions
    assert deleted["unverified"] == 3
    assert deleted["idempotency_records"] == 3
    assert deleted["approved"] == 0
    assert deleted["rate_limit_hits"] > 0
    assert count_rows(app, "verifications") == 1
    assert count_rows(app, "outbox_messages") == 1
    assert count_rows(app, "idempotency_records") == 0
    assert count_rows(app, "subscribers") == 1

    # A verification's events and its SMS's are its record: kept as long as it is.
    assert deleted["record_events"] == 0
    recorded = _tags(app)
    assert recorded["verification:started"] == 4
    assert recorded["verification:approved"] == 1
    assert recorded["sms:sent"] == 4

    clock.advance(days=183)
    purged = await purge(app)
    assert purged["approved"] == 1
    assert purged["record_events"] == sum(recorded.get(tag, 0) for tag in RECORD_TAGS)
    assert count_rows(app, "verifications") == 0
    assert count_rows(app, "outbox_messages") == 0
    # The registry is not a verification record: the subscriber stays.
    assert count_rows(app, "subscribers") == 1
    # Every other event is kept: here the API key's creation and the purges' own.
    assert _tags(app) == {"service:api_key:created": 1, "retention:purged": 3}


async def test_a_self_service_verification_goes_with_the_unverified(
    client, app, carrier, clock, auth
):
    """A /my/ sign-in proves a number for a session of minutes. Approved, its number is
    kept no longer than an unverified one's, whether the registry held the number (a
    session opened) or not ("we hold no data about this number"); a client's approved
    verification of the same age stays for its six months."""
    kept = (await start(client, auth, phone="090-1111-0001")).json()["id"]
    await check(client, auth, kept, await sent_code(app, carrier, "+819011110001"))
    await open_session(client, app, carrier, "+819011110001")  # now a subscriber
    unknown = await send_code(client, "+819011110002")
    code = await sent_code(app, carrier, "+819011110002")
    nothing = await client.post(
        "/v1/subject/sessions", json={"verification_id": unknown, "code": code}
    )
    assert nothing.status_code == 404, nothing.text  # nothing held, yet approved
    statuses = "SELECT purpose, status FROM verifications ORDER BY purpose"
    with sync_engine(app).connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text(statuses))] == [
            ("coupon_usage", "approved"),
            ("data_subject", "approved"),
            ("data_subject", "approved"),
        ]

    clock.advance(hours=24, microseconds=-1)
    assert (await purge(app))["self_service"] == 0
    clock.advance(microseconds=2)
    deleted = await purge(app)
    assert (deleted["self_service"], deleted["approved"]) == (2, 0)
    with sync_engine(app).connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text(statuses))] == [("coupon_usage", "approved")]
    assert count_rows(app, "outbox_messages") == 1  # their code SMS went with them


def _tags(app) -> dict[str, int]:
    with sync_engine(app).connect() as conn:
        rows = conn.execute(sa.text("SELECT tag, count(*) FROM audit_events GROUP BY tag"))
        return {tag: n for tag, n in rows}


def test_the_record_events_are_every_verification_and_message_event() -> None:
    """A new event of a verification or a message is purged with it, unless it is added
    here on purpose (the pumping guard's events are about number ranges, not a message)."""
    records = {
        tag.value
        for tag in Tag
        if tag.startswith(("verification:", "sms:")) and not tag.startswith("sms:pumping:")
    }
    assert set(RECORD_TAGS) == records


async def test_recent_limit_hits_are_kept_so_limits_still_hold(client, app, clock, auth):
    for _ in range(5):
        assert (await start(client, auth)).status_code == 201
        clock.advance(seconds=31)
    await purge(app)
    assert (await start(client, auth)).status_code == 429, "the hour's sends still count"


def test_the_command_reports_counts(app, clock, tmp_path, monkeypatch, settings):
    clock.set(dt.datetime.now(dt.UTC))
    monkeypatch.setenv("SMSREG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "cli-state"))
    result = CliRunner().invoke(cli, ["purge", "--batch", "10"])
    assert result.exit_code == 0, result.output
    assert "unverified: 0 deleted" in result.output
    assert CliRunner().invoke(cli, ["purge", "--batch", "1"]).exit_code == 2


@pytest.mark.parametrize(
    "settings_overrides",
    [{"access_log_retention_days": 365, "permission_history_retention_days": 1095}],
)
async def test_staff_records_go_after_their_own_periods(client, app, clock):
    account = await create_staff(app, "operator", username="op-retention")
    await open_staff_session(app, account)  # as a login stores it: ends after session_max_hours
    async with app.state.db.transaction() as tx:
        # The grant the account was created with (written straight: the staff area's
        # account creation is not what is tested here).
        await tx.execute(
            sa.insert(table(StaffPermissionChange)).values(
                staff_id=account.id,
                change="grant",
                new_role="operator",
                actor="test",
                changed_at=clock.now(),
            )
        )
    wrong = await client.post(
        "/v1/staff/sessions", json={"username": "op-retention", "password": "wrong password!"}
    )
    assert wrong.status_code == 401
    assert (await purge(app))["staff_login_attempts"] == 0
    clock.advance(days=2)
    purged = await purge(app)
    assert purged["staff_sessions"] == 1, "an ended session goes a day after its end"
    assert purged["staff_login_attempts"] == 1, "a login attempt goes a day after it"
    clock.advance(days=363, seconds=1)
    assert (await purge(app))["staff_permission_history"] == 0
    clock.advance(days=1095 - 365)
    assert (await purge(app))["staff_permission_history"] == 1
    assert count_rows(app, "staff_accounts") == 1, "accounts are never purged"


@pytest.mark.parametrize("settings_overrides", [{"access_log_retention_days": 365}])
async def test_the_access_log_goes_after_its_period_and_the_database_holds_the_floor(app, clock):
    # Written 400 days before the database's own clock, so its trigger allows the purge;
    # the application's clock decides when, as for every other kind of row.
    written = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    clock.set(written)
    staff = Staff(
        id="stf_retention",
        username="op-retention",
        display_name="Op",
        role=Role.OPERATOR,
        session_id="ses_retention",
    )
    async with app.state.db.transaction() as tx:
        await access_log.log_access(
            tx, app.state.ctx, staff=staff, ip="203.0.113.1", subscriber_id=None, action="read"
        )
    clock.advance(days=365, seconds=-1)
    assert (await purge(app))["access_log"] == 0
    clock.advance(seconds=2)
    assert (await purge(app))["access_log"] == 1
    # A young entry (by the database's clock) is refused even to the purge's own SQL.
    clock.set(dt.datetime.now(dt.UTC))
    async with app.state.db.transaction() as tx:
        await access_log.log_access(
            tx, app.state.ctx, staff=staff, ip="203.0.113.1", subscriber_id=None, action="read"
        )
    clock.advance(days=400)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        await purge(app)
    assert count_rows(app, "access_log") == 1


async def test_campaign_messages_go_after_their_period_in_batches(
    client, app, carrier, clock, auth
):
    from app.models.campaign import Delivery
    from app.models.outbox import OutboxMessage
    from tests.staff.helpers import verified

    subscribers = [
        await verified(client, app, carrier, auth, f"+8190111102{i:02d}") for i in range(3)
    ]
    with sync_engine(app).connect() as conn:
        client_id = conn.execute(sa.text("SELECT id FROM api_keys")).scalar_one()
    start_at = clock.now()
    later = start_at + dt.timedelta(days=100)
    # Deliveries and their queued SMS written straight as rows: how a campaign is queued
    # is the delivery area's, and only the rows' ages matter here. Due and kept rows
    # alternate in the order the purge walks them, across batches of 2.
    queued = {
        ("del_a", 0): start_at,
        ("del_a", 1): later,
        ("del_a", 2): start_at,
        ("del_b", 0): start_at,
        ("del_b", 1): start_at,
        ("del_b", 2): later,
    }
    async with app.state.db.transaction() as tx:
        for delivery_id in ("del_a", "del_b"):
            await tx.execute(
                sa.insert(table(Delivery)).values(
                    id=delivery_id,
                    client_id=client_id,
                    campaign_id=delivery_id,
                    purpose="coupon_delivery",
                    fingerprint="f" * 64,
                    default_locale="ja",
                    status="queued",
                    created_at=start_at,
                )
            )
        for (delivery_id, i), created_at in queued.items():
            await tx.execute(
                sa.insert(table(OutboxMessage)).values(
                    id=f"msg_{delivery_id}_{i}",
                    kind="campaign",
                    delivery_id=delivery_id,
                    subscriber_id=subscribers[i],
                    locale="ja",
                    status="sent",
                    created_at=created_at,
                    next_attempt_at=created_at,
                    expires_at=created_at + dt.timedelta(days=1),
                )
            )

    def campaign_rows() -> set[str]:
        with sync_engine(app).connect() as conn:
            found = conn.execute(sa.text("SELECT id FROM outbox_messages WHERE kind = 'campaign'"))
            return {row.id for row in found}

    clock.set(start_at + dt.timedelta(days=183))  # a row goes once strictly older
    assert (await purge(app))["campaign_messages"] == 0
    clock.advance(microseconds=1)
    assert (await purge(app))["campaign_messages"] == 4
    assert campaign_rows() == {"msg_del_a_1", "msg_del_b_2"}
    clock.set(later + dt.timedelta(days=183, microseconds=1))
    assert (await purge(app))["campaign_messages"] == 2
    assert campaign_rows() == set()


def test_the_command_shows_each_steps_running_count(capsys, monkeypatch):
    from app.retention import cli as purge_cli

    monkeypatch.setattr(purge_cli, "PROGRESS_SECONDS", 0.0)
    progress = purge_cli.Progress()
    progress("unverified", 2)
    progress("unverified", 3)
    progress("approved", 1)
    progress.finish()
    shown = capsys.readouterr().err
    assert "unverified: 5 deleted so far" in shown
    assert "approved: 1 deleted so far" in shown
    counting = purge_cli.Progress(dry_run=True)  # a dry run deletes nothing
    counting("unverified", 2)
    counting.finish()
    assert "unverified: 2 counted to delete so far" in capsys.readouterr().err


async def test_shared_counts_go_by_their_time_whichever_way_the_table_is_walked(app, clock):
    """SQLite walks the counts in key order (bucket first), PostgreSQL in time order:
    either way, with batches ending between a bucket's rows, exactly the old rows go."""
    now = clock.now()
    old, recent = now - dt.timedelta(days=1, minutes=1), now - dt.timedelta(hours=23)
    rows = [
        {"bucket": f"i:{b}", "at": at + dt.timedelta(seconds=b), "hits": 1}
        for b in range(9)
        for at in ((old, recent) if b % 3 else (recent, old, old - dt.timedelta(hours=1)))
    ]
    with sync_engine(app).begin() as conn:
        conn.execute(sa.insert(table(RateLimitHit)), rows)
    deleted = await purge(app, batch=2)
    assert deleted["rate_limit_hits"] == 12
    with sync_engine(app).connect() as conn:
        left = conn.execute(sa.text("SELECT bucket FROM rate_limit_hits ORDER BY bucket"))
        assert [bucket for (bucket,) in left] == [f"i:{b}" for b in range(9)]


async def test_on_sqlite_each_batch_leaves_the_log_before_the_next_begins(app, clock):
    """On SQLite every batch's write-ahead log is copied into the database file once the
    batch has let go of the write lock, so the log starts over and never holds more than
    about one batch, however many run. (Copied inside each commit, as SQLite does by
    itself, the copy and its fsync counted as time the batch held the lock, and the purge
    rested that long again; left to SQLite's threshold, the log grew to a thousand pages.)"""
    db = app.state.db
    if not db.sqlite:
        pytest.skip("SQLite's write-ahead log")
    old = clock.now() - dt.timedelta(days=2)
    rows = [{"bucket": f"i:{b:03d}" + "x" * 120, "at": old, "hits": 1} for b in range(400)]
    with sync_engine(app).begin() as conn:
        conn.execute(sa.insert(table(RateLimitHit)), rows)
    assert await db.checkpoint()  # an empty log to start from
    log = Path(db.url.removeprefix("sqlite:///") + "-wal")
    async with db.transaction() as tx:  # a threshold of the process's own
        await tx.execute(sa.text("PRAGMA wal_autocheckpoint=500"))

    assert (await purge(app, batch=10))["rate_limit_hits"] == 400

    # 40 batches of about five pages each: 800 KiB left to the commits themselves.
    assert log.stat().st_size < 128 * 1024
    # The process's own commits copy the log by themselves again once the purge is done,
    # at the threshold they had.
    async with db.transaction() as tx:
        assert (await tx.execute(sa.text("PRAGMA wal_autocheckpoint"))).scalar_one() == 500
