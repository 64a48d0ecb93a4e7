"""Retention: each kind of row goes when its period ends, not a moment before."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core import retention
from tests.conftest import count_rows, sync_engine
from tests.fixtures.flows import check, sent_code, start


@pytest.fixture
def settings_overrides():
    return {
        "unverified_retention_hours": 24,
        "verification_retention_days": 183,
        "idempotency_ttl_hours": 24,
    }


def purge(app, batch=2):
    return retention.purge(app.state.db, app.state.ctx, batch=batch).deleted


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
    assert sum(purge(app).values()) == 0, "nothing is due a moment before its period ends"
    clock.advance(microseconds=2)
    deleted = purge(app)  # batches of 2: several transactions
    assert deleted["unverified"] == 3
    assert deleted["idempotency_records"] == 3
    assert deleted["approved"] == 0
    assert deleted["rate_limit_hits"] > 0
    assert count_rows(app, "verifications") == 1
    assert count_rows(app, "outbox_messages") == 1
    assert count_rows(app, "idempotency_records") == 0
    assert count_rows(app, "subscribers") == 1

    clock.advance(days=183)
    assert purge(app)["approved"] == 1
    assert count_rows(app, "verifications") == 0
    assert count_rows(app, "outbox_messages") == 0
    # The registry is not a verification record: the subscriber stays.
    assert count_rows(app, "subscribers") == 1
    with sync_engine(app).connect() as conn:
        import sqlalchemy as sa

        events = conn.execute(
            sa.text("SELECT count(*) FROM audit_events WHERE tag = 'retention:purged'")
        ).scalar_one()
    assert events == 3


async def test_recent_limit_hits_are_kept_so_limits_still_hold(client, app, clock, auth):
    for _ in range(5):
        assert (await start(client, auth)).status_code == 201
        clock.advance(seconds=31)
    purge(app)
    assert (await start(client, auth)).status_code == 429, "the hour's sends still count"


def test_the_command_reports_counts(app, clock, tmp_path, monkeypatch, settings):
    import datetime as dt

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
    from tests.staff.helpers import CHEAP_HASHING, create_staff, login  # noqa: F401

    account = create_staff(app, "operator", username="op-retention")
    assert (await login(client, account.username)).status_code == 201

    def add_access(tx):
        tx.execute(
            "INSERT INTO access_log (accessed_at, staff_id, staff_username, staff_role, "
            "source_ip, subscriber_id, action, reason) VALUES (:at, :s, 'op', 'operator', "
            "'203.0.113.1', NULL, 'search_number', NULL)",
            {"at": clock.now(), "s": account.id},
        )

    app.state.db.call(add_access)
    clock.advance(days=2)
    assert purge(app)["staff_sessions"] == 1, "an ended session goes a day after its end"
    clock.advance(days=363, seconds=-1)
    assert purge(app)["access_log"] == 0
    clock.advance(seconds=2)
    assert purge(app)["access_log"] == 1
    assert purge(app)["staff_permission_history"] == 0
    clock.advance(days=1095 - 365)
    assert purge(app)["staff_permission_history"] == 1
    assert count_rows(app, "staff_accounts") == 1, "accounts are never purged"
