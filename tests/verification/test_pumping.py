"""The pumping guard: country caps, and prefixes whose sends stop converting get blocked."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings
from app.staff.roles import Role
from app.verification import pumping
from tests.conftest import call, count_rows, sync_engine
from tests.fixtures.flows import check, sent_code, start
from tests.staff.helpers import CHEAP_HASHING, execute, staff_auth

WINDOW_GRACE = 60  # seconds


@pytest.fixture
def settings_overrides():
    return {
        "pumping_min_sends": 10,
        "pumping_min_conversion": 0.2,
        "pumping_grace_seconds": WINDOW_GRACE,
        "pumping_cooloff_minutes": 30,
        "sends_per_ip_hour": 1000,
        # The test client is the proxy; each start names its own client address.
        "trusted_proxies": ["203.0.113.7"],
        **CHEAP_HASHING,
    }


def pumped(i: int) -> str:
    """Numbers of one prefix (+81 9011): the range under attack."""
    return f"090-1100-{i:04d}"


def normal(i: int) -> str:
    """Numbers of another prefix (+81 8022)."""
    return f"080-2200-{i:04d}"


def e164(national: str) -> str:
    return "+81" + national.replace("-", "")[1:]


def source(i: int, sources: int = 5) -> dict[str, str]:
    """The client address of the i-th start: one of a few."""
    return {"X-Forwarded-For": f"198.51.100.{i % sources + 1}"}


async def burst(client, auth, n: int, *, sources: int = 5) -> list[str]:
    ids = []
    for i in range(n):
        response = await start(client, auth, phone=pumped(i), headers=source(i, sources))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def verify(client, app, carrier, auth, phone: str) -> None:
    started = await start(client, auth, phone=phone)
    assert started.status_code == 201, started.text
    code = await sent_code(app, carrier, e164(phone))
    assert (await check(client, auth, started.json()["id"], code)).status_code == 200


async def metric(client, region: str = "JP") -> float:
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(f'smsreg_pumping_prefix_blocks_total{{region="{region}"}}'):
            return float(line.split()[-1])
    return 0.0


def events(app, tag: str) -> int:
    with sync_engine(app).connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM audit_events WHERE tag = :tag"), {"tag": tag}
            ).scalar_one()
        )


async def test_a_burst_without_approvals_blocks_its_prefix_not_others(
    client, app, carrier, clock, auth
):
    blocks_before = await metric(client)
    for i in range(5):  # a normal prefix: people type their codes
        await verify(client, app, carrier, auth, normal(i))
    pending = await burst(client, auth, 10)  # nobody ever types these codes
    clock.advance(seconds=WINDOW_GRACE)

    refused = await start(client, auth, phone=pumped(50))
    assert refused.status_code == 429, refused.text
    assert refused.json()["type"].endswith("/prefix-blocked")
    assert refused.headers["Retry-After"] == str(30 * 60)
    # The block is kept although the request that tripped it was refused.
    assert count_rows(app, "pumping_blocks") == 1
    assert events(app, "sms:pumping:prefix_blocked") == 1
    assert await metric(client) == blocks_before + 1

    # Every send to the range is refused, resends of earlier verifications included;
    assert (await start(client, auth, phone=pumped(51))).status_code == 429
    clock.advance(seconds=30)
    resend = await client.post(f"/v1/verifications/{pending[0]}/resend", headers=auth)
    assert resend.status_code == 429 and resend.json()["type"].endswith("/prefix-blocked")
    # while the normal prefix keeps working.
    await verify(client, app, carrier, auth, normal(10))
    assert count_rows(app, "pumping_blocks") == 1, "one block, not one per refused send"


async def test_sends_within_the_grace_period_are_not_judged_yet(client, clock, auth):
    await burst(client, auth, 10)
    clock.advance(seconds=WINDOW_GRACE - 1)  # people may still be typing
    assert (await start(client, auth, phone=pumped(50))).status_code == 201


async def test_a_prefix_that_converts_is_never_blocked(client, app, carrier, clock, auth):
    for i in range(10):
        if i % 4 == 0:  # 3 in 10 convert: above the 20 % threshold
            await verify(client, app, carrier, auth, pumped(i))
        else:
            assert (await start(client, auth, phone=pumped(i))).status_code == 201
    clock.advance(seconds=WINDOW_GRACE)
    assert (await start(client, auth, phone=pumped(50))).status_code == 201
    assert count_rows(app, "pumping_blocks") == 0


async def test_the_block_lifts_after_the_cool_off_and_the_prefix_starts_afresh(
    client, app, clock, auth
):
    await burst(client, auth, 10)
    clock.advance(seconds=WINDOW_GRACE)
    assert (await start(client, auth, phone=pumped(50))).status_code == 429
    clock.advance(minutes=30, seconds=-1)
    assert (await start(client, auth, phone=pumped(51))).status_code == 429
    clock.advance(seconds=1)
    # The burst is still inside the 60-minute window, but it came before the block
    # ended: the prefix is judged afresh, not blocked again by the same burst.
    assert (await start(client, auth, phone=pumped(52))).status_code == 201
    assert count_rows(app, "pumping_blocks") == 1


async def test_an_admin_lifts_a_block_at_once(client, app, clock, auth):
    await burst(client, auth, 10)
    clock.advance(seconds=WINDOW_GRACE)
    assert (await start(client, auth, phone=pumped(50))).status_code == 429
    [block] = await call(app, pumping.list_blocks)
    assert block.prefix == "+819011" and block.sends == 10 and block.approvals == 0

    with pytest.raises(pumping.InvalidInput):
        await call(app, pumping.lift, block_id=block.id, actor="staff:a", reason=" ")
    with pytest.raises(pumping.InvalidInput, match="phone number"):  # kept in the audit events
        await call(
            app, pumping.lift, block_id=block.id, actor="staff:a", reason="ok: 090-1234-5679"
        )
    with pytest.raises(pumping.InvalidInput, match="control"):  # a NUL: a 500 on PostgreSQL
        await call(app, pumping.lift, block_id=block.id, actor="staff:a", reason="ok \x00 fine")
    with pytest.raises(pumping.NotFound):
        await call(app, pumping.lift, block_id="blk_missing", actor="staff:a", reason="checked")
    await call(app, pumping.lift, block_id=block.id, actor="staff:a", reason="campaign traffic")
    assert events(app, "sms:pumping:prefix_lifted") == 1
    assert await call(app, pumping.list_blocks) == []
    with pytest.raises(pumping.BlockNotActive):
        await call(app, pumping.lift, block_id=block.id, actor="staff:a", reason="again")
    assert (await start(client, auth, phone=pumped(51))).status_code == 201


@pytest.mark.parametrize("settings_overrides", [{"country_send_caps": {"jp": 3}}])
async def test_a_country_cap_limits_every_send_to_the_country(client, clock, auth):
    for i in range(3):
        assert (await start(client, auth, phone=normal(i))).status_code == 201
    limited = await start(client, auth, phone=pumped(0))
    assert limited.status_code == 429
    assert limited.json()["limit"] == "country_hour"
    clock.advance(hours=1)
    assert (await start(client, auth, phone=pumped(0))).status_code == 201


def test_caps_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        Settings(country_send_caps={"JP": 0})


async def invoke(runner, args):
    """A command, run in a thread: it runs its own event loop."""
    return await asyncio.to_thread(runner.invoke, cli, args)


async def test_cli_lists_and_lifts_blocks(app, client, clock, tmp_path, monkeypatch, settings):
    clock.set(dt.datetime.now(dt.UTC))  # the command runs on the system clock
    monkeypatch.setenv("SMSREG_DATABASE_URL", settings.database_url)
    for family in ("phone", "index", "code", "token"):
        ring = getattr(settings, f"{family}_keys")
        monkeypatch.setenv(
            f"SMSREG_{family.upper()}_KEYS",
            "{" + ", ".join(f'"{k}": "{v.get_secret_value()}"' for k, v in ring.items()) + "}",
        )
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "cli-state"))
    runner = CliRunner()
    assert "no blocks in force" in (await invoke(runner, ["pumping", "blocks"])).output
    at = clock.now().replace(tzinfo=None) if app.state.db.sqlite else clock.now()
    for bucket, hits in (("p:idx", 10), ("s:idx:a", 4), ("s:idx:b", 3), ("s:idx:c", 3)):
        execute(
            app,
            "INSERT INTO rate_limit_hits (bucket, at, hits) VALUES (:b, :at, :hits)",
            b=bucket,
            at=at,
            hits=hits,
        )
    clock.advance(seconds=WINDOW_GRACE)
    with pytest.raises(pumping.PrefixBlocked):
        await call(
            app,
            pumping.watch,
            prefix_index="idx",
            prefix="+819011",
            region="JP",
            now=clock.now(),
            blocked_until=None,
            hour_sends=10,
        )
    listed = await invoke(runner, ["pumping", "blocks"])
    assert "+819011" in listed.output, listed.output
    block_id = listed.output.split()[0]
    assert (await invoke(runner, ["pumping", "lift", block_id, "--reason", "x"])).exit_code == 1
    lifted = await invoke(runner, ["pumping", "lift", block_id, "--reason", "known campaign"])
    assert lifted.exit_code == 0, lifted.output
    assert "no blocks in force" in (await invoke(runner, ["pumping", "blocks"])).output


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "pumping_min_sends": 10,
            "pumping_window_minutes": 180,
            "sends_per_ip_hour": 1000,
            "trusted_proxies": ["203.0.113.7"],
        }
    ],
)
async def test_a_window_longer_than_the_hour_judges_sends_the_hour_no_longer_counts(
    client, clock, auth
):
    """The send limits' hour tells the watch when a prefix has too few sends to judge;
    with a longer window that count cannot tell, and the sends before it still weigh."""
    await burst(client, auth, 10)
    clock.advance(minutes=90)  # out of the hour, inside the three-hour window
    refused = await start(client, auth, phone=pumped(50))
    assert refused.status_code == 429 and refused.json()["type"].endswith("/prefix-blocked")


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "pumping_min_sends": 10,
            "pumping_grace_seconds": 60,
            "pumping_cooloff_minutes": 120,
            "trusted_proxies": ["203.0.113.7"],
        }
    ],
)
async def test_a_block_holds_after_its_sends_leave_the_window(client, clock, auth):
    await burst(client, auth, 10)
    clock.advance(seconds=60)
    assert (await start(client, auth, phone=pumped(50))).status_code == 429
    # An hour on, the prefix has too few sends to be judged, but its block still holds.
    clock.advance(minutes=61)
    refused = await start(client, auth, phone=pumped(51))
    assert refused.status_code == 429 and refused.json()["type"].endswith("/prefix-blocked")
    clock.advance(minutes=60)
    assert (await start(client, auth, phone=pumped(52))).status_code == 201


async def test_staff_see_blocks_and_an_admin_lifts_one_over_http(client, app, clock, auth):
    await burst(client, auth, 10)
    clock.advance(seconds=WINDOW_GRACE)
    assert (await start(client, auth, phone=pumped(50))).status_code == 429
    operator = await staff_auth(app, client, Role.OPERATOR, username="op-1")
    admin = await staff_auth(app, client, Role.ADMIN, username="admin-1")

    listed = await client.get("/v1/pumping/blocks", headers=operator)
    assert listed.status_code == 200
    [block] = listed.json()["blocks"]
    assert block["prefix"] == "+819011" and block["sends"] == 10 and block["lifted_at"] is None
    url = f"/v1/pumping/blocks/{block['id']}/lift"

    assert (
        await client.post(url, json={"reason": "campaign"}, headers=operator)
    ).status_code == 403
    short = await client.post(url, json={"reason": "x"}, headers=admin)
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "reason"
    unknown = await client.post(
        "/v1/pumping/blocks/blk_missing/lift", json={"reason": "campaign"}, headers=admin
    )
    assert unknown.status_code == 404
    lifted = await client.post(url, json={"reason": "known campaign"}, headers=admin)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted_by"].startswith("staff:")
    assert (await client.post(url, json={"reason": "again"}, headers=admin)).status_code == 409
    assert (await client.get("/v1/pumping/blocks", headers=admin)).json()["blocks"] == []
    everything = await client.get("/v1/pumping/blocks?all=true", headers=admin)
    assert len(everything.json()["blocks"]) == 1
    assert (await start(client, auth, phone=pumped(51))).status_code == 201


async def test_one_address_alone_never_blocks_a_range(client, app, clock, auth):
    """Thirty unchecked starts from one address used to block a whole range for every
    client for an hour; now its own send limit throttles it, and the range stays open."""
    await burst(client, auth, 30, sources=1)
    clock.advance(seconds=WINDOW_GRACE)
    assert (await start(client, auth, phone=pumped(50), headers=source(7, 9))).status_code == 201
    assert count_rows(app, "pumping_blocks") == 0


async def test_two_addresses_do_not_block_a_range_but_three_do(client, app, clock, auth):
    await burst(client, auth, 10, sources=2)
    clock.advance(seconds=WINDOW_GRACE)
    assert (await start(client, auth, phone=pumped(50), headers=source(0, 2))).status_code == 201
    assert count_rows(app, "pumping_blocks") == 0
    await start(client, auth, phone=pumped(51), headers={"X-Forwarded-For": "192.0.2.99"})
    clock.advance(seconds=WINDOW_GRACE)
    refused = await start(client, auth, phone=pumped(52), headers=source(0, 2))
    assert refused.status_code == 429 and refused.json()["type"].endswith("/prefix-blocked")


async def test_starts_that_trip_the_watch_together_make_one_block(client, app, clock, auth):
    """Each of a burst of parallel starts read the prefix's state before any had blocked
    it, and each inserted a block: five blocks for one prefix, and lifting one left the
    range blocked. A start that trips the watch after another did finds its block.

    (PostgreSQL: the blocks table is held from another connection, so both starts have
    read the state before either can insert.)"""
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    await burst(client, auth, 10)
    clock.advance(seconds=WINDOW_GRACE)
    with engine.connect() as conn:
        conn.execute(sa.text("LOCK TABLE pumping_blocks IN SHARE MODE"))
        tripping = [
            asyncio.create_task(start(client, auth, phone=pumped(50 + i), headers=source(i)))
            for i in range(2)
        ]
        await asyncio.sleep(0.5)
        conn.rollback()
    answers = await asyncio.gather(*tripping)
    assert [a.status_code for a in answers] == [429, 429], [a.text for a in answers]
    assert count_rows(app, "pumping_blocks") == 1
    assert events(app, "sms:pumping:prefix_blocked") == 1


async def test_one_ipv6_host_rotating_its_addresses_is_one_source(client, app, clock, auth):
    """Three addresses of one /64 (one host, which may use any of them) were three
    sources, and blocked a range of a million numbers for everyone."""
    for i in range(12):
        headers = {"X-Forwarded-For": f"2001:db8:77::{i % 3 + 1}"}
        assert (await start(client, auth, phone=pumped(i), headers=headers)).status_code == 201
    clock.advance(seconds=WINDOW_GRACE)
    assert (await start(client, auth, phone=pumped(50), headers=source(7, 9))).status_code == 201
    assert count_rows(app, "pumping_blocks") == 0


def test_the_default_address_limit_stays_far_below_the_guards_trigger(settings):
    """Settings hold the rule: one address is throttled long before the guard would act."""
    defaults = Settings()
    assert defaults.sends_per_ip_hour * 2 < defaults.pumping_min_sends
    assert defaults.pumping_min_sources >= 2
