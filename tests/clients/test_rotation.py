"""API key rotation (grace period, refusals, concurrency) and the report of keys due."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from app.cli import cli
from app.clients import rotation
from app.clients import service as clients
from app.core.db import Database
from app.core.errors import AppError, InvalidInput, NotFound
from tests.conftest import TEST_KEYS, call, count_rows, sync_engine

VERIFY = ["verifications:write"]


async def create(app, *, name="coupon-frontend", scopes=VERIFY, created_by="alice", **kwargs):
    return await call(
        app, clients.create, name=name, scopes=scopes, created_by=created_by, **kwargs
    )


async def rotate(app, key_id: str, **kwargs):
    return await call(app, rotation.rotate, key_id=key_id, actor="bob", **kwargs)


async def due(app, **kwargs):
    return await call(app, rotation.due, **kwargs)


async def works(client, token: str) -> bool:
    """Whether the key is accepted: an authorised read of a made-up id is a 404, not a 401."""
    answer = await client.get(
        "/v1/verifications/ver_nothing", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code in (401, 404), answer.text
    return answer.status_code == 404


def key_rows(app) -> list[dict]:
    with sync_engine(app).connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM api_keys ORDER BY created_at, id"))
        return [dict(row._mapping) for row in rows]


def events(app, tag: str) -> list[dict]:
    with sync_engine(app).connect() as conn:
        rows = conn.execute(
            sa.text("SELECT actor, subject, details FROM audit_events WHERE tag = :t"), {"t": tag}
        )
        return [dict(row._mapping) for row in rows]


async def test_rotation_issues_a_successor_and_the_old_key_dies_after_the_grace(client, app, clock):
    old = await create(app, scopes=["verifications:write", "coupons:write"])
    rotated = await rotate(app, old.key.id)
    new = rotated.new
    assert new.token.startswith("smsreg_sk_") and new.token != old.token
    assert new.key.name == old.key.name
    assert new.key.scopes == old.key.scopes
    assert new.key.created_by == "bob"
    assert new.key.rotated_from == old.key.id
    assert rotated.old.rotated_to == new.key.id
    assert rotated.old.expires_at == clock.now() + dt.timedelta(hours=24)
    assert new.key.expires_at == clock.now() + dt.timedelta(days=180)

    stored = {row["id"]: row for row in key_rows(app)}
    assert stored[old.key.id]["rotated_to"] == new.key.id
    assert stored[new.key.id]["rotated_from"] == old.key.id
    assert new.token not in str(stored), "only a keyed hash of the new key is stored"

    assert await works(client, new.token)
    assert await works(client, old.token)
    clock.advance(hours=24, microseconds=-1)  # the last moment of the grace period
    assert await works(client, old.token)
    clock.advance(microseconds=1)
    assert not await works(client, old.token)
    assert await works(client, new.token)

    (event,) = events(app, "service:api_key:rotated")
    assert (event["actor"], event["subject"]) == ("bob", old.key.id)
    details = event["details"]
    details = details if isinstance(details, dict) else json.loads(details)  # JSON on SQLite
    assert details["rotated_to"] == new.key.id and details["grace_hours"] == 24
    assert new.token not in str(event) and old.token not in str(event)
    (created,) = [e for e in events(app, "service:api_key:created") if e["subject"] == new.key.id]
    assert created["actor"] == "bob"


async def test_grace_hours_override_and_zero(client, app, clock):
    one = await create(app)
    await rotate(app, one.key.id, grace_hours=2)
    clock.advance(hours=1)
    assert await works(client, one.token)
    clock.advance(hours=1)
    assert not await works(client, one.token)

    two = await create(app)
    successor = (await rotate(app, two.key.id, grace_hours=0)).new
    assert not await works(client, two.token)
    assert await works(client, successor.token)


class TestGraceSetting:
    @pytest.fixture
    def settings_overrides(self):
        return {"api_key_grace_hours": 3}

    async def test_grace_is_a_setting(self, client, app, clock):
        key = await create(app)
        assert (await rotate(app, key.key.id)).old.expires_at == clock.now() + dt.timedelta(hours=3)


async def test_expiry_is_never_lengthened(client, app, clock):
    short = await create(app, max_age_days=1)
    clock.advance(hours=20)
    ends = short.key.expires_at
    rotated = await rotate(app, short.key.id, grace_hours=48)
    assert rotated.old.expires_at == ends
    # The successor keeps the old key's shorter lifetime rather than the maximum age.
    assert rotated.new.key.expires_at == clock.now() + dt.timedelta(days=1)
    clock.advance(hours=4)
    assert not await works(client, short.token)


async def test_a_rotation_ends_the_keys_it_replaced_no_later_than_itself(client, app, clock):
    """A rotated with the default grace, then its successor B rotated with none (a leak):
    A kept working for up to a day, B stopped at once. The keys of the line still in their
    grace period now end no later than the rotation's own grace; other clients' keep."""
    first = await create(app)
    other = await create(app)
    await rotate(app, other.key.id)  # another client's key in its grace
    second = (await rotate(app, first.key.id)).new
    third = (await rotate(app, second.key.id, grace_hours=0)).new
    assert not await works(client, first.token)
    assert not await works(client, second.token)
    assert await works(client, third.token) and await works(client, other.token)
    (event,) = [e for e in events(app, "service:api_key:rotated") if e["subject"] == second.key.id]
    assert first.key.id in str(event["details"])  # predecessors_ended names it


async def test_revoking_during_the_grace_ends_the_old_key_at_once(client, app):
    key = await create(app)
    successor = (await rotate(app, key.key.id)).new
    await call(app, clients.revoke, key_id=key.key.id, actor="bob")
    assert not await works(client, key.token)
    assert await works(client, successor.token)


def _unchanged(app):
    return key_rows(app), count_rows(app, "audit_events")


async def test_revoked_key_is_refused_and_nothing_changes(client, app):
    key = await create(app)
    await call(app, clients.revoke, key_id=key.key.id, actor="bob")
    before = _unchanged(app)
    with pytest.raises(clients.ApiKeyRevoked) as refused:
        await rotate(app, key.key.id)
    assert refused.value.status == 409
    assert _unchanged(app) == before


async def test_rotated_key_is_refused_and_nothing_changes(client, app, clock):
    key = await create(app)
    successor = (await rotate(app, key.key.id)).new
    before = _unchanged(app)
    clock.advance(hours=1)
    with pytest.raises(rotation.ApiKeyAlreadyRotated) as refused:
        await rotate(app, key.key.id)
    assert refused.value.status == 409 and successor.key.id in refused.value.detail
    assert _unchanged(app) == before
    # The successor itself can be rotated in turn.
    assert (await rotate(app, successor.key.id)).new.key.rotated_from == successor.key.id


@pytest.mark.parametrize("grace_hours", [-1, 721])
async def test_bad_grace_is_refused_and_nothing_changes(client, app, grace_hours):
    key = await create(app)
    before = _unchanged(app)
    with pytest.raises(InvalidInput) as refused:
        await rotate(app, key.key.id, grace_hours=grace_hours)
    assert refused.value.errors[0].field == "grace_hours"
    assert _unchanged(app) == before


async def test_unknown_key_is_not_found(client, app):
    with pytest.raises(NotFound):
        await rotate(app, "key_doesnotexist")
    assert count_rows(app, "api_keys") == 0


async def test_concurrent_rotations_of_one_key_issue_one_successor(client, app):
    key = await create(app)
    ready = threading.Barrier(8)

    def one(_: int) -> int:
        async def attempt() -> int:
            db = Database(app.state.db.url)  # its own connection, as another process
            try:
                async with db.transaction() as tx:
                    await rotation.rotate(tx, app.state.ctx, key_id=key.key.id, actor="bob")
                return 201
            except AppError as exc:
                return exc.status
            finally:
                await db.dispose()

        ready.wait(timeout=30)
        return asyncio.run(attempt())

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    assert results.count(201) == 1, results
    assert results.count(409) == 7
    assert count_rows(app, "api_keys") == 2


@pytest.mark.parametrize(
    ("name", "days", "field"),
    [
        ("coupon-frontend", 181, "expires_days"),  # past the maximum age (180)
        ("coupon-frontend", 0, "expires_days"),
        ("evil\tkey_fake\tverifications:write\nkey_x", None, "name"),  # a forged list row
        ("+819012345678", None, "name"),
        ("coupon-\u202efrontend", None, "name"),  # the command line takes any text
    ],
)
async def test_a_key_past_the_maximum_age_or_with_an_odd_name_is_refused(app, name, days, field):
    with pytest.raises(InvalidInput) as refused:
        await create(app, name=name, max_age_days=days)
    assert refused.value.errors[0].field == field
    assert count_rows(app, "api_keys") == 0


async def test_due_report(client, app, clock):
    start = clock.now()
    old = await create(app, name="old", created_by="alice")  # 180 days: ends first
    # Made when the maximum age was longer: a key is never made past today's maximum.
    ctx = app.state.ctx
    longer = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"api_key_max_age_days": 400})
    )
    async with app.state.db.transaction() as tx:
        long_lived = await clients.create(
            tx, longer, name="long", scopes=VERIFY, created_by="carol", max_age_days=400
        )
    clock.advance(days=10)
    fresh = await create(app, name="fresh", created_by="dave")
    revoked = await create(app, name="revoked", max_age_days=1)
    await call(app, clients.revoke, key_id=revoked.key.id, actor="bob")
    rotated_away = await create(app, name="rotated", max_age_days=1)
    successor = (await rotate(app, rotated_away.key.id)).new  # 1 day (the old key's lifetime)

    clock.set(start + dt.timedelta(days=170))
    report = {row.key.id: row for row in await due(app)}
    assert set(report) == {old.key.id, long_lived.key.id, successor.key.id}
    assert report[old.key.id].state == "due"
    assert report[old.key.id].due_at == old.key.expires_at
    assert report[old.key.id].key.created_by == "alice"
    # Its expiry is far off, but it will pass the maximum age of 180 days.
    assert report[long_lived.key.id].due_at == start + dt.timedelta(days=180)
    assert report[long_lived.key.id].state == "due"
    assert report[successor.key.id].state == "expired"
    assert fresh.key.id not in report and revoked.key.id not in report

    clock.set(start + dt.timedelta(days=181))
    states = {row.key.id: row.state for row in await due(app, within_days=0)}
    assert states == {
        old.key.id: "expired",
        long_lived.key.id: "overdue",
        successor.key.id: "expired",
    }
    # The soonest end first.
    assert [row.key.id for row in await due(app, within_days=0)][0] == successor.key.id

    clock.set(start + dt.timedelta(days=100))
    assert {row.key.id for row in await due(app, within_days=90)} == {
        old.key.id,
        long_lived.key.id,
        fresh.key.id,
        successor.key.id,
    }


@pytest.mark.parametrize("within_days", [-1, 366])
async def test_due_refuses_bad_windows(client, app, within_days):
    with pytest.raises(InvalidInput) as refused:
        await due(app, within_days=within_days)
    assert refused.value.errors[0].field == "within_days"


# The CLI, on its own SQLite database and the real clock.

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SMSREG_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("SMSREG_STATE_DIR", str(tmp_path / "state"))
    for family, key in TEST_KEYS.items():
        monkeypatch.setenv(f"SMSREG_{family.upper()}_KEYS", f'{{"t1": "{key}"}}')
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    return tmp_path


def _created(output: str) -> tuple[str, str]:
    return output.split()[1], output.strip().splitlines()[-1]


def test_cli_rotate(env):
    key_id, token = _created(runner.invoke(cli, ["api-keys", "create", "--name", "fe"]).output)
    result = runner.invoke(cli, ["api-keys", "rotate", key_id, "--grace-hours", "2"])
    assert result.exit_code == 0, result.output
    new_token = result.output.strip().splitlines()[-1]
    assert new_token.startswith("smsreg_sk_") and new_token != token
    assert f"rotated {key_id} -> key_" in result.output
    assert "old key valid until" in result.output

    again = runner.invoke(cli, ["api-keys", "rotate", key_id])
    assert again.exit_code == 1 and "already rotated" in again.output
    assert "smsreg_sk_" not in again.output

    listed = runner.invoke(cli, ["api-keys", "list"]).output
    assert new_token not in listed and token not in listed
    old_line = next(line for line in listed.splitlines() if line.startswith(key_id))
    assert "rotated to key_" in old_line and "valid until" in old_line


def test_cli_lists_each_key_in_the_state_the_console_shows(env):
    """A key ended at once (rotated with no grace, as offboarding does) was listed as
    "rotated ..., valid until" a moment already past, an expired one as "active"."""
    key_id, _ = _created(runner.invoke(cli, ["api-keys", "create", "--name", "fe"]).output)
    assert runner.invoke(cli, ["api-keys", "rotate", key_id, "--grace-hours", "0"]).exit_code == 0
    listed = runner.invoke(cli, ["api-keys", "list"]).output.splitlines()
    old_line = next(line for line in listed if line.startswith(key_id))
    # Expired, and still naming its successor (an offboarding's rotation lost the link).
    (successor,) = [line.split("\t")[0] for line in listed if line.endswith("\tactive")]
    assert old_line.endswith(f"\texpired, rotated to {successor}"), old_line


@pytest.mark.parametrize(
    "args",
    [["key_missing"], ["KEY", "--grace-hours", "-1"], ["KEY", "--grace-hours", "721"]],
)
def test_cli_rotate_refusals(env, args):
    key_id, _ = _created(runner.invoke(cli, ["api-keys", "create", "--name", "fe"]).output)
    args = [key_id if arg == "KEY" else arg for arg in args]
    result = runner.invoke(cli, ["api-keys", "rotate", *args])
    assert result.exit_code == 1, result.output
    assert "refused" in result.output and "smsreg_sk_" not in result.output
    assert runner.invoke(cli, ["api-keys", "list"]).output.count("\n") == 1


def test_cli_rotate_revoked(env):
    key_id, _ = _created(runner.invoke(cli, ["api-keys", "create", "--name", "fe"]).output)
    runner.invoke(cli, ["api-keys", "revoke", key_id])
    result = runner.invoke(cli, ["api-keys", "rotate", key_id])
    assert result.exit_code == 1 and "was revoked at" in result.output


def test_cli_due(env):
    assert runner.invoke(cli, ["api-keys", "due"]).output.strip() == "no API keys due"
    short = runner.invoke(cli, ["api-keys", "create", "--name", "soon", "--expires-days", "3"])
    short_id, _ = _created(short.output)
    runner.invoke(cli, ["api-keys", "create", "--name", "later"])
    result = runner.invoke(cli, ["api-keys", "due"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("id\tname\tcreated_by")
    assert len(lines) == 2 and lines[1].startswith(short_id)
    assert "\tsoon\tcli\t" in lines[1] and lines[1].endswith("\tdue\tnever")
    assert (
        len(runner.invoke(cli, ["api-keys", "due", "--within-days", "365"]).output.splitlines())
        == 3
    )
    for out_of_range in ("-1", "400"):  # the usage and exit 2, as for any bad option
        bad = runner.invoke(cli, ["api-keys", "due", "--within-days", out_of_range])
        assert bad.exit_code == 2 and "--within-days" in bad.output


async def test_what_a_client_started_survives_the_rotation_of_its_key(client, app, carrier):
    from tests.fixtures.flows import check, sent_code, start

    first = await create(app)
    old = {"Authorization": f"Bearer {first.token}"}
    started = await start(client, old)
    assert started.status_code == 201
    second = (await rotate(app, first.key.id)).new
    third = (await rotate(app, second.key.id)).new  # a line of keys: all speak for one client
    new = {"Authorization": f"Bearer {third.token}"}
    verification_id = started.json()["id"]
    assert (
        await client.get(f"/v1/verifications/{verification_id}", headers=new)
    ).status_code == 200
    code = await sent_code(app, carrier)
    assert (await check(client, new, verification_id, code)).status_code == 200
    # Another client's key still sees nothing of it.
    other = await create(app, name="other")
    stranger = {"Authorization": f"Bearer {other.token}"}
    assert (
        await client.get(f"/v1/verifications/{verification_id}", headers=stranger)
    ).status_code == 404
