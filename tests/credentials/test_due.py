"""`smsreg credentials due | rotate --due`: what is due, with its owner; what needs no person."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
import pytest

from app.clients import service as clients
from app.core.errors import InvalidInput
from app.main import create_app
from app.staff import credentials_due
from tests.conftest import TEST_KEYS, call, make_settings
from tests.credentials.helpers import (
    TOTP_ON,
    code_at,
    enrolled_staff,
    invoke_async,
    login_with,
    use_cli,
)
from tests.staff.helpers import create_staff, events, execute, rows

SCOPES = ["verifications:write"]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(TOTP_ON)


# -- the report and the unattended rotation ----------------------------------------------


async def test_due_lists_passwords_and_keys_with_their_owners(client, app, clock):
    now = clock.now()
    clock.set(now - dt.timedelta(days=95))
    await create_staff(app, "operator", username="overdue")
    clock.set(now - dt.timedelta(days=80))
    await create_staff(app, "operator", username="soon")
    disabled = await create_staff(app, "operator", username="gone")
    clock.set(now)
    owner = await create_staff(app, "admin", username="keyowner")
    clock.set(now - dt.timedelta(days=170))
    key = await call(
        app, clients.create, name="frontend", scopes=SCOPES, created_by=f"staff:{owner.id}"
    )
    clock.set(now)
    await create_staff(app, "operator", username="fresh")
    execute(
        app,
        "UPDATE staff_accounts SET disabled_at = password_changed_at WHERE id = :id",
        id=disabled.id,
    )

    items = await call(app, credentials_due.due)
    found = {(i.kind, i.owner): i for i in items}
    assert set(found) == {
        ("password", "overdue"),
        ("password", "soon"),
        ("api_key", f"staff:{owner.id} (keyowner)"),
    }
    assert found["password", "overdue"].state == "overdue"
    assert found["password", "soon"].state == "due"
    assert found["password", "soon"].due_at == now + dt.timedelta(days=10)
    assert found["api_key", f"staff:{owner.id} (keyowner)"].id == key.key.id
    assert [i.kind for i in items][0] == "password"  # the overdue one is first
    # Wider or narrower windows; bad ones refused.
    assert len(await call(app, credentials_due.due, within_days=0)) == 1
    with pytest.raises(InvalidInput, match="within_days"):
        await call(app, credentials_due.due, within_days=366)


def second_node(settings, clock, carrier, tmp_path, phone: dict[str, str], active: str):
    """Another process on the same database, with a different phone key ring."""
    other = make_settings(
        settings.database_url,
        tmp_path / active,
        **TOTP_ON,
        phone_keys=phone,
        phone_key_id=active,
    )
    return create_app(other, clock=clock, sender=carrier)


NEW_PHONE_KEY = base64.b64encode(b"\x77" * 32).decode()


async def test_rotate_due_reencrypts_totp_secrets(client, app, clock, carrier, settings, tmp_path):
    _headers, secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    await create_staff(app, "operator", username="later")
    node = second_node(
        settings, clock, carrier, tmp_path, {"t1": TEST_KEYS["phone"], "t2": NEW_PHONE_KEY}, "t2"
    )
    (item,) = [i for i in await call(node, credentials_due.due) if i.kind != "password"]
    assert (item.kind, item.state, item.owner) == ("totp_secret", "old_key", "root")

    report = await call(node, credentials_due.rotate_due, actor="cli")
    assert report.totp_reencrypted == 1
    assert [i.kind for i in report.left] == []
    assert rows(app, "SELECT secret_key_id FROM staff_totp") == [{"secret_key_id": "t2"}]
    (event,) = events(app, "staff:totp:reencrypted")
    assert event["details"] == {"secrets": 1, "key_id": "t2"}

    # Without t1 at all, the secret still works: it no longer needs it.
    only_new = second_node(settings, clock, carrier, tmp_path, {"t2": NEW_PHONE_KEY}, "t2")
    clock.advance(seconds=30)
    transport = httpx.ASGITransport(app=only_new, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        answer = await login_with(other, "root", totp=code_at(secret, clock.now()))
    assert answer.status_code == 201, answer.text
    for node_app in (node, only_new):
        await node_app.state.db.dispose()


async def test_a_login_moves_the_secret_to_the_active_key(
    client, app, clock, carrier, settings, tmp_path
):
    _headers, secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    node = second_node(
        settings, clock, carrier, tmp_path, {"t1": TEST_KEYS["phone"], "t2": NEW_PHONE_KEY}, "t2"
    )
    clock.advance(seconds=30)
    transport = httpx.ASGITransport(app=node, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        answer = await login_with(other, "root", totp=code_at(secret, clock.now()))
    assert answer.status_code == 201
    assert rows(app, "SELECT secret_key_id FROM staff_totp") == [{"secret_key_id": "t2"}]
    await node.state.db.dispose()


async def test_a_missing_key_is_reported_not_hidden(
    client, app, clock, carrier, settings, tmp_path
):
    await enrolled_staff(app, client, clock, "admin", "root")
    node = second_node(settings, clock, carrier, tmp_path, {"t2": NEW_PHONE_KEY}, "t2")
    report = await call(node, credentials_due.rotate_due, actor="cli")
    assert report.totp_reencrypted == 0
    (item,) = report.left
    assert (item.kind, item.state) == ("totp_secret", "key_missing")
    assert "reset" in item.action
    await node.state.db.dispose()


@pytest.fixture
def real_time(clock):
    clock.set(dt.datetime.now(dt.UTC))  # the command line runs on the system clock


async def test_the_commands(client, app, clock, settings, monkeypatch, real_time):
    now = clock.now()
    clock.set(now - dt.timedelta(days=100))
    await create_staff(app, "operator", username="hanako")
    clock.set(now - dt.timedelta(days=175))
    key = await call(app, clients.create, name="frontend", scopes=SCOPES, created_by="cli")
    clock.set(now)
    use_cli(settings, monkeypatch)

    due = await invoke_async("credentials", "due")
    assert due.exit_code == 0, due.output
    lines = due.output.splitlines()
    assert lines[0] == "kind\tid\towner\tname\tdue\tstate\taction"
    assert (
        lines[1].startswith("password\t") and "\thanako\t" in lines[1] and "\toverdue\t" in lines[1]
    )
    assert lines[2].startswith(f"api_key\t{key.key.id}\tcli\tfrontend\t") and "\tdue\t" in lines[2]
    assert "smsreg_sk_" not in due.output and "argon2" not in due.output

    rotated = await invoke_async("credentials", "rotate", "--due")
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted 0 TOTP secret(s)" in rotated.output
    assert "2 credential(s) need a person" in rotated.output
    assert rows(app, "SELECT rotated_to FROM api_keys") == [{"rotated_to": None}]  # untouched

    assert (await invoke_async("credentials", "rotate")).exit_code == 2
    bad = await invoke_async("credentials", "due", "--within-days", "400")
    assert bad.exit_code == 2 and "--within-days" in bad.output  # the usage, as documented
