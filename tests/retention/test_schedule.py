"""The retention schedule covers every table; dormant subscribers go only when asked."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel
from typer.testing import CliRunner

import app.models  # noqa: F401 (every table registered)
from app.cli import cli
from app.clients import service as clients
from app.core.config import Settings
from app.models.coupon import CouponRedemption
from app.models.types import table
from app.retention import service as retention
from app.retention.schedule import NO_PERSONAL_DATA, SCHEDULE, by_table
from tests.conftest import call, count_rows, sync_engine
from tests.consent.helpers import register
from tests.staff.helpers import rows


def test_every_table_is_scheduled_or_declared_free_of_personal_data():
    tables = set(SQLModel.metadata.tables)
    scheduled = set(by_table())
    assert len(scheduled) == len(SCHEDULE), "a table is scheduled twice"
    assert not scheduled & set(NO_PERSONAL_DATA), "a table is in both lists"
    missing = sorted(tables - scheduled - set(NO_PERSONAL_DATA))
    assert not missing, f"tables in neither the schedule nor NO_PERSONAL_DATA: {missing}"
    stale = sorted((scheduled | set(NO_PERSONAL_DATA)) - tables)
    assert not stale, f"listed tables that do not exist: {stale}"


def test_every_setting_the_schedule_names_exists():
    for entry in SCHEDULE:
        assert entry.setting is None or entry.setting in Settings.model_fields, entry.table
        assert entry.default and entry.floor and entry.holds, entry.table


async def _two_subscribers(app, clock):
    old = await register(app, "+819000001111", ("coupon_usage",))
    clock.advance(days=200)
    recent = await register(app, "+819000002222", ("coupon_usage",))
    clock.advance(days=200)  # old: 400 days quiet; recent: 200
    return old, recent


async def test_dormant_subscribers_stay_by_default(app, clock):
    await _two_subscribers(app, clock)
    report = await retention.purge(app.state.db, app.state.ctx)
    assert "dormant_subscribers" not in report.deleted
    assert count_rows(app, "subscribers") == 2


@pytest.mark.parametrize("settings_overrides", [{"dormant_erasure": True}])
async def test_dormant_subscribers_are_erased_when_asked_and_dry_run_deletes_nothing(app, clock):
    busy = await register(app, "+819000003333", ("coupon_usage",))
    old, recent = await _two_subscribers(app, clock)
    # Verified as long ago as ``old``, but redeemed a coupon last month: not dormant.
    key = await call(app, clients.create, name="shop", scopes=["coupons:write"], created_by="t")
    redemption = CouponRedemption(
        id="red_1", coupon_id="spring", subscriber_id=busy, seq=1, client_id=key.key.id,
        redeemed_at=clock.now() - dt.timedelta(days=30),
    )  # fmt: skip
    with sync_engine(app).begin() as conn:  # typed: the instant is stored as the app stores it
        conn.execute(sa.insert(table(CouponRedemption)).values(redemption.model_dump()))
    dry = await retention.purge(app.state.db, app.state.ctx, dry_run=True)
    assert dry.deleted["dormant_subscribers"] == 1
    assert count_rows(app, "subscribers") == 3
    report = await retention.purge(app.state.db, app.state.ctx)
    assert report.deleted["dormant_subscribers"] == 1
    assert {row["id"] for row in rows(app, "SELECT id FROM subscribers")} == {busy, recent}
    assert count_rows(app, "subject_requests") == 1  # the erasure's receipt


@pytest.mark.parametrize("settings_overrides", [{"dormant_erasure": True}])
def test_the_command_dry_run_reports_and_keeps(app, clock, tmp_path, monkeypatch, settings):
    clock.set(dt.datetime.now(dt.UTC))
    monkeypatch.setenv("SMSREG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "cli-state"))
    monkeypatch.setenv("SMSREG_DORMANT_ERASURE", "true")
    result = CliRunner().invoke(cli, ["purge", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dormant_subscribers: 0 would be deleted" in result.output


def test_the_documented_schedule_names_every_table():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "data-subjects.md").read_text()
    missing = [name for name in [*by_table(), *NO_PERSONAL_DATA] if f"`{name}`" not in text]
    assert not missing, f"docs/data-subjects.md does not name: {missing}"


@pytest.mark.parametrize("settings_overrides", [{"dormant_erasure": True}])
async def test_dormant_erasure_walks_on_past_kept_subscribers_batch_by_batch(app, clock):
    """Over several batches every dormant subscriber is erased, once (one receipt each),
    and the kept ones, spread between them in key order, stay. (That each batch starts
    where the last ended, instead of reading the kept ones again, is in the plan:
    tests/retention/test_plans.py.)"""
    numbers = [f"+8190000044{i:02d}" for i in range(7)]
    ids = [await register(app, number, ("coupon_usage",)) for number in numbers]
    clock.advance(days=400)
    key = await call(app, clients.create, name="shop", scopes=["coupons:write"], created_by="t")
    kept = sorted(ids)[1::3]  # spread over the key order: every third from the second
    with sync_engine(app).begin() as conn:
        for n, subscriber_id in enumerate(kept):
            redemption = CouponRedemption(
                id=f"red_{n}", coupon_id="spring", subscriber_id=subscriber_id, seq=1,
                client_id=key.key.id, redeemed_at=clock.now() - dt.timedelta(days=3),
            )  # fmt: skip
            conn.execute(sa.insert(table(CouponRedemption)).values(redemption.model_dump()))
    report = await retention.purge(app.state.db, app.state.ctx, batch=2)
    assert report.deleted["dormant_subscribers"] == len(ids) - len(kept)
    assert {row["id"] for row in rows(app, "SELECT id FROM subscribers")} == set(kept)
    assert count_rows(app, "subject_requests") == len(ids) - len(kept)  # one receipt each
