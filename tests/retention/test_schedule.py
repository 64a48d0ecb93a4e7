"""The retention schedule covers every table; dormant subscribers go only when asked."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlmodel import SQLModel
from typer.testing import CliRunner

import app.models  # noqa: F401 (every table registered)
from app.cli import cli
from app.clients import service as clients
from app.core.config import Settings
from app.core.migrations import alembic_config, upgrade
from app.coupons import service as coupons
from app.coupons.schemas import RedemptionCreate
from app.retention import service as retention
from app.retention.schedule import NO_PERSONAL_DATA, SCHEDULE, by_table
from tests.conftest import call, count_rows
from tests.consent.helpers import make_key, opted_in, register
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


async def _redeemed(app, subscriber_id: str) -> None:
    """A redemption of the "spring" coupon by the subscriber, now, as a shop records it."""
    key = await call(app, clients.create, name="shop", scopes=["coupons:write"], created_by="t")
    shop = await call(app, clients.authenticate, token=key.token)
    data = RedemptionCreate(subscriber_id=subscriber_id)
    await call(app, coupons.redeem, client=shop, coupon_id="spring", data=data)


@pytest.mark.parametrize("settings_overrides", [{"dormant_erasure": True}])
async def test_dormant_subscribers_are_erased_when_asked_and_dry_run_deletes_nothing(app, clock):
    busy = await register(app, "+819000003333", ("coupon_usage",))
    await register(app, "+819000001111", ("coupon_usage",))  # old, the one erased
    clock.advance(days=200)
    recent = await register(app, "+819000002222", ("coupon_usage",))
    clock.advance(days=170)
    # Verified as long ago as ``old``, but redeemed a coupon last month: not dormant.
    await _redeemed(app, busy)
    clock.advance(days=30)  # old: 400 days quiet; recent: 200; busy: 30
    dry = await retention.purge(app.state.db, app.state.ctx, dry_run=True)
    assert dry.deleted["dormant_subscribers"] == 1
    assert count_rows(app, "subscribers") == 3
    report = await retention.purge(app.state.db, app.state.ctx)
    assert report.deleted["dormant_subscribers"] == 1
    assert {row["id"] for row in rows(app, "SELECT id FROM subscribers")} == {busy, recent}
    assert count_rows(app, "subject_requests") == 1  # the erasure's receipt


@pytest.mark.parametrize("settings_overrides", [{"dormant_erasure": True}])
async def test_a_campaign_within_the_period_keeps_a_subscriber_after_its_message_is_gone(
    app, client, clock
):
    """Campaign messages are purged after 183 days, dormancy comes after 365: a subscriber
    verified 400 days ago and sent a campaign 200 days ago is not dormant, though its
    message is purged first in the same run. The dry run says the same."""
    auth = await make_key(app, ["consents:write", "deliveries:write"])
    messaged = await register(app, "+819000005555")
    await opted_in(client, auth, messaged)
    clock.advance(days=200)
    auth = await make_key(app, ["deliveries:write"])  # the first has expired meanwhile
    body = {"campaign_id": "autumn", "messages": {"ja": "秋のクーポン"}, "default_locale": "ja"}
    assert (await client.post("/v1/deliveries", json=body, headers=auth)).status_code == 201
    clock.advance(days=200)
    dry = await retention.purge(app.state.db, app.state.ctx, dry_run=True)
    report = await retention.purge(app.state.db, app.state.ctx)
    assert report.deleted["campaign_messages"] == 1
    assert dry.deleted["dormant_subscribers"] == report.deleted["dormant_subscribers"] == 0
    assert [row["id"] for row in rows(app, "SELECT id FROM subscribers")] == [messaged]


@pytest.mark.parametrize("settings_overrides", [{"dormant_erasure": True}])
def test_the_command_dry_run_reports_and_keeps(app, clock, tmp_path, monkeypatch, settings):
    clock.set(dt.datetime.now(dt.UTC))
    monkeypatch.setenv("SMSREG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "cli-state"))
    monkeypatch.setenv("SMSREG_DORMANT_ERASURE", "true")
    result = CliRunner().invoke(cli, ["purge", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dormant_subscribers: 0 would be erased" in result.output  # with receipts


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
    kept = sorted(ids)[1::3]  # spread over the key order: every third from the second
    for subscriber_id in kept:
        await _redeemed(app, subscriber_id)
    clock.advance(days=3)
    report = await retention.purge(app.state.db, app.state.ctx, batch=2)
    assert report.deleted["dormant_subscribers"] == len(ids) - len(kept)
    assert {row["id"] for row in rows(app, "SELECT id FROM subscribers")} == set(kept)
    assert count_rows(app, "subject_requests") == len(ids) - len(kept)  # one receipt each


async def test_the_upgrade_fills_in_each_subscribers_last_contact(app, client, clock):
    """The migration that gives a subscriber its last contact fills it from the
    redemptions and campaign messages already there: after a downgrade and an upgrade
    each subscriber's is what the service itself wrote."""
    auth = await make_key(app, ["consents:write", "deliveries:write"])
    redeemer = await register(app, "+819000006666", ("coupon_usage",))
    both = await register(app, "+819000007777", ("coupon_usage", "coupon_delivery"))
    quiet = await register(app, "+819000008888", ("coupon_usage", "coupon_delivery"))
    await opted_in(client, auth, both)
    await _redeemed(app, both)
    clock.advance(days=2)
    await _redeemed(app, redeemer)
    clock.advance(days=3)
    body = {"campaign_id": "winter", "messages": {"ja": "冬のクーポン"}, "default_locale": "ja"}
    assert (await client.post("/v1/deliveries", json=body, headers=auth)).status_code == 201
    # Queued, the campaign keeps no subscriber's id as its place.
    assert rows(app, "SELECT status, cursor FROM deliveries") == [
        {"status": "queued", "cursor": None}
    ]
    query = "SELECT id, last_contact_at FROM subscribers ORDER BY id"
    written = rows(app, query)
    assert {row["id"]: row["last_contact_at"] is None for row in written} == {
        redeemer: False,
        both: False,
        quiet: True,
    }
    await app.state.db.dispose()
    command.downgrade(alembic_config(app.state.db.url), "9e4f6a8b0c13")
    upgrade(app.state.db.url)
    assert rows(app, query) == written
