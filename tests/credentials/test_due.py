"""API keys for admins over HTTP, and `smsreg credentials due | rotate --due`."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.staff import api_keys, credentials
from tests.conftest import TEST_KEYS, make_settings
from tests.staff.credential_helpers import (
    TOTP_ON,
    code_at,
    enrolled_staff,
    invoke,
    login_with,
    use_cli,
)
from tests.staff.helpers import bearer, create_staff, events, execute, rows, staff_auth

SCOPES = ["verifications:write"]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(TOTP_ON)


def key_rows(app) -> list[dict[str, Any]]:
    return rows(app, "SELECT id, expires_at, revoked_at, rotated_to FROM api_keys ORDER BY id")


async def works(client, token: str) -> bool:
    answer = await client.get("/v1/verifications/ver_madeup", headers=bearer(token))
    return answer.status_code == 404


# -- /v1/api-keys ------------------------------------------------------------------------


async def test_admins_create_and_list_keys(client, app, clock):
    admin, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    root_id = rows(app, "SELECT id FROM staff_accounts")[0]["id"]
    made = await client.post(
        "/v1/api-keys",
        json={"name": "coupon-frontend", "scopes": SCOPES, "expires_days": 30},
        headers=admin,
    )
    assert made.status_code == 201
    assert made.headers["cache-control"] == "no-store"
    token = made.json()["token"]
    key = made.json()["key"]
    assert token.startswith("smsreg_sk_") and key["prefix"] == token[:16]
    assert key["created_by"] == f"staff:{root_id}" and key["state"] == "active"
    assert key["expires_at"] == (clock.now() + dt.timedelta(days=30)).isoformat().replace(
        "+00:00", "Z"
    )
    assert await works(client, token)
    (event,) = events(app, "service:api_key:created")
    assert event["actor"] == f"staff:{root_id}"

    listed = await client.get("/v1/api-keys", headers=admin)
    assert listed.status_code == 200
    assert [k["id"] for k in listed.json()["api_keys"]] == [key["id"]]
    assert token not in listed.text and "token_hash" not in listed.text
    stored = rows(app, "SELECT token_hash FROM api_keys")[0]["token_hash"]
    assert token not in stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "", "scopes": SCOPES}, "name"),
        ({"name": "   ", "scopes": SCOPES}, "name"),
        ({"name": "x" * 101, "scopes": SCOPES}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["everything"]}, "scopes.0"),
        ({"name": "x", "scopes": SCOPES, "expires_days": 0}, "expires_days"),
        ({"name": "x", "scopes": SCOPES, "expires_days": 181}, "expires_days"),
        ({"name": "x", "scopes": SCOPES, "expires_days": "soon"}, "expires_days"),
        ({"name": "x", "scopes": SCOPES, "created_by": "cli"}, "created_by"),
    ],
)
async def test_bad_key_input_creates_nothing(client, app, clock, body, field):
    admin = await staff_auth(app, client, "auditor", username="aud")  # the wrong role first
    refused = await client.post("/v1/api-keys", json=body, headers=admin)
    assert refused.status_code == 403  # authorisation before validation
    admin, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    answer = await client.post("/v1/api-keys", json=body, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field
    assert key_rows(app) == []
    assert events(app, "service:api_key:created") == []


async def test_revoke_and_rotate_refusals_change_nothing(client, app, clock):
    admin, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    made = (
        await client.post("/v1/api-keys", json={"name": "a", "scopes": SCOPES}, headers=admin)
    ).json()
    key_id, token = made["key"]["id"], made["token"]

    revoked = await client.post(f"/v1/api-keys/{key_id}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert not await works(client, token)
    before = (key_rows(app), len(rows(app, "SELECT id FROM audit_events")))

    for action in ("revoke", "rotate"):
        again = await client.post(f"/v1/api-keys/{key_id}/{action}", headers=admin)
        assert again.status_code == 409, action
        assert again.json()["type"].endswith("/api-key-revoked")
    for action in ("revoke", "rotate"):
        unknown = await client.post(f"/v1/api-keys/key_nobody/{action}", headers=admin)
        assert unknown.status_code == 404
        malformed = await client.post(f"/v1/api-keys/nokey/{action}", headers=admin)
        assert malformed.status_code == 422
    assert (key_rows(app), len(rows(app, "SELECT id FROM audit_events"))) == before


async def test_rotation_over_http(client, app, clock):
    admin, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    made = (
        await client.post("/v1/api-keys", json={"name": "a", "scopes": SCOPES}, headers=admin)
    ).json()
    key_id = made["key"]["id"]
    for grace in (-1, 721, "long"):
        bad = await client.post(
            f"/v1/api-keys/{key_id}/rotate", json={"grace_hours": grace}, headers=admin
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "grace_hours"
    assert len(key_rows(app)) == 1

    rotated = await client.post(
        f"/v1/api-keys/{key_id}/rotate", json={"grace_hours": 2}, headers=admin
    )
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    body = rotated.json()
    assert body["old"]["rotated_to"] == body["new"]["id"] and body["old"]["state"] == "rotated"
    assert body["new"]["rotated_from"] == key_id
    twice = await client.post(f"/v1/api-keys/{key_id}/rotate", headers=admin)
    assert twice.status_code == 409 and twice.json()["type"].endswith("/api-key-already-rotated")
    clock.advance(hours=2)
    assert not await works(client, made["token"])
    assert await works(client, body["token"])


# -- the report and the unattended rotation ----------------------------------------------


def test_due_lists_passwords_and_keys_with_their_owners(app, clock):
    now = clock.now()
    clock.set(now - dt.timedelta(days=95))
    create_staff(app, "operator", username="overdue")
    clock.set(now - dt.timedelta(days=80))
    create_staff(app, "operator", username="soon")
    disabled = create_staff(app, "operator", username="gone")
    clock.set(now)
    owner = create_staff(app, "admin", username="keyowner")
    clock.set(now - dt.timedelta(days=170))
    key = app.state.db.call(
        api_keys.create,
        app.state.ctx,
        name="frontend",
        scopes=SCOPES,
        created_by=f"staff:{owner.id}",
    )
    clock.set(now)
    create_staff(app, "operator", username="fresh")
    execute(
        app,
        "UPDATE staff_accounts SET disabled_at = password_changed_at WHERE id = :id",
        id=disabled.id,
    )

    items = app.state.db.call(credentials.due, app.state.ctx)
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
    assert len(app.state.db.call(credentials.due, app.state.ctx, within_days=0)) == 1
    with pytest.raises(Exception, match="within_days"):
        app.state.db.call(credentials.due, app.state.ctx, within_days=366)


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
    create_staff(app, "operator", username="later")
    node = second_node(
        settings, clock, carrier, tmp_path, {"t1": TEST_KEYS["phone"], "t2": NEW_PHONE_KEY}, "t2"
    )
    (item,) = [
        i for i in node.state.db.call(credentials.due, node.state.ctx) if i.kind != "password"
    ]
    assert (item.kind, item.state, item.owner) == ("totp_secret", "old_key", "root")

    report = node.state.db.call(credentials.rotate_due, node.state.ctx, actor="cli")
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
        node_sync_engine(app).dispose()


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
    node.state.db.engine.dispose()


async def test_a_missing_key_is_reported_not_hidden(
    client, app, clock, carrier, settings, tmp_path
):
    await enrolled_staff(app, client, clock, "admin", "root")
    node = second_node(settings, clock, carrier, tmp_path, {"t2": NEW_PHONE_KEY}, "t2")
    report = node.state.db.call(credentials.rotate_due, node.state.ctx, actor="cli")
    assert report.totp_reencrypted == 0
    (item,) = report.left
    assert (item.kind, item.state) == ("totp_secret", "key_missing")
    assert "reset" in item.action
    node.state.db.engine.dispose()


@pytest.fixture
def real_time(clock):
    clock.set(dt.datetime.now(dt.UTC))  # the command line runs on the system clock


def test_the_commands(app, clock, settings, monkeypatch, real_time):
    now = clock.now()
    clock.set(now - dt.timedelta(days=100))
    create_staff(app, "operator", username="hanako")
    clock.set(now - dt.timedelta(days=175))
    key = app.state.db.call(
        api_keys.create, app.state.ctx, name="frontend", scopes=SCOPES, created_by="cli"
    )
    clock.set(now)
    use_cli(settings, monkeypatch)

    due = invoke("credentials", "due")
    assert due.exit_code == 0, due.output
    lines = due.output.splitlines()
    assert lines[0] == "kind\tid\towner\tname\tdue\tstate\taction"
    assert (
        lines[1].startswith("password\t") and "\thanako\t" in lines[1] and "\toverdue\t" in lines[1]
    )
    assert lines[2].startswith(f"api_key\t{key.key.id}\tcli\tfrontend\t") and "\tdue\t" in lines[2]
    assert "smsreg_sk_" not in due.output and "argon2" not in due.output

    rotated = invoke("credentials", "rotate", "--due")
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted 0 TOTP secret(s)" in rotated.output
    assert "2 credential(s) need a person" in rotated.output
    assert rows(app, "SELECT rotated_to FROM api_keys") == [{"rotated_to": None}]  # untouched

    assert invoke("credentials", "rotate").exit_code == 2
    bad = invoke("credentials", "due", "--within-days", "400")
    assert bad.exit_code == 1 and "within_days" in bad.output
