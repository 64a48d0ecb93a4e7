"""`smsreg keys status|check|rotate` from the command line: reports, refusals, bad input."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from app.cli import cli
from app.clients import service as clients
from app.core.config import ConfigError
from app.core.crypto import Keys
from app.core.key_material import SECRET_FAMILIES
from app.coupons import service as coupons
from app.coupons.schemas import RedemptionCreate
from app.keys import repository as keys_repo
from app.keys.cli import startup_check
from app.keys.status import startup_problems, status
from app.models.staff import StaffInvitation
from app.models.staff_mfa import StaffRecoveryCode, StaffTotp
from app.models.types import table
from app.staff.roles import Role
from app.subject import erasure
from tests.conftest import make_settings
from tests.fixtures.staff import create_staff
from tests.keys.helpers import (
    MATERIAL,
    Node,
    new_token,
    number,
    register,
    rows,
    start,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def real_time(clock):
    clock.set(dt.datetime.now(dt.UTC))  # the commands run on the system clock


def use(n: Node, monkeypatch) -> None:
    """Point the CLI at n's database and key rings, through SMSREG_* variables."""
    s = n.settings
    monkeypatch.setenv("SMSREG_DATABASE_URL", s.database_url)
    monkeypatch.setenv("SMSREG_STATE_DIR", str(s.state_dir))
    monkeypatch.setenv("SMSREG_KEY_ROTATION_PAUSE_SECONDS", "0")
    for family in SECRET_FAMILIES:
        ring = {k: v.get_secret_value() for k, v in getattr(s, f"{family}_keys").items()}
        monkeypatch.setenv(f"SMSREG_{family.upper()}_KEYS", json.dumps(ring))
        monkeypatch.setenv(f"SMSREG_{family.upper()}_KEY_ID", getattr(s, f"{family}_key_id"))


async def invoke(*args: str):
    """Run `smsreg keys ...`; in a thread, since a command runs its own event loop."""
    return await asyncio.to_thread(runner.invoke, cli, ["keys", *args])


async def by_family(n: Node):
    return {state.family: state for state in await n.call(status)}


async def seed(old: Node) -> str:
    """Three subscribers and a live verification under t1; the API key's raw token."""
    token = await new_token(old)
    client = await old.call(clients.authenticate, token=token)
    for i in range(3):
        await register(old, client, number(i))
    await start(old, client, number(9))  # live: its code is derived under code key t1
    return token


async def snapshot(n: Node) -> dict[str, list]:
    return {t: await rows(n, t) for t in ("subscribers", "verifications", "api_keys")}


async def test_status_counts_rows_per_key_and_says_when_a_key_can_go(old, new, clock, monkeypatch):
    token = await seed(old)
    state = await by_family(new)
    assert state["phone"].rows_on("t1") == 3 + 4  # 3 subscribers, 4 verifications
    assert state["index"].rows_on("t1") == 3 + 4 + 4  # and the verifications' prefix indexes
    assert state["code"].rows_on("t1") == 1  # only the live verification needs its code key
    assert state["token"].rows_on("t1") == 1  # the API key, hashed under t1
    assert all(s.removable() == [] for s in state.values())
    use(new, monkeypatch)
    shown = await invoke("status")
    assert shown.exit_code == 0, shown.output
    assert "phone: active 't2', ring t2, t1" in shown.output
    assert "t1 (older): 7 row(s)" in shown.output
    # phone and index rows are rewritten; code and token have nothing to rewrite.
    assert (await invoke("rotate", "phone", "--to", "t2")).exit_code == 0
    assert (await invoke("rotate", "index")).exit_code == 0
    code = await invoke("rotate", "code")
    assert code.exit_code == 0, code.output
    assert "verifications.code_key_id (live): 1 still on 't1'" in code.output
    assert (
        "api_keys.token_key_id (live): 1 still on 't1'" in (await invoke("rotate", "token")).output
    )
    await new.call(clients.authenticate, token=token)  # used once: rehashed under t2
    state = await by_family(new)
    assert [state[f].removable() for f in SECRET_FAMILIES] == [["t1"], ["t1"], [], ["t1"]]
    clock.advance(minutes=11)  # the live verification expires: its code key is free too
    assert (await by_family(new))["code"].removable() == ["t1"]
    assert "can be removed from the ring: t1" in (await invoke("status")).output


async def test_rotate_prints_progress_and_totals(old, new, monkeypatch):
    await seed(old)
    use(new, monkeypatch)
    done = await invoke("rotate", "phone", "--batch-size", "2")
    assert done.exit_code == 0, done.output
    assert "subscribers: 3 rewritten, 0 changed meanwhile by the service, 0 failed, 0 left" in (
        done.output
    )
    assert "every phone row is on key 't2'" in done.output
    again = await invoke("rotate", "phone")  # nothing left: a second run is a no-op
    assert again.exit_code == 0 and "verifications: 0 rewritten" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rotate", "ledger"), "'ledger' is not one of"),
        (("rotate", "phone", "--to", "t9"), "no phone key with id 't9'"),
        (("rotate", "index", "--to", "t1"), "'t1' is not the active index key ('t2')"),
        (("rotate", "phone", "--batch-size", "0"), "batch-size"),
        (("rotate", "phone", "--pause", "-1"), "pause"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(old, new, monkeypatch, args, message):
    await seed(old)
    before = await snapshot(new)
    use(new, monkeypatch)
    refused = await invoke(*args)
    assert refused.exit_code == 2, refused.output
    assert message in refused.output
    assert await snapshot(new) == before


async def test_a_removed_key_that_rows_still_use_is_refused(old, after, monkeypatch):
    await seed(old)
    before = await snapshot(after)
    fatal, warnings = await after.call(startup_problems)
    assert [text.split(",")[0] for text in fatal] == [
        "7 row(s) still use phone key id 't1'",
        "11 row(s) still use index key id 't1'",
    ]
    assert len(warnings) == 2  # the live code, and the API key hashed under t1
    with pytest.raises(typer.Exit) as refused:
        # What `smsreg serve` and `smsreg worker` run first (on their own event loop).
        await asyncio.to_thread(startup_check, after.settings)
    assert refused.value.exit_code == 2
    use(after, monkeypatch)
    check = await invoke("check")
    assert check.exit_code == 1 and "put the key back" in check.output
    rotate = await invoke("rotate", "phone")
    assert rotate.exit_code == 2 and "no longer holds; put them back first" in rotate.output
    assert "t1 (NOT IN RING): 7 row(s)" in (await invoke("status")).output
    assert await snapshot(after) == before


async def test_check_passes_once_rotated(old, new, nodes, monkeypatch):
    await seed(old)
    use(new, monkeypatch)
    assert (await invoke("rotate", "phone")).exit_code == 0
    assert (await invoke("rotate", "index")).exit_code == 0
    rotated = nodes(phone=("t2",), index=("t2",))  # code and token keep t1
    use(rotated, monkeypatch)
    assert (await invoke("check")).exit_code == 0
    await asyncio.to_thread(startup_check, rotated.settings)  # does not raise


@pytest.mark.parametrize("key_id", ["k:1", "a" * 41, "k 1"])
def test_key_ids_that_cannot_lead_an_index_are_refused(tmp_path, key_id):
    ring = {key_id: MATERIAL["t1"]["index"]}
    settings = make_settings("sqlite://", tmp_path, index_keys=ring, index_key_id=key_id)
    with pytest.raises(ConfigError, match="key id"):
        Keys(settings)


async def test_reindexing_needs_every_phone_key_the_rows_use(old, nodes, monkeypatch):
    await seed(old)
    no_old_phone_key = nodes(phone=("t2",), index=("t2", "t1"))
    before = await snapshot(no_old_phone_key)
    use(no_old_phone_key, monkeypatch)
    refused = await invoke("rotate", "index")
    assert refused.exit_code == 2
    assert "rows use phone key id(s) t1 that SMSREG_PHONE_KEYS no longer holds" in refused.output
    assert await snapshot(no_old_phone_key) == before


async def test_staff_totp_secrets_count_as_phone_key_usage(app):
    account = await create_staff(app, Role.ADMIN, username="totp-holder")
    now = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    async with app.state.db.transaction() as tx:
        # A secret sealed under a phone key since removed, written straight as a row: the
        # enrolment itself is the staff area's and is tested there.
        await tx.execute(
            sa.insert(table(StaffTotp)).values(
                staff_id=account.id,
                secret_ciphertext=b"sealed",
                secret_key_id="old1",
                created_at=now,
            )
        )
        usage = await keys_repo.usage(tx, family="phone", now=now)
    assert any(
        row.what == "staff_totp.secret_key_id" and row.key_id == "old1" and row.rows == 1
        for row in usage
    )


async def test_open_invitations_and_unused_recovery_codes_count_as_token_key_usage(app):
    """Hashed under the token ring: a key removed while they need it locks out an invited
    person and a recovery-code login, so status must not offer it for removal."""
    account = await create_staff(app, Role.ADMIN, username="recovering")
    now = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    invitation = {"staff_id": account.id, "created_by": "test", "created_at": now}
    async with app.state.db.transaction() as tx:
        for i, (key, expires, redeemed) in enumerate(
            [("old1", now + dt.timedelta(hours=1), None),
             ("old2", now + dt.timedelta(hours=1), now),  # used: needs no key
             ("old2", now - dt.timedelta(hours=1), None)]  # expired
        ):  # fmt: skip
            await tx.execute(
                sa.insert(table(StaffInvitation)).values(
                    id=f"inv_{i}", token_hash=f"h{i}", token_key_id=key, expires_at=expires,
                    redeemed_at=redeemed, **invitation,
                )
            )  # fmt: skip
        for i, (key, used) in enumerate([("old1", None), ("old1", None), ("old2", now)]):
            await tx.execute(
                sa.insert(table(StaffRecoveryCode)).values(
                    staff_id=account.id, code_hash=f"c{i}", key_id=key, created_at=now,
                    used_at=used,
                )
            )  # fmt: skip
        usage = await keys_repo.usage(tx, family="token", now=now)
    counted = {(row.what, row.key_id): row.rows for row in usage}
    assert counted[("staff_invitations.token_key_id (open)", "old1")] == 1
    assert counted[("staff_recovery_codes.key_id (unused)", "old1")] == 2
    assert not any(key == "old2" for _, key in counted)


async def test_an_erased_numbers_coupon_tally_keeps_its_index_key_in_the_ring(
    old, new, monkeypatch
):
    """The tally keeps the erased number's blind index under the key of its day, which no
    rotation can rewrite: status counts it, and does not offer the old index key for
    removal, or the number's limit would be renewed."""
    client = await old.call(clients.authenticate, token=await new_token(old))
    subscriber = await register(old, client, number(0))
    assert subscriber is not None
    data = RedemptionCreate(subscriber_id=subscriber)
    await old.call(coupons.redeem, client=client, coupon_id="spring", data=data)
    await old.call(erasure.erase, subscriber_id=subscriber, actor="test")
    use(new, monkeypatch)
    assert (await invoke("rotate", "index")).exit_code == 0
    index = (await by_family(new))["index"]
    assert index.rows_on("t1") == 1 and index.removable() == []
    assert "erased_redemptions.phone_index" in (await invoke("status")).output
