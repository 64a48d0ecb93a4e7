"""`smsreg keys status|check|rotate` from the command line: reports, refusals, bad input."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import typer
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import SECRET_FAMILIES, ConfigError
from app.core.crypto import Keys
from app.keys.cli import startup_check
from app.keys.status import startup_problems, status
from app.staff import api_keys
from app.staff.api_keys import Client
from tests.conftest import make_settings
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


def invoke(*args: str):
    return runner.invoke(cli, ["keys", *args])


def by_family(n: Node):
    return {state.family: state for state in n.db.call(status, n.ctx)}


def seed(old: Node) -> str:
    """Three subscribers and a live verification under t1; the API key's raw token."""
    token = new_token(old)
    client: Client = old.call(api_keys.authenticate, token=token)
    for i in range(3):
        register(old, client, number(i))
    start(old, client, number(9))  # live: its code is derived under code key t1
    return token


def snapshot(n: Node) -> dict[str, list]:
    return {table: rows(n, table) for table in ("subscribers", "verifications", "api_keys")}


def test_status_counts_rows_per_key_and_says_when_a_key_can_go(old, new, clock, monkeypatch):
    token = seed(old)
    state = by_family(new)
    assert state["phone"].rows_on("t1") == 3 + 4  # 3 subscribers, 4 verifications
    assert state["index"].rows_on("t1") == 3 + 4 + 4  # and the verifications' prefix indexes
    assert state["code"].rows_on("t1") == 1  # only the live verification needs its code key
    assert state["token"].rows_on("t1") == 1  # the API key, hashed under t1
    assert all(s.removable() == [] for s in state.values())
    use(new, monkeypatch)
    shown = invoke("status")
    assert shown.exit_code == 0, shown.output
    assert "phone: active 't2', ring t2, t1" in shown.output
    assert "t1 (older): 7 row(s)" in shown.output
    # phone and index rows are rewritten; code and token have nothing to rewrite.
    assert invoke("rotate", "phone", "--to", "t2").exit_code == 0
    assert invoke("rotate", "index").exit_code == 0
    code = invoke("rotate", "code")
    assert code.exit_code == 0, code.output
    assert "verifications.code_key_id (live): 1 still on 't1'" in code.output
    assert "api_keys.token_key_id (live): 1 still on 't1'" in invoke("rotate", "token").output
    new.call(api_keys.authenticate, token=token)  # used once: rehashed under t2
    state = by_family(new)
    assert [state[f].removable() for f in SECRET_FAMILIES] == [["t1"], ["t1"], [], ["t1"]]
    clock.advance(minutes=11)  # the live verification expires: its code key is free too
    assert by_family(new)["code"].removable() == ["t1"]
    assert "can be removed from the ring: t1" in invoke("status").output


def test_rotate_prints_progress_and_totals(old, new, monkeypatch):
    seed(old)
    use(new, monkeypatch)
    done = invoke("rotate", "phone", "--batch-size", "2")
    assert done.exit_code == 0, done.output
    assert "subscribers: 3 rewritten, 0 changed meanwhile by the service, 0 failed, 0 left" in (
        done.output
    )
    assert "every phone row is on key 't2'" in done.output
    again = invoke("rotate", "phone")  # nothing left: a second run is a no-op
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
def test_bad_input_is_refused_and_changes_nothing(old, new, monkeypatch, args, message):
    seed(old)
    before = snapshot(new)
    use(new, monkeypatch)
    refused = invoke(*args)
    assert refused.exit_code == 2, refused.output
    assert message in refused.output
    assert snapshot(new) == before


def test_a_removed_key_that_rows_still_use_is_refused(old, after, monkeypatch):
    seed(old)
    before = snapshot(after)
    fatal, warnings = after.db.call(startup_problems, after.ctx)
    assert [text.split(",")[0] for text in fatal] == [
        "7 row(s) still use phone key id 't1'",
        "11 row(s) still use index key id 't1'",
    ]
    assert len(warnings) == 2  # the live code, and the API key hashed under t1
    with pytest.raises(typer.Exit) as refused:
        startup_check(after.settings)  # what `smsreg serve` and `smsreg worker` run first
    assert refused.value.exit_code == 2
    use(after, monkeypatch)
    check = invoke("check")
    assert check.exit_code == 1 and "put the key back" in check.output
    rotate = invoke("rotate", "phone")
    assert rotate.exit_code == 2 and "no longer holds; put them back first" in rotate.output
    assert "t1 (NOT IN RING): 7 row(s)" in invoke("status").output
    assert snapshot(after) == before


def test_check_passes_once_rotated(old, new, nodes, monkeypatch):
    seed(old)
    use(new, monkeypatch)
    assert invoke("rotate", "phone").exit_code == 0
    assert invoke("rotate", "index").exit_code == 0
    rotated = nodes(phone=("t2",), index=("t2",))  # code and token keep t1
    use(rotated, monkeypatch)
    assert invoke("check").exit_code == 0
    startup_check(rotated.settings)  # does not raise


@pytest.mark.parametrize("key_id", ["k:1", "a" * 41, "k 1"])
def test_key_ids_that_cannot_lead_an_index_are_refused(tmp_path, key_id):
    ring = {key_id: MATERIAL["t1"]["index"]}
    settings = make_settings("sqlite://", tmp_path, index_keys=ring, index_key_id=key_id)
    with pytest.raises(ConfigError, match="key id"):
        Keys(settings)


def test_reindexing_needs_every_phone_key_the_rows_use(old, nodes, monkeypatch):
    seed(old)
    no_old_phone_key = nodes(phone=("t2",), index=("t2", "t1"))
    before = snapshot(no_old_phone_key)
    use(no_old_phone_key, monkeypatch)
    refused = invoke("rotate", "index")
    assert refused.exit_code == 2
    assert "rows use phone key id(s) t1 that SMSREG_PHONE_KEYS no longer holds" in refused.output
    assert snapshot(no_old_phone_key) == before


def test_staff_totp_secrets_count_as_phone_key_usage(app):
    import datetime as dt

    from app.keys import repository as keys_repo
    from app.staff.roles import Role
    from tests.staff.helpers import create_staff

    account = create_staff(app, Role.ADMIN, username="totp-holder")
    now = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)

    def seal(tx):
        tx.execute(
            "INSERT INTO staff_totp (staff_id, secret_ciphertext, secret_key_id, created_at) "
            "VALUES (:s, :c, 'old1', :now)",
            {"s": account.id, "c": b"sealed", "now": now},
        )
        return keys_repo.usage(tx, family="phone", now=now)

    usage = app.state.db.call(seal)
    assert any(
        row.what == "staff_totp.secret_key_id" and row.key_id == "old1" and row.rows == 1
        for row in usage
    )
