"""Admins manage staff: create, list, change roles, disable; every change in the history."""

from __future__ import annotations

import pytest

from app.core.errors import AppError
from app.credentials import passwords
from app.staff import accounts
from tests.conftest import call, count_rows
from tests.staff.helpers import PASSWORD, create_staff, events, login, rows, staff_auth

NEW = {
    "username": "Hanako",
    "display_name": "  Hanako   Yamada ",
    "role": "operator",
    "password": "a long enough passphrase",
}


async def test_admin_creates_an_account_that_can_log_in(client, app):
    admin = await staff_auth(app, client, "admin", username="root")
    answer = await client.post("/v1/staff", json=NEW, headers=admin)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["username"] == "hanako" and created["display_name"] == "Hanako Yamada"
    assert created["role"] == "operator" and created["disabled_at"] is None
    assert created["created_by"].startswith("staff:stf_")
    assert "password" not in created and "argon2" not in answer.text
    stored = rows(app, "SELECT password_hash FROM staff_accounts WHERE username = 'hanako'")
    assert stored[0]["password_hash"].startswith("$argon2id$")
    assert NEW["password"] not in stored[0]["password_hash"]
    assert (await login(client, "hanako", NEW["password"])).status_code == 201

    listed = await client.get("/v1/staff", headers=admin)
    assert listed.status_code == 200
    assert [s["username"] for s in listed.json()["staff"]] == ["hanako", "root"]

    detail = await client.get(f"/v1/staff/{created['id']}", headers=admin)
    assert detail.status_code == 200
    history = detail.json()["permission_history"]
    assert [(h["change"], h["old_role"], h["new_role"]) for h in history] == [
        ("grant", None, "operator")
    ]
    assert history[0]["actor"] == created["created_by"]
    # Root was made straight in the database by the test; hanako's creation is audited.
    assert [(e["subject"], e["actor"]) for e in events(app, "staff:account:created")] == [
        (created["id"], created["created_by"])
    ]


async def test_only_admins_create_and_admins_and_auditors_read(client, app):
    for role in ("operator", "privacy_officer", "auditor"):
        headers = await staff_auth(app, client, role)
        refused = await client.post("/v1/staff", json=NEW, headers=headers)
        assert refused.status_code == 403, role
        assert refused.json()["type"].endswith("/forbidden")
        listed = await client.get("/v1/staff", headers=headers)
        assert listed.status_code == (200 if role == "auditor" else 403), role
    assert count_rows(app, "staff_accounts") == 3
    assert (await client.post("/v1/staff", json=NEW)).status_code == 401


async def test_a_stranger_never_costs_a_password_hash(client, app, monkeypatch):
    operator = await staff_auth(app, client, "operator")
    hashed: list[str] = []
    monkeypatch.setattr(passwords, "hash_password_sync", lambda s, p: hashed.append(p) or "x")
    bad_token = {"Authorization": "Bearer smsreg_ss_" + "x" * 43}
    assert (await client.post("/v1/staff", json=NEW, headers=bad_token)).status_code == 401
    assert (await client.post("/v1/staff", json=NEW, headers=operator)).status_code == 403
    assert hashed == []


async def test_duplicate_username_is_refused_and_nothing_written(client, app):
    admin = await staff_auth(app, client, "admin")
    assert (await client.post("/v1/staff", json=NEW, headers=admin)).status_code == 201
    before = (count_rows(app, "staff_accounts"), count_rows(app, "staff_permission_history"))
    again = await client.post("/v1/staff", json={**NEW, "username": "HANAKO"}, headers=admin)
    assert again.status_code == 409 and again.json()["type"].endswith("/staff-username-taken")
    after = (count_rows(app, "staff_accounts"), count_rows(app, "staff_permission_history"))
    assert after == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"password": "eleven chrs"}, "password"),
        ({"password": "x" * 1025}, "password"),
        ({"password": ""}, "password"),
        ({"username": "ab"}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "-leading"}, "username"),
        ({"username": "ｈａｎａｋｏ"}, "username"),
        ({"username": "x" * 65}, "username"),
        ({"display_name": "   "}, "display_name"),
        ({"display_name": "x" * 101}, "display_name"),
        ({"display_name": "tab\x00name"}, "display_name"),
        ({"role": "superuser"}, "role"),
        ({"role": None}, "role"),
        ({"extra": True}, "extra"),
    ],
)
async def test_create_bad_input(client, app, change, field):
    admin = await staff_auth(app, client, "admin")
    before = (count_rows(app, "staff_accounts"), count_rows(app, "audit_events"))
    answer = await client.post("/v1/staff", json={**NEW, **change}, headers=admin)
    assert answer.status_code == 422, answer.text
    assert field in {error["field"] for error in answer.json()["errors"]}
    assert (count_rows(app, "staff_accounts"), count_rows(app, "audit_events")) == before


async def test_missing_fields_are_named(client, app):
    admin = await staff_auth(app, client, "admin")
    answer = await client.post("/v1/staff", json={}, headers=admin)
    assert answer.status_code == 422
    assert {e["field"] for e in answer.json()["errors"]} == {
        "username",
        "display_name",
        "role",
        "password",
    }


async def test_change_role_records_the_history(client, app):
    admin = await staff_auth(app, client, "admin", username="root")
    # Created by the admin (not straight in the database): its grant is in the history.
    made = await client.post("/v1/staff", json=NEW, headers=admin)
    assert made.status_code == 201, made.text
    target_id = made.json()["id"]
    answer = await client.put(
        f"/v1/staff/{target_id}/role", json={"role": "privacy_officer"}, headers=admin
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["role"] == "privacy_officer"
    same = await client.put(
        f"/v1/staff/{target_id}/role", json={"role": "privacy_officer"}, headers=admin
    )
    assert same.status_code == 200  # nothing changes, nothing is recorded
    history = rows(
        app,
        "SELECT change, old_role, new_role, actor FROM staff_permission_history "
        "WHERE staff_id = :id ORDER BY id",
        id=target_id,
    )
    admin_id = rows(app, "SELECT id FROM staff_accounts WHERE username = 'root'")[0]["id"]
    assert history == [
        {
            "change": "grant",
            "old_role": None,
            "new_role": "operator",
            "actor": f"staff:{admin_id}",
        },
        {
            "change": "change",
            "old_role": "operator",
            "new_role": "privacy_officer",
            "actor": f"staff:{admin_id}",
        },
    ]
    changed = events(app, "staff:account:role_changed")
    assert [e["details"] for e in changed] == [{"from": "operator", "to": "privacy_officer"}]


async def test_an_admin_cannot_change_or_disable_their_own_account(client, app):
    admin = await staff_auth(app, client, "admin", username="root")
    own = rows(app, "SELECT id FROM staff_accounts")[0]["id"]
    await create_staff(app, "admin", username="second-admin")
    for answer in (
        await client.put(f"/v1/staff/{own}/role", json={"role": "privacy_officer"}, headers=admin),
        await client.post(f"/v1/staff/{own}/disable", headers=admin),
    ):
        assert answer.status_code == 403 and answer.json()["type"].endswith("/own-account")
    assert rows(app, "SELECT role FROM staff_accounts WHERE id = :id", id=own)[0]["role"] == "admin"


async def test_the_last_admin_is_never_removed(client, app):
    only = await create_staff(app, "admin", username="root")
    with pytest.raises(AppError) as refused:
        await call(app, accounts.disable, staff=None, account_id=only.id)
    assert refused.value.slug == "last-admin"
    second = await create_staff(app, "admin", username="second")
    await call(app, accounts.disable, staff=None, account_id=second.id)
    assert (
        rows(app, "SELECT disabled_at FROM staff_accounts WHERE id = :id", id=only.id)[0][
            "disabled_at"
        ]
        is None
    )


async def test_disable_records_the_revocation(client, app):
    admin = await staff_auth(app, client, "admin")
    target = await create_staff(app, "privacy_officer", username="sato")
    answer = await client.post(f"/v1/staff/{target.id}/disable", headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.json()["disabled_at"] is not None
    history = rows(
        app,
        "SELECT change, old_role, new_role FROM staff_permission_history "
        "WHERE staff_id = :id ORDER BY id",
        id=target.id,
    )
    assert history[-1] == {"change": "revoke", "old_role": "privacy_officer", "new_role": None}
    assert len(events(app, "staff:account:disabled")) == 1

    again = await client.post(f"/v1/staff/{target.id}/disable", headers=admin)
    assert again.status_code == 409 and again.json()["type"].endswith("/staff-account-disabled")
    role = await client.put(f"/v1/staff/{target.id}/role", json={"role": "admin"}, headers=admin)
    assert role.status_code == 409
    assert (await login(client, "sato", PASSWORD)).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/staff/{id}/role", {"role": "root"}),
        ("PUT", "/v1/staff/{id}/role", {}),
        ("PUT", "/v1/staff/{id}/role", {"role": "operator", "why": "x"}),
        ("PUT", "/v1/staff/bad id/role", {"role": "operator"}),
        ("POST", "/v1/staff/x/disable", None),
        ("GET", "/v1/staff/sub_notstaff", None),
    ],
)
async def test_admin_bad_input(client, app, method, path, body):
    admin = await staff_auth(app, client, "admin")
    target = await create_staff(app, "operator", username="hanako")
    before = count_rows(app, "staff_permission_history")
    answer = await client.request(method, path.format(id=target.id), json=body, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"]
    assert count_rows(app, "staff_permission_history") == before


async def test_unknown_accounts_are_404(client, app):
    admin = await staff_auth(app, client, "admin")
    for method, path, body in (
        ("PUT", "/v1/staff/stf_nobody/role", {"role": "operator"}),
        ("POST", "/v1/staff/stf_nobody/disable", None),
        ("GET", "/v1/staff/stf_nobody", None),
    ):
        answer = await client.request(method, path, json=body, headers=admin)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["type"].endswith("/staff-not-found")
